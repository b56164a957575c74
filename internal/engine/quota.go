package engine

import (
	"errors"
	"fmt"
	"math/bits"
)

// Errors of the quota, re-exported by package repo.
var (
	ErrQuotaNotEnough         = errors.New("repo: not enough quota")
	ErrReleaseExceedsReserved = errors.New("repo: release exceeds reserved bytes")
)

// Counters are the persisted quota counters.
type Counters struct{ Used, Reserved uint64 }

// Available is max - used - reserved, or zero when they exceed max.
func Available(max uint64, c Counters) uint64 {
	committed, carry := bits.Add64(c.Used, c.Reserved, 0)
	if carry != 0 || committed >= max {
		return 0
	}
	return max - committed
}

// reserve returns c with n more bytes reserved, or ErrQuotaNotEnough.
func (c Counters) reserve(max, n uint64) (Counters, error) {
	if avail := Available(max, c); n > avail {
		return c, fmt.Errorf("%w: reserve %d bytes, available %d (max %d, used %d, reserved %d)",
			ErrQuotaNotEnough, n, avail, max, c.Used, c.Reserved)
	}
	c.Reserved += n
	return c, nil
}

// release returns c with n fewer bytes reserved, or ErrReleaseExceedsReserved.
func (c Counters) release(n uint64) (Counters, error) {
	if n > c.Reserved {
		return c, fmt.Errorf("%w: release %d bytes, reserved %d", ErrReleaseExceedsReserved, n, c.Reserved)
	}
	c.Reserved -= n
	return c, nil
}

// store returns c after a block of oldSize bytes is replaced by one of
// newSize bytes (zero for a new or a deleted block), or ErrQuotaNotEnough.
func (c Counters) store(max, oldSize, newSize uint64) (Counters, error) {
	next := c
	next.Used -= min(oldSize, next.Used) // an under-count never wraps
	if avail := Available(max, next); newSize > avail {
		return c, fmt.Errorf("%w: block of %d bytes, available %d (max %d, used %d, reserved %d)",
			ErrQuotaNotEnough, newSize, avail, max, next.Used, next.Reserved)
	}
	next.Used += newSize
	return next, nil
}

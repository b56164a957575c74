package repo

import (
	"fmt"
	"math/bits"
)

// DefaultQuotaMaxBytes is the quota of a repo opened without
// WithQuotaMaxBytes: 8 GiB.
const DefaultQuotaMaxBytes uint64 = 1 << 33

// Quota is a snapshot of the repo's byte accounting.
//
// Max is configured; Used counts the bytes of stored blocks; Reserved counts
// bytes promised (to availabilities and reservations) but not yet written.
type Quota struct{ Max, Used, Reserved uint64 }

// Available is Max - Used - Reserved, or zero when the repo was reopened with
// a Max smaller than what it already holds.
func (q Quota) Available() uint64 {
	committed, carry := bits.Add64(q.Used, q.Reserved, 0)
	if carry != 0 || committed >= q.Max {
		return 0
	}
	return q.Max - committed
}

// fits reports whether n more bytes can be committed (used or reserved).
// It is the single rule behind Reserve, HasAvailable and PutBlock, so they
// can never disagree.
func (q Quota) fits(n uint64) bool {
	return n <= q.Available()
}

// apply returns the quota after reserving reserve and releasing release
// bytes, or an error that leaves q as it was. Releasing first lets a change
// that moves bytes between holders (release some, reserve others) succeed
// whenever its net effect fits.
func (q Quota) apply(reserve, release uint64) (Quota, error) {
	if release > q.Reserved {
		return q, fmt.Errorf("%w: release %d, reserved %d", ErrReleaseExceedsReserved, release, q.Reserved)
	}
	next := q
	next.Reserved -= release
	if !next.fits(reserve) {
		return q, fmt.Errorf("%w: reserve %d, available %d (max %d, used %d, reserved %d)",
			ErrQuotaNotEnough, reserve, next.Available(), q.Max, q.Used, next.Reserved)
	}
	next.Reserved += reserve
	return next, nil
}

// store returns the quota after a block of oldSize bytes is replaced by one
// of newSize bytes (zero for a new or deleted block).
func (q Quota) store(oldSize, newSize uint64) (Quota, error) {
	next := q
	if oldSize > next.Used {
		// The counter under-counts what is on disk (e.g. blocks written by
		// another program); never wrap below zero.
		next.Used = 0
	} else {
		next.Used -= oldSize
	}
	if !next.fits(newSize) {
		return q, fmt.Errorf("%w: block of %d bytes, available %d (max %d, used %d, reserved %d)",
			ErrQuotaNotEnough, newSize, next.Available(), q.Max, next.Used, q.Reserved)
	}
	next.Used += newSize
	return next, nil
}

package reservations

import (
	"encoding/binary"
	"sync"
)

// stripes is the number of locks availabilities are spread over.
const stripes = 256

// stripedMutex serialises work per availability without allocating: each
// availability maps to one of a fixed set of locks, so operations on
// different availabilities rarely wait for each other (only when their IDs
// share a stripe, which costs a little parallelism, never correctness).
type stripedMutex struct {
	locks [stripes]sync.Mutex
}

// of returns id's lock.
func (m *stripedMutex) of(id AvailabilityID) *sync.Mutex {
	// UUIDv7 ends in random bits: the last bytes spread IDs evenly.
	return &m.locks[binary.BigEndian.Uint64(id[8:])%stripes]
}

package reservations

import "sync"

// keyedMutex serialises work per availability, so operations on different
// availabilities do not wait for each other.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[AvailabilityID]*refMutex
}

type refMutex struct {
	sync.Mutex
	refs int // guarded by keyedMutex.mu
}

// lock locks id and returns its unlock function.
func (k *keyedMutex) lock(id AvailabilityID) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[AvailabilityID]*refMutex)
	}
	m := k.locks[id]
	if m == nil {
		m = &refMutex{}
		k.locks[id] = m
	}
	m.refs++
	k.mu.Unlock()

	m.Lock()
	return func() {
		m.Unlock()
		k.mu.Lock()
		m.refs--
		if m.refs == 0 {
			delete(k.locks, id)
		}
		k.mu.Unlock()
	}
}

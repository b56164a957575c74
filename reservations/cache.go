package reservations

import (
	"bytes"
	"sync"
)

// cache holds the records the Store has read or written, so that the
// operations on a sale's hot path (Release, DeleteReservation,
// CreateReservation) read memory instead of decoding records. An entry is
// added or changed only under its availability's lock, and only after the
// datastore write succeeded, so it is never newer or older than the
// datastore. Verify compares it with the datastore.
type cache struct {
	mu    sync.RWMutex
	avail map[AvailabilityID]Availability
	res   map[ReservationID]Reservation
	// allAvail is set once avail holds every availability in the datastore
	// (see Store.Availabilities); writes keep it so.
	allAvail bool
}

func newCache() *cache {
	return &cache{avail: make(map[AvailabilityID]Availability), res: make(map[ReservationID]Reservation)}
}

func (c *cache) availability(id AvailabilityID) (Availability, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	a, ok := c.avail[id]
	return a, ok
}

func (c *cache) reservation(id ReservationID, availabilityID AvailabilityID) (Reservation, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	r, ok := c.res[id]
	if ok && r.AvailabilityID != availabilityID {
		return Reservation{}, false
	}
	return r, ok
}

// put records what a successful write stored.
func (c *cache) put(as []Availability, rs []Reservation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range as {
		c.avail[a.ID] = a
	}
	for _, r := range rs {
		c.res[r.ID] = r
	}
}

func (c *cache) deleteAvailability(id AvailabilityID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.avail, id)
}

func (c *cache) deleteReservation(id ReservationID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.res, id)
}

// snapshot copies the cache, for Verify.
func (c *cache) snapshot() (map[AvailabilityID]Availability, map[ReservationID]Reservation) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	as := make(map[AvailabilityID]Availability, len(c.avail))
	for k, v := range c.avail {
		as[k] = v
	}
	rs := make(map[ReservationID]Reservation, len(c.res))
	for k, v := range c.res {
		rs[k] = v
	}
	return as, rs
}

// availabilities returns every availability, oldest first. The cache must
// be complete.
func (c *cache) availabilities() []Availability {
	c.mu.RLock()
	defer c.mu.RUnlock()
	as := make([]Availability, 0, len(c.avail))
	for _, a := range c.avail {
		as = append(as, a)
	}
	sortAvailabilities(as)
	return as
}

// complete reports whether the cache holds every availability.
func (c *cache) complete() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.allAvail
}

// bestFit returns, among the availabilities that match, the one with the
// least free bytes, the oldest on a tie. The cache must be complete.
func (c *cache) bestFit(match func(*Availability) bool) (Availability, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var best Availability
	found := false
	for _, a := range c.avail {
		if !match(&a) {
			continue
		}
		if !found || a.Size < best.Size || a.Size == best.Size && bytes.Compare(a.ID[:], best.ID[:]) < 0 {
			best, found = a, true
		}
	}
	return best, found
}

// setAvailabilities replaces the cached availabilities with all those in
// the datastore. Called with no mutation in flight.
func (c *cache) setAvailabilities(as []Availability) {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.avail)
	for _, a := range as {
		c.avail[a.ID] = a
	}
	c.allAvail = true
}

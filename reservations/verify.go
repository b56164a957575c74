package reservations

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
)

// Verify checks the invariant the Store keeps:
//
//	repo.Reserved == Σ availability.Size + Σ reservation.Size
//
// that every reservation's availability exists, and that the records the
// Store keeps in memory are those in the datastore. It looks at all records
// and the counter at one instant (mutations wait while it runs). On a
// violation it returns an error matching ErrInvariant that reports the
// figures and their difference; a corrupt record fails it with ErrCorrupt.
//
// The invariant holds only while this Store is the sole user of the repo's
// Reserve and Release.
func (s *Store) Verify(ctx context.Context) error {
	s.changes.Lock()
	defer s.changes.Unlock()

	as, rs, err := s.scan(ctx, Prefix, true, true)
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	reserved := s.repo.Quota().Reserved

	var errs []error
	var availBytes, resBytes uint64
	overflow := false
	known := make(map[AvailabilityID]bool, len(as))
	for _, a := range as {
		known[a.ID] = true
		var c uint64
		availBytes, c = bits.Add64(availBytes, a.Size, 0)
		overflow = overflow || c != 0
	}
	for _, r := range rs {
		if !known[r.AvailabilityID] {
			errs = append(errs, fmt.Errorf("%w: reservation %s of missing availability %s", ErrInvariant, r.ID, r.AvailabilityID))
		}
		var c uint64
		resBytes, c = bits.Add64(resBytes, r.Size, 0)
		overflow = overflow || c != 0
	}
	errs = append(errs, s.checkCache(as, rs)...)
	sum, c := bits.Add64(availBytes, resBytes, 0)
	overflow = overflow || c != 0
	if overflow || sum != reserved {
		diff := int64(reserved - sum) // two's complement: the signed difference
		errs = append(errs, fmt.Errorf("%w: repo reserved %d, availabilities hold %d (%d records), reservations hold %d (%d records): difference %+d",
			ErrInvariant, reserved, availBytes, len(as), resBytes, len(rs), diff))
	}
	return errors.Join(errs...)
}

// checkCache reports cached records that differ from the datastore's, which
// only writes behind the Store's back can cause.
func (s *Store) checkCache(as []Availability, rs []Reservation) []error {
	cachedA, cachedR := s.cache.snapshot()
	var errs []error
	for _, a := range as {
		if c, ok := cachedA[a.ID]; ok && c != a {
			errs = append(errs, fmt.Errorf("%w: availability %s in memory differs from the datastore", ErrInvariant, a.ID))
		}
		delete(cachedA, a.ID)
	}
	for _, r := range rs {
		if c, ok := cachedR[r.ID]; ok && c != r {
			errs = append(errs, fmt.Errorf("%w: reservation %s in memory differs from the datastore", ErrInvariant, r.ID))
		}
		delete(cachedR, r.ID)
	}
	for id := range cachedA {
		errs = append(errs, fmt.Errorf("%w: availability %s in memory is missing from the datastore", ErrInvariant, id))
	}
	for id := range cachedR {
		errs = append(errs, fmt.Errorf("%w: reservation %s in memory is missing from the datastore", ErrInvariant, id))
	}
	return errs
}

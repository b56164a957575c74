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
// and that every reservation's availability exists. It looks at all records
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
	sum, c := bits.Add64(availBytes, resBytes, 0)
	overflow = overflow || c != 0
	if overflow || sum != reserved {
		diff := int64(reserved - sum) // two's complement: the signed difference
		errs = append(errs, fmt.Errorf("%w: repo reserved %d, availabilities hold %d (%d records), reservations hold %d (%d records): difference %+d",
			ErrInvariant, reserved, availBytes, len(as), resBytes, len(rs), diff))
	}
	return errors.Join(errs...)
}

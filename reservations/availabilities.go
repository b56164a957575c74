package reservations

import (
	"context"
	"fmt"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"
)

// AddAvailability stores a new availability with all its terms and reserves
// its bytes in the repo quota, as one atomic change, and returns it as
// stored. a.TotalSize is the offer, in bytes, all of it free: a.Size is set
// to it (a.Size must be zero or equal it), a.FreeCollateral to
// a.TotalCollateral, and a.ID is assigned. A zero TotalSize fails with
// ErrInvalidSize; a quota too small with an error matching
// repo.ErrQuotaNotEnough; either way nothing is written.
func (s *Store) AddAvailability(ctx context.Context, a Availability) (Availability, error) {
	if a.TotalSize == 0 {
		return Availability{}, fmt.Errorf("add availability: %w: totalSize is zero", ErrInvalidSize)
	}
	if a.Size != 0 && a.Size != a.TotalSize {
		return Availability{}, fmt.Errorf("add availability: %w: size %d and totalSize %d differ on a new offer", ErrInvalidSize, a.Size, a.TotalSize)
	}
	a.Size = a.TotalSize
	a.FreeCollateral = a.TotalCollateral
	id, err := newID()
	if err != nil {
		return Availability{}, err
	}
	a.ID = AvailabilityID(id)
	err = s.update(ctx, func(t txn) error {
		if err := t.Reserve(a.TotalSize); err != nil {
			return err
		}
		return t.addAvailability(s.st, a)
	})
	if err != nil {
		return Availability{}, fmt.Errorf("add availability of %d bytes: %w", a.TotalSize, err)
	}
	s.log.Debug("availability added", "id", a.ID, "size", a.TotalSize)
	s.notifyAdded(ctx, a)
	return a, nil
}

func (s *Store) notifyAdded(ctx context.Context, a Availability) {
	if s.onAdded == nil {
		return
	}
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("OnAvailabilityAdded hook panicked", "availability", a.ID, "panic", p)
		}
	}()
	s.onAdded(ctx, a)
}

// ModifyAvailability is the one way to change an availability: fn receives
// the current record and edits it in place, atomically with respect to
// every other operation, and the result is stored and returned.
//
// TotalSize is the offer: growing it reserves the difference in the quota
// (an error matching repo.ErrQuotaNotEnough when it does not fit),
// shrinking it releases the difference, and shrinking it below what the
// reservations hold fails with ErrBytesOutOfBounds. Size follows (it is
// TotalSize less what the reservations hold); an fn that changes Size alone
// changes TotalSize by as much, and one that changes both by different
// amounts fails with ErrInvalidSize. FreeCollateral follows TotalCollateral
// likewise (a budget below what reservations hold: ErrBytesOutOfBounds).
// Until may not move before the end (ValidUntil) of a reservation it holds,
// one that never expires included: ErrUntilTooEarly. An unknown ID
// fails with ErrNotFound, changing the ID with ErrInvalidID, and an error
// from fn aborts the change and is returned wrapped.
//
// fn runs under the repo's staging lock, possibly on the goroutine of
// another call staging changes at the same time, so it must be quick and
// must not call the Store.
//
//	// Offer 1 GiB more.
//	_, err := store.ModifyAvailability(ctx, id, func(a *reservations.Availability) error {
//		a.TotalSize += 1 << 30
//		return nil
//	})
func (s *Store) ModifyAvailability(ctx context.Context, id AvailabilityID, fn func(a *Availability) error) (Availability, error) {
	var out Availability
	err := s.update(ctx, func(t txn) error {
		cur, err := t.availability(id)
		if err != nil {
			return err
		}
		a := cur
		if err := fn(&a); err != nil {
			return err
		}
		if a.ID != id {
			return fmt.Errorf("%w: the ID cannot change (to %s)", ErrInvalidID, a.ID)
		}
		if err := resize(cur, &a); err != nil {
			return err
		}
		if !a.Until.IsZero() && !a.Until.Equal(cur.Until) {
			if err := t.untilCoversReservations(a); err != nil {
				return err
			}
		}
		if a.Size > cur.Size {
			if err := t.Reserve(a.Size - cur.Size); err != nil {
				return fmt.Errorf("grow by %d bytes: %w", a.Size-cur.Size, err)
			}
		} else if err := t.Release(cur.Size - a.Size); err != nil {
			return err
		}
		out = a
		return t.putAvailability(s.st, a)
	})
	if err != nil {
		return Availability{}, fmt.Errorf("update availability %s: %w", id, err)
	}
	return out, nil
}

// resize settles a's Size, TotalSize and FreeCollateral from what the
// caller changed relative to cur.
func resize(cur Availability, a *Availability) error {
	held := cur.held()
	total := a.TotalSize
	switch {
	case a.TotalSize != cur.TotalSize:
		// Both changed by one amount (modular arithmetic keeps it exact).
		if a.Size != cur.Size && a.Size-cur.Size != a.TotalSize-cur.TotalSize {
			return fmt.Errorf("%w: size changed by %d, totalSize by %d", ErrInvalidSize,
				int64(a.Size-cur.Size), int64(a.TotalSize-cur.TotalSize))
		}
	case a.Size != cur.Size:
		total = held + a.Size
		if total < held {
			return fmt.Errorf("%w: size %d overflows", ErrBytesOutOfBounds, a.Size)
		}
	}
	if total < held {
		return fmt.Errorf("%w: totalSize %d below the %d bytes its reservations hold", ErrBytesOutOfBounds, total, held)
	}
	a.TotalSize, a.Size = total, total-held

	var heldC uint256.Int
	heldC.Sub(&cur.TotalCollateral, &cur.FreeCollateral)
	if a.TotalCollateral.Lt(&heldC) {
		return fmt.Errorf("%w: collateral budget %s below the %s its reservations hold", ErrBytesOutOfBounds, a.TotalCollateral.Dec(), heldC.Dec())
	}
	a.FreeCollateral.Sub(&a.TotalCollateral, &heldC)
	return nil
}

// untilCoversReservations checks that no reservation of a ends after
// a.Until.
func (t txn) untilCoversReservations(a Availability) error {
	return t.Scan(availabilityReservations(a.ID), false, func(key string, value []byte) error {
		r, err := decodeReservation(datastore.RawKey(key), value)
		if err != nil {
			return err
		}
		if r.ValidUntil.IsZero() || r.ValidUntil.After(a.Until) {
			return fmt.Errorf("%w: until %s, reservation %s runs to %s", ErrUntilTooEarly,
				untilText(a.Until), r.ID, untilText(r.ValidUntil))
		}
		return nil
	})
}

// DeleteAvailability deletes an availability and returns its bytes to the
// quota. It fails with ErrHasReservations while reservations draw on it,
// and with ErrNotFound for an unknown ID.
func (s *Store) DeleteAvailability(ctx context.Context, id AvailabilityID) error {
	err := s.update(ctx, func(t txn) error {
		a, err := t.availability(id)
		if err != nil {
			return err
		}
		n := 0
		err = t.Scan(availabilityReservations(id), true, func(string, []byte) error { n++; return nil })
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("%w (%d)", ErrHasReservations, n)
		}
		if err := t.Release(a.Size); err != nil {
			return err
		}
		t.AfterStage(func() { s.st.dropHint(id) })
		if err := t.Delete(availabilityIndexKey(id)); err != nil {
			return err
		}
		return t.Delete(availabilityKey(id))
	})
	if err != nil {
		return fmt.Errorf("delete availability %s: %w", id, err)
	}
	return nil
}

func availabilityReservations(id AvailabilityID) datastore.Key {
	return recordsPrefix.ChildString(id.String())
}

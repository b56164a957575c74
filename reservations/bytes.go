package reservations

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage/internal/owner"
)

// deleteStep is how many blocks one atomic step of DeleteReservation
// deletes; a reservation with more is deleted in several steps.
const deleteStep = 512

// PutBlock writes a block of the reservation's slot: it moves len(data)
// bytes from the reservation's Size to its Used and from the repo's
// Reserved to its Used, writes the block under key (readable with
// repo.Repo.GetBlock) and remembers it for DeleteReservation, as one atomic
// change. Rewriting a key the reservation already wrote counts the
// difference. It fails with ErrNotFound for an unknown reservation,
// ErrBytesOutOfBounds when the reservation holds too few bytes,
// ErrBlockExists when key holds a block the reservation did not write, and
// repo.ErrInvalidKey for a key no block can have (the zero Key, the root,
// a key not in its clean form), writing nothing.
func (s *Store) PutBlock(ctx context.Context, id ReservationID, key datastore.Key, data []byte) error {
	if err := s.own.CheckBlockKey(key); err != nil {
		return fmt.Errorf("put block of reservation %s: %w", id, err)
	}
	n := uint64(len(data))
	err := s.update(ctx, func(t txn) error {
		r, err := t.reservation(id)
		if err != nil {
			return err
		}
		idx := blockIndexKey(id, key)
		stored, exists, err := t.BlockSize(key)
		if err != nil {
			return err
		}
		var old uint64 // what this reservation's books say the block holds
		switch b, err := t.Get(idx); {
		case err == nil:
			if old, err = decodeSize(idx, b); err != nil {
				return err
			}
		case !errors.Is(err, datastore.ErrNotFound):
			return err
		case exists:
			return fmt.Errorf("%w: %s", ErrBlockExists, key)
		}
		if n > old {
			grow := n - old
			if grow > r.Size {
				return fmt.Errorf("%w: block of %d bytes, reservation holds %d", ErrBytesOutOfBounds, grow, r.Size)
			}
			if err := t.Release(grow); err != nil {
				return err
			}
			r.Size, r.Used = r.Size-grow, r.Used+grow
			if err := t.ReplaceBlock(key, data, stored); err != nil {
				return err
			}
		} else {
			shrink := old - n
			if err := t.ReplaceBlock(key, data, stored); err != nil {
				return err
			}
			if err := t.Reserve(shrink); err != nil {
				return err
			}
			r.Size, r.Used = r.Size+shrink, r.Used-shrink
		}
		if err := t.putBlockIndex(s.st, id, idx, n); err != nil {
			return err
		}
		return t.putReservation(r)
	})
	if err != nil {
		return fmt.Errorf("put block %s of reservation %s: %w", key, id, err)
	}
	return nil
}

// Release takes bytes out of a reservation and out of the repo's Reserved
// count, atomically: those bytes are now free for blocks the caller writes
// itself with repo.Repo.PutBlock, and they leave the availability's
// TotalSize for good. (Store.PutBlock does both and gives the bytes back
// when the reservation is deleted.) n is in bytes. The reservation must
// exist (ErrNotFound) and hold at least n bytes (ErrBytesOutOfBounds).
func (s *Store) Release(ctx context.Context, id ReservationID, n uint64) error {
	err := s.update(ctx, func(t txn) error {
		r, err := t.reservation(id)
		if err != nil {
			return err
		}
		if n > r.Size {
			return fmt.Errorf("%w: release %d bytes, %d held", ErrBytesOutOfBounds, n, r.Size)
		}
		if n == 0 {
			return nil
		}
		if err := t.Release(n); err != nil {
			return err
		}
		r.Size -= n
		a, err := t.availability(r.AvailabilityID)
		switch {
		case errors.Is(err, ErrNotFound):
		case err != nil:
			return err
		default:
			a.TotalSize -= n
			if err := t.putAvailability(s.st, a); err != nil {
				return err
			}
		}
		return t.putReservation(r)
	})
	if err != nil {
		return fmt.Errorf("release from reservation %s: %w", id, err)
	}
	return nil
}

// DeleteReservation ends a reservation, however its sale ended: it deletes
// every block written with Store.PutBlock and returns Size + Used to the
// availability's free Size (and its collateral to FreeCollateral), so the
// offer is whole again. A reservation with up to 512 blocks goes in one
// atomic change; one with more in atomic steps of 512 blocks, each of which
// keeps every invariant, so a crash part way leaves a smaller reservation
// that a repeated call (or ReclaimExpired) finishes. Other changes go
// between two steps, and the cost per block does not grow with the
// reservation (see the package doc).
//
// A reservation that does not exist is success, so cleanup can be
// retried. Should the availability be gone (only possible behind the
// Store's back), the bytes go back to the repo quota instead.
func (s *Store) DeleteReservation(ctx context.Context, id ReservationID) error {
	// Blocks written behind the steps (by a PutBlock meanwhile) are
	// noticed, so that the last step looks for them: the first step that
	// leaves blocks for a next one starts watching (a reservation deleted
	// in one step, most are, needs no watch).
	var w owner.Watch
	defer func() {
		if w != nil {
			w.Stop()
		}
	}()
	after := ""
	for {
		next, done, err := s.deleteStep(ctx, id, after, &w)
		if err != nil {
			return fmt.Errorf("delete reservation %s: %w", id, err)
		}
		if done {
			return nil
		}
		after = next
	}
}

// deleteStep deletes up to deleteStep blocks of a reservation and, once it
// has none left, the reservation itself. Each step is its own change, so
// other changes are staged between two steps.
//
// The blocks' index entries are deleted in key order; after is the last
// one the steps before deleted (empty: none), and the step reads from
// there on (next is where the following step starts): a step that read
// from the start would step over every delete of the steps before it, not
// yet compacted away by LevelDB, and a big delete would cost per block in
// proportion to its size. Blocks a concurrent PutBlock wrote below after
// (*w, watching the reservation's block index, tells) are found by the
// last step, which then reads once from the start before it deletes the
// reservation. The first step that leaves blocks behind starts *w, under
// the staging lock, so that it sees every change staged after that step.
func (s *Store) deleteStep(ctx context.Context, id ReservationID, after string, w *owner.Watch) (next string, done bool, err error) {
	err = s.update(ctx, func(t txn) error {
		r, err := t.reservation(id)
		if errors.Is(err, ErrNotFound) {
			done = true // already deleted
			return nil
		}
		if err != nil {
			return err
		}
		a, err := t.availability(r.AvailabilityID)
		orphan := errors.Is(err, ErrNotFound)
		if err != nil && !orphan {
			return err
		}

		var freed uint64
		more := false
		prefix := reservationBlocksPrefix(id)
		base := len(prefix.String())
		n := 0
		next = after
		forget := func(key string, value []byte) error {
			if n == deleteStep {
				more = true
				return errStop
			}
			n++
			size, err := decodeSize(datastore.RawKey(key), value)
			if err != nil {
				return err
			}
			if err := t.ForgetBlock(datastore.RawKey(key[base:]), size); err != nil {
				return err
			}
			freed += size
			next = key
			return t.Delete(datastore.RawKey(key))
		}
		// A reservation made through this repo that no block was written
		// for since has none to scan for; but in shared mode another
		// process may have written one, and Used > 0 says blocks exist.
		if after != "" || t.Shared() || r.Used > 0 || !s.st.hasNoBlocks(id) {
			err = t.ScanAfter(prefix, after, false, forget)
			if err != nil && !errors.Is(err, errStop) {
				return err
			}
		}
		if more && *w == nil {
			*w = s.own.Watch(prefix)
		}
		if !more && after != "" && *w != nil && (*w).Hit() {
			// The last step, with blocks written meanwhile: anything
			// left below after (this step's own deletes are skipped as
			// pending).
			err = t.Scan(prefix, false, forget)
			if err != nil && !errors.Is(err, errStop) {
				return err
			}
			if more {
				next = "" // the next step starts from the start again
			}
		}
		freed = min(freed, r.Used)
		r.Used -= freed
		// The blocks' bytes go back to the availability, so back to Reserved.
		if !orphan {
			if err := t.Reserve(freed); err != nil {
				return err
			}
			a.Size += freed
		}
		if more {
			if !orphan {
				if err := t.putAvailability(s.st, a); err != nil {
					return err
				}
			}
			return t.putReservation(r)
		}
		done = true
		s.st.noBlocks.delete(id)
		if orphan {
			s.log.Warn("reservation outlived its availability; returning its bytes to the quota",
				"reservation", id, "availability", r.AvailabilityID, "bytes", r.Size)
			if err := t.Release(r.Size); err != nil {
				return err
			}
		} else {
			a.Size += r.Size + r.Used // Used is zero unless blocks went missing
			if r.Used > 0 {
				if err := t.Reserve(r.Used); err != nil {
					return err
				}
			}
			if a.hasBudget() {
				a.FreeCollateral.Add(&a.FreeCollateral, &r.Collateral)
			}
			if err := t.putAvailability(s.st, a); err != nil {
				return err
			}
		}
		for _, k := range []datastore.Key{reservationKey(r.AvailabilityID, id), byIDKey(id)} {
			if err := t.Delete(k); err != nil {
				return err
			}
		}
		if err := t.deleteExpiry(&r); err != nil {
			return err
		}
		return t.deleteSlotIndex(r)
	})
	return next, done, err
}

var errStop = errors.New("stop")

// deleteSlotIndex removes the slot's index entry if it names r.
func (t txn) deleteSlotIndex(r Reservation) error {
	key := slotKey(r.RequestID, r.SlotIndex)
	b, err := t.Get(key)
	if errors.Is(err, datastore.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !isSlotOf(b, r) {
		if _, rid, err := decodeSlot(key, b); err == nil && rid != r.ID {
			return nil
		}
	}
	return t.Delete(key)
}

// ReclaimExpired deletes, as DeleteReservation does, every reservation whose
// ValidUntil is set and not after now: the sweep that gives a host the
// bytes of slots it never got to fill or whose contract is over. It returns
// how many it deleted; an error for one reservation does not stop the
// others, and the errors are returned joined.
//
// It reads only the expiry index's entries up to now (see the package
// doc): a sweep that finds nothing expired costs a few reads, however
// many reservations the store holds.
//
// A host runs it periodically:
//
//	for {
//		select {
//		case <-ctx.Done():
//			return
//		case now := <-ticker.C:
//			if n, err := store.ReclaimExpired(ctx, now); err != nil {
//				log.Warn("reclaim expired reservations", "reclaimed", n, "err", err)
//			}
//		}
//	}
func (s *Store) ReclaimExpired(ctx context.Context, now time.Time) (int, error) {
	var due []ReservationID
	end := encodeExpiry(now)
	err := s.view(ctx, func(t txn) error {
		due = due[:0]
		err := t.Scan(expiryPrefix, false, func(key string, value []byte) error {
			when, id, err := parseExpiryKey(key)
			if err != nil {
				return err
			}
			if when > end {
				return errStop // in time order: none after this has expired
			}
			if _, err := ParseAvailabilityID(string(value)); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
			}
			due = append(due, id)
			return nil
		})
		if errors.Is(err, errStop) {
			return nil
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("reclaim expired: %w", err)
	}
	var errs []error
	n := 0
	for _, id := range due {
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
		if err := s.DeleteReservation(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if err := errors.Join(errs...); err != nil {
		return n, fmt.Errorf("reclaim expired: %w", err)
	}
	return n, nil
}

package reservations

import (
	"context"
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage/internal/engine"
)

// Verify checks that the books balance: every invariant of the Store and
// of its repo, reported one error each (all matching ErrInvariant, or
// repo.ErrInvariant for the repo's own), joined:
//
//  1. repo.Reserved == Σ availability.Size + Σ reservation.Size;
//  2. for every availability, TotalSize == Size + Σ over its reservations
//     (Size + Used);
//  3. repo.Used == Σ sizes of the stored blocks, Σ reservation.Used <=
//     repo.Used, and each reservation's Used is the sum of the blocks it
//     wrote, each of which is stored with that size;
//  4. with a collateral budget, FreeCollateral + Σ reservation.Collateral
//     == TotalCollateral;
//  5. the counters on disk equal those in memory;
//
// and that every reservation's availability exists and its indexes (by ID,
// by slot) agree with it. It sees every record at one instant: it waits for
// the changes in flight and holds new ones off while it reads everything,
// so run it from tests, after a restart or on an operator's command, not on
// every sale. A corrupt record fails it with ErrCorrupt.
//
// The invariants hold while this package is the only one reserving and
// releasing the repo's bytes and writing its records.
func (s *Store) Verify(ctx context.Context) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	return s.eng.View(ctx, func(tx *engine.Tx) error { return verify(txn{tx}) })
}

type books struct {
	as    []Availability
	rs    []Reservation
	byID  map[ReservationID]AvailabilityID
	slots map[string]ReservationID
	// blocks sums, per reservation, the sizes its block index records.
	blocks map[ReservationID]uint64
	// missing lists indexed blocks not stored with their recorded size.
	missing []string
	indexed []AvailabilityID
}

func verify(t txn) error {
	errs := []error{t.VerifyCounters()}
	b, err := t.readBooks()
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("verify: %w", err))...)
	}
	inv := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrInvariant}, args...)...))
	}
	q := t.Counters()

	var availBytes, resBytes, usedBytes uint64
	var overflow bool
	add := func(sum *uint64, n uint64) {
		var c uint64
		*sum, c = bits.Add64(*sum, n, 0)
		overflow = overflow || c != 0
	}
	type holding struct {
		bytes uint64
		coll  uint256.Int
	}
	holds := map[AvailabilityID]*holding{}
	for _, a := range b.as {
		add(&availBytes, a.Size)
		holds[a.ID] = &holding{}
	}
	for _, id := range b.indexed {
		if holds[id] == nil {
			inv("the index names availability %s, which does not exist", id)
		}
	}
	if len(b.indexed) != len(b.as) {
		inv("%d availabilities, %d indexed", len(b.as), len(b.indexed))
	}
	for _, r := range b.rs {
		add(&resBytes, r.Size)
		add(&usedBytes, r.Used)
		h, ok := holds[r.AvailabilityID]
		if !ok {
			inv("reservation %s draws on missing availability %s", r.ID, r.AvailabilityID)
		} else {
			h.bytes += r.Size + r.Used
			h.coll.Add(&h.coll, &r.Collateral)
		}
		if aid, ok := b.byID[r.ID]; !ok || aid != r.AvailabilityID {
			inv("reservation %s is not indexed by its ID", r.ID)
		}
		delete(b.byID, r.ID)
		sk := slotKey(r.RequestID, r.SlotIndex).String()
		if rid, ok := b.slots[sk]; !ok || rid != r.ID {
			inv("slot %d of %s does not name its reservation %s", r.SlotIndex, r.RequestID, r.ID)
		}
		delete(b.slots, sk)
		if got := b.blocks[r.ID]; got != r.Used {
			inv("reservation %s has used %d, its blocks hold %d: difference %+d", r.ID, r.Used, got, int64(r.Used-got))
		}
		delete(b.blocks, r.ID)
	}
	for id := range b.byID {
		inv("index names reservation %s, which does not exist", id)
	}
	for k := range b.slots {
		inv("slot index %s names no reservation", k)
	}
	for id := range b.blocks {
		inv("blocks are indexed for reservation %s, which does not exist", id)
	}
	for _, k := range b.missing {
		inv("block %s is not stored with the size its reservation recorded", k)
	}
	for _, a := range b.as {
		h := holds[a.ID]
		if a.TotalSize != a.Size+h.bytes {
			inv("availability %s has totalSize %d, size %d and its reservations hold %d: difference %+d",
				a.ID, a.TotalSize, a.Size, h.bytes, int64(a.TotalSize-a.Size-h.bytes))
		}
		if a.hasBudget() {
			var sum uint256.Int
			sum.Add(&a.FreeCollateral, &h.coll)
			if !sum.Eq(&a.TotalCollateral) {
				inv("availability %s has a collateral budget of %s, %s free and its reservations hold %s",
					a.ID, a.TotalCollateral.Dec(), a.FreeCollateral.Dec(), h.coll.Dec())
			}
		}
	}
	sum, c := bits.Add64(availBytes, resBytes, 0)
	if overflow || c != 0 || sum != q.Reserved {
		inv("repo reserved %d, availabilities hold %d (%d records), reservations hold %d (%d records): difference %+d",
			q.Reserved, availBytes, len(b.as), resBytes, len(b.rs), int64(q.Reserved-sum))
	}
	if usedBytes > q.Used {
		inv("reservations used %d, repo used %d", usedBytes, q.Used)
	}
	return errors.Join(errs...)
}

// readBooks reads every record of the Store.
func (t txn) readBooks() (*books, error) {
	b := &books{byID: map[ReservationID]AvailabilityID{}, slots: map[string]ReservationID{}, blocks: map[ReservationID]uint64{}}
	err := t.Scan(recordsPrefix, false, func(key string, value []byte) error {
		if !isReservationKey(key) {
			a, err := decodeAvailability(datastore.RawKey(key), value)
			b.as = append(b.as, a)
			return err
		}
		r, err := decodeReservation(datastore.RawKey(key), value)
		b.rs = append(b.rs, r)
		return err
	})
	if err != nil {
		return nil, err
	}
	err = t.Scan(availIndexPrefix, true, func(key string, _ []byte) error {
		id, err := ParseAvailabilityID(key[len(availIndexPrefix.String())+1:])
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
		}
		b.indexed = append(b.indexed, id)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = t.Scan(byIDPrefix, false, func(key string, value []byte) error {
		rid, err1 := ParseReservationID(key[len(byIDPrefix.String())+1:])
		aid, err2 := ParseAvailabilityID(string(value))
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
		}
		b.byID[rid] = aid
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = t.Scan(slotPrefix, false, func(key string, value []byte) error {
		_, rid, err := decodeSlot(datastore.RawKey(key), value)
		b.slots[key] = rid
		return err
	})
	if err != nil {
		return nil, err
	}
	base := len(blocksPrefix.String()) + 1
	err = t.Scan(blocksPrefix, false, func(key string, value []byte) error {
		rest := key[base:]
		i := strings.IndexByte(rest, '/')
		if i < 0 {
			return fmt.Errorf("%w: unexpected key %s", ErrCorrupt, key)
		}
		rid, err := ParseReservationID(rest[:i])
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
		}
		size, err := decodeSize(datastore.RawKey(key), value)
		if err != nil {
			return err
		}
		b.blocks[rid] += size
		stored, ok, err := t.BlockSize(datastore.RawKey(rest[i:]))
		if err != nil {
			return err
		}
		if !ok || stored != size {
			b.missing = append(b.missing, rest[i:])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

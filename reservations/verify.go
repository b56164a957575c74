package reservations

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/internal/owner"
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
// by slot, by expiry) agree with it, and every index entry names a record
// that exists. A corrupt record fails it with ErrCorrupt.
//
// It reads one state between two committed changes. On the embedded
// LevelDB (repo.Open) it holds new changes off only until those in flight
// are durable, takes a snapshot and the counters memory holds for it, and
// reads the snapshot while changes go on: a concurrent change can neither
// fail it nor hide a fault from it; it only means the answer is about the
// state at the snapshot, not about any change made after it. With a
// separate block store or another datastore it holds every change off
// while it reads everything (they wait, they do not fail); in shared mode
// it is one read-only transaction. Its cost grows with the number of
// records and indexed blocks (one read of each, plus sorting the
// reservations by ID once).
//
// The invariants hold while this package is the only one reserving and
// releasing the repo's bytes and writing its records.
func (s *Store) Verify(ctx context.Context) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	return s.own.Snapshot(ctx, func(tx owner.Tx) error {
		if verifyHook != nil {
			verifyHook()
		}
		return verify(txn{tx})
	})
}

// verifyHook, set by tests, runs when Verify starts reading.
var verifyHook func()

// checked is what Verify keeps of a reservation while it joins the
// indexes with the records.
type checked struct {
	id, aid       [16]byte
	used, blocks  uint64
	req           stowage.RequestID
	index         uint64
	expiry        string // its <when> in the expiry index; "" for none
	byID, bySlot  bool   // an index entry names it
	byExp, holder bool   // (holder: its availability exists)
}

// audit collects the differences Verify finds.
type audit struct{ errs []error }

func (a *audit) inv(format string, args ...any) {
	a.errs = append(a.errs, fmt.Errorf("%w: "+format, append([]any{ErrInvariant}, args...)...))
}

func verify(t txn) error {
	a := &audit{errs: []error{t.VerifyCounters()}}
	if err := t.audit(a); err != nil {
		a.errs = append(a.errs, fmt.Errorf("verify: %w", err))
	}
	return errors.Join(a.errs...)
}

// audit reads every record once, in key order, checking each availability
// against its reservations with running sums, and joins each index with
// the reservations sorted by ID.
func (t txn) audit(a *audit) error {
	var q struct{ Used, Reserved uint64 }
	q.Used, q.Reserved = t.Counters()
	var availBytes, resBytes, usedBytes uint64
	var overflow bool
	add := func(sum *uint64, n uint64) {
		var c uint64
		*sum, c = bits.Add64(*sum, n, 0)
		overflow = overflow || c != 0
	}

	// Availabilities, each followed by its reservations.
	var avails []AvailabilityID
	var rs []checked
	var cur *Availability // the availability whose reservations follow
	var held uint64
	var coll uint256.Int
	settle := func() {
		if cur == nil {
			return
		}
		if cur.TotalSize != cur.Size+held {
			a.inv("availability %s has totalSize %d, size %d and its reservations hold %d: difference %+d",
				cur.ID, cur.TotalSize, cur.Size, held, int64(cur.TotalSize-cur.Size-held))
		}
		if cur.hasBudget() {
			var sum uint256.Int
			sum.Add(&cur.FreeCollateral, &coll)
			if !sum.Eq(&cur.TotalCollateral) {
				a.inv("availability %s has a collateral budget of %s, %s free and its reservations hold %s",
					cur.ID, cur.TotalCollateral.Dec(), cur.FreeCollateral.Dec(), coll.Dec())
			}
		}
	}
	var curA Availability
	err := t.Scan(recordsPrefix, false, func(key string, value []byte) error {
		k := datastore.RawKey(key)
		if !isReservationKey(key) {
			settle()
			av, err := decodeAvailability(k, value)
			if err != nil {
				return err
			}
			curA, cur, held, coll = av, &curA, 0, uint256.Int{}
			add(&availBytes, av.Size)
			avails = append(avails, av.ID)
			return nil
		}
		r, err := parseReservation(value)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, key, err)
		}
		if !isReservationKeyOf(key, r.AvailabilityID, r.ID) {
			return fmt.Errorf("%w: %s holds reservation %s of availability %s", ErrCorrupt, key, r.ID, r.AvailabilityID)
		}
		add(&resBytes, r.Size)
		add(&usedBytes, r.Used)
		c := checked{id: r.ID, aid: r.AvailabilityID, used: r.Used, req: r.RequestID, index: r.SlotIndex}
		if !r.ValidUntil.IsZero() {
			c.expiry = encodeExpiry(r.ValidUntil)
		}
		if cur != nil && cur.ID == r.AvailabilityID {
			c.holder = true
			held += r.Size + r.Used
			coll.Add(&coll, &r.Collateral)
		} else {
			a.inv("reservation %s draws on missing availability %s", r.ID, r.AvailabilityID)
		}
		rs = append(rs, c)
		return nil
	})
	if err != nil {
		return err
	}
	settle()

	// The index of availabilities, in ID order as the records are.
	i, indexed := 0, 0
	err = t.Scan(availIndexPrefix, true, func(key string, _ []byte) error {
		indexed++
		id, err := availabilityIDOf(key[len(availIndexPrefix.String())+1:])
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
		}
		for i < len(avails) && bytes.Compare(avails[i][:], id[:]) < 0 {
			a.inv("availability %s is not indexed", avails[i])
			i++
		}
		if i < len(avails) && avails[i] == id {
			i++
		} else {
			a.inv("the index names availability %s, which does not exist", id)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for ; i < len(avails); i++ {
		a.inv("availability %s is not indexed", avails[i])
	}
	if indexed != len(avails) {
		a.inv("%d availabilities, %d indexed", len(avails), indexed)
	}

	// The reservations in ID order, which the other indexes share.
	slices.SortFunc(rs, func(x, y checked) int { return bytes.Compare(x.id[:], y.id[:]) })
	find := func(id [16]byte) *checked {
		j, ok := slices.BinarySearchFunc(rs, id, func(c checked, id [16]byte) int { return bytes.Compare(c.id[:], id[:]) })
		if !ok {
			return nil
		}
		return &rs[j]
	}

	err = t.Scan(byIDPrefix, false, func(key string, value []byte) error {
		rid, err1 := reservationIDOf(key[len(byIDPrefix.String())+1:])
		aid, err2 := availabilityIDOf(string(value))
		if err := errors.Join(err1, err2); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
		}
		if c := find(rid); c == nil {
			a.inv("index names reservation %s, which does not exist", rid)
		} else if c.aid == aid {
			c.byID = true
		}
		return nil
	})
	if err != nil {
		return err
	}

	err = t.Scan(slotPrefix, false, func(key string, value []byte) error {
		var aid, rid [16]byte
		ok := len(value) == 73 && value[36] == '/'
		if ok {
			var ok1, ok2 bool
			aid, ok1 = uuidOf(string(value[:36]))
			rid, ok2 = uuidOf(string(value[37:]))
			ok = ok1 && ok2
		}
		if !ok {
			a, r, err := decodeSlot(datastore.RawKey(key), value)
			if err != nil {
				return err
			}
			aid, rid = a, r
		}
		req, index, ok := parseSlotKey(key)
		if !ok {
			return fmt.Errorf("%w: unexpected key %s", ErrCorrupt, key)
		}
		if c := find(rid); c != nil && c.aid == aid && c.req == req && c.index == index && !c.bySlot {
			c.bySlot = true
		} else {
			a.inv("slot index %s names no reservation", key)
		}
		return nil
	})
	if err != nil {
		return err
	}

	err = t.Scan(expiryPrefix, false, func(key string, value []byte) error {
		when, rid, err := parseExpiryKey(key)
		if err != nil {
			return err
		}
		c := find(rid)
		if c == nil || c.expiry != when || c.byExp {
			a.inv("expiry index %s names no reservation that expires then", key)
			return nil
		}
		if aid, err := availabilityIDOf(string(value)); err != nil || aid != c.aid {
			a.inv("expiry index %s does not name the availability of reservation %s", key, c.id)
		}
		c.byExp = true
		return nil
	})
	if err != nil {
		return err
	}

	// The blocks, grouped by reservation ID.
	base := len(blocksPrefix.String()) + 1
	var last [16]byte
	var lastC *checked
	first := true
	err = t.Scan(blocksPrefix, false, func(key string, value []byte) error {
		rest := key[base:]
		j := strings.IndexByte(rest, '/')
		if j < 0 {
			return fmt.Errorf("%w: unexpected key %s", ErrCorrupt, key)
		}
		rid, err := reservationIDOf(rest[:j])
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
		}
		size, err := decodeSize(datastore.RawKey(key), value)
		if err != nil {
			return err
		}
		if first || rid != last {
			first, last, lastC = false, rid, find(rid)
			if lastC == nil {
				a.inv("blocks are indexed for reservation %s, which does not exist", ReservationID(rid))
			}
		}
		if lastC != nil {
			lastC.blocks += size
		}
		stored, ok, err := t.BlockSize(datastore.RawKey(rest[j:]))
		if err != nil {
			return err
		}
		if !ok || stored != size {
			a.inv("block %s is not stored with the size its reservation recorded", rest[j:])
		}
		return nil
	})
	if err != nil {
		return err
	}

	for i := range rs {
		c := &rs[i]
		id := ReservationID(c.id)
		if !c.byID {
			a.inv("reservation %s is not indexed by its ID", id)
		}
		if !c.bySlot {
			a.inv("slot %d of %s does not name its reservation %s", c.index, c.req, id)
		}
		if c.expiry != "" && !c.byExp {
			a.inv("reservation %s is not indexed by its expiry", id)
		}
		if c.blocks != c.used {
			a.inv("reservation %s has used %d, its blocks hold %d: difference %+d", id, c.used, c.blocks, int64(c.used-c.blocks))
		}
	}
	sum, carry := bits.Add64(availBytes, resBytes, 0)
	if overflow || carry != 0 || sum != q.Reserved {
		a.inv("repo reserved %d, availabilities hold %d (%d records), reservations hold %d (%d records): difference %+d",
			q.Reserved, availBytes, len(avails), resBytes, len(rs), int64(q.Reserved-sum))
	}
	if usedBytes > q.Used {
		a.inv("reservations used %d, repo used %d", usedBytes, q.Used)
	}
	return nil
}

// parseSlotKey reads the request and slot index out of a slot index key
// as slotKey writes it.
func parseSlotKey(key string) (stowage.RequestID, uint64, bool) {
	var req stowage.RequestID
	p := parser{b: []byte(key)}
	if !p.lit(slotPrefix.String()+"/0x") || !p.hex(req[:]) || !p.lit("/") {
		return req, 0, false
	}
	var index uint64
	return req, index, p.uint(&index) && p.done()
}

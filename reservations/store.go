package reservations

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/internal/engine"
	"github.com/stowage/stowage/repo"
)

type options struct {
	onAdded func(context.Context, Availability)
	logger  *slog.Logger
}

// Option configures New.
type Option func(*options)

// WithOnAvailabilityAdded sets a hook called after each availability is
// added, with the stored availability. It runs on the caller's goroutine
// once the availability is durable and no lock is held, so it may call back
// into the Store. A panic in it is recovered and logged; it cannot undo or
// corrupt the availability.
func WithOnAvailabilityAdded(fn func(ctx context.Context, a Availability)) Option {
	return func(o *options) { o.onAdded = fn }
}

// WithLogger sets the logger for diagnostics. The default discards them.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// Store keeps Availabilities and Reservations in the repo's metadata
// datastore and their bytes in the repo's quota.
//
// Every change re-reads the records it changes and stages its writes under
// the repo's staging lock, and is committed as one atomic batch together
// with the quota counters (see package repo), so concurrent callers can
// never overcommit and a crash can never leave the records and the quota
// disagreeing. A Store is safe for concurrent use, and so are several
// Stores on one repo: they share one state.
type Store struct {
	repo    *repo.Repo
	eng     *engine.Engine
	st      *state
	onAdded func(context.Context, Availability)
	log     *slog.Logger
}

// state is what every Store on one repo shares.
type state struct {
	migrated atomic.Bool

	mu     sync.Mutex
	loaded bool // hints holds every availability as of generation gen
	gen    uint64
	hints  map[AvailabilityID]Availability
}

type stateKey struct{}

// New returns a Store over r. Stores made on the same repo share their
// state, so making several is safe (if pointless).
func New(r *repo.Repo, opts ...Option) *Store {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	e := engine.Of(r)
	st := e.Ext(stateKey{}, func() any { return &state{hints: map[AvailabilityID]Availability{}} }).(*state)
	return &Store{repo: r, eng: e, st: st, onAdded: o.onAdded, log: o.logger}
}

// txn is a change being staged, with the record helpers.
type txn struct{ *engine.Tx }

// update runs fn as one atomic change. Until the datastore is known to be
// in the current layout, it first moves the records of the first release
// (in the same change) and marks the layout with its first write.
func (s *Store) update(ctx context.Context, fn func(t txn) error) error {
	if s.st.migrated.Load() {
		return s.eng.Update(ctx, func(tx *engine.Tx) error { return fn(txn{tx}) })
	}
	marked := false
	err := s.eng.Update(ctx, func(tx *engine.Tx) error {
		t := txn{tx}
		var err error
		if marked, err = migrate(t, s.log); err != nil {
			return fmt.Errorf("reservations: move records to layout %s: %w", layoutVersion, err)
		}
		if err := fn(t); err != nil {
			return err
		}
		if !marked && t.Dirty() {
			marked = true
			return t.Put(layoutKey, []byte(layoutVersion))
		}
		return nil
	})
	if err == nil && marked {
		s.st.migrated.Store(true)
	}
	return err
}

// ready makes sure a read finds the records where the current layout has
// them.
func (s *Store) ready(ctx context.Context) error {
	if s.st.migrated.Load() {
		return nil
	}
	return s.update(ctx, func(txn) error { return nil })
}

func (t txn) availability(id AvailabilityID) (Availability, error) {
	key := availabilityKey(id)
	b, err := t.Get(key)
	if errors.Is(err, datastore.ErrNotFound) {
		return Availability{}, fmt.Errorf("%w: availability %s", ErrNotFound, id)
	}
	if err != nil {
		return Availability{}, err
	}
	return decodeAvailability(key, b)
}

// reservation finds a reservation by its own ID.
func (t txn) reservation(id ReservationID) (Reservation, error) {
	idx := byIDKey(id)
	b, err := t.Get(idx)
	if errors.Is(err, datastore.ErrNotFound) {
		return Reservation{}, fmt.Errorf("%w: reservation %s", ErrNotFound, id)
	}
	if err != nil {
		return Reservation{}, err
	}
	aid, err := ParseAvailabilityID(string(b))
	if err != nil {
		return Reservation{}, fmt.Errorf("%w: %s: %w", ErrCorrupt, idx, err)
	}
	r, found, err := t.reservationAt(aid, id)
	if err == nil && !found {
		return Reservation{}, fmt.Errorf("%w: %s names availability %s, which has no such reservation", ErrCorrupt, idx, aid)
	}
	return r, err
}

// reservationOf finds a reservation that draws on availabilityID. It reads
// the record at its key; the index by ID is read only to explain a miss
// (a reservation that exists under another availability, or a corrupt
// index).
func (t txn) reservationOf(id ReservationID, availabilityID AvailabilityID) (Reservation, error) {
	r, found, err := t.reservationAt(availabilityID, id)
	if err != nil || found {
		return r, err
	}
	if r, err = t.reservation(id); err != nil {
		return Reservation{}, err
	}
	return Reservation{}, notUnder(r, availabilityID)
}

// notUnder is the error for reservation r, looked for under another
// availability than its own.
func notUnder(r Reservation, availabilityID AvailabilityID) error {
	return fmt.Errorf("%w: reservation %s draws on availability %s, not %s", ErrNotFound, r.ID, r.AvailabilityID, availabilityID)
}

// reservationAt reads the record of reservation id of availabilityID.
func (t txn) reservationAt(availabilityID AvailabilityID, id ReservationID) (Reservation, bool, error) {
	key := reservationKey(availabilityID, id)
	b, err := t.Get(key)
	if errors.Is(err, datastore.ErrNotFound) {
		return Reservation{}, false, nil
	}
	if err != nil {
		return Reservation{}, false, err
	}
	r, err := decodeReservation(key, b)
	return r, err == nil, err
}

func (t txn) putAvailability(s *state, a Availability) error {
	b, err := encodeAvailability(a)
	if err != nil {
		return err
	}
	t.AfterStage(func() { s.setHint(a) })
	return t.Put(a.Key(), b)
}

// addAvailability stages a new availability and its index entry.
func (t txn) addAvailability(s *state, a Availability) error {
	if err := t.Put(availabilityIndexKey(a.ID), nil); err != nil {
		return err
	}
	return t.putAvailability(s, a)
}

func (t txn) putReservation(r Reservation) error {
	b, err := encodeReservation(r)
	if err != nil {
		return err
	}
	return t.Put(r.Key(), b)
}

// setHint records a staged availability in the hints, if they are loaded.
// Called under the staging lock.
func (s *state) setHint(a Availability) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.loaded {
		s.hints[a.ID] = a
	}
}

func (s *state) dropHint(id AvailabilityID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.hints, id)
}

// loadHints makes the hints hold every availability as this change sees
// them. Called under the staging lock.
func (s *state) loadHints(t txn) error {
	s.mu.Lock()
	// In shared mode other processes change the availabilities: read them.
	ok := s.loaded && s.gen == t.Generation() && !t.Shared()
	s.mu.Unlock()
	if ok {
		return nil
	}
	as, err := t.availabilities()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.hints)
	for _, a := range as {
		s.hints[a.ID] = a
	}
	s.loaded, s.gen = true, t.Generation()
	return nil
}

func (t txn) availabilities() ([]Availability, error) {
	return listAvailabilities(t.Scan, t.Get)
}

// listAvailabilities reads every availability through its index entry, in
// ID order.
func listAvailabilities(scan func(datastore.Key, bool, func(string, []byte) error) error, get func(datastore.Key) ([]byte, error)) ([]Availability, error) {
	var as []Availability
	base := len(availIndexPrefix.String()) + 1
	err := scan(availIndexPrefix, true, func(key string, _ []byte) error {
		id, err := ParseAvailabilityID(key[base:])
		if err != nil {
			return fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
		}
		k := availabilityKey(id)
		b, err := get(k)
		if errors.Is(err, datastore.ErrNotFound) {
			return fmt.Errorf("%w: %s indexes a missing availability", ErrCorrupt, key)
		}
		if err != nil {
			return err
		}
		a, err := decodeAvailability(k, b)
		as = append(as, a)
		return err
	})
	return as, err
}

// AddAvailability stores a new availability with all its terms and reserves
// its bytes in the repo quota, as one atomic change. a.ID is assigned; the
// offer is a.TotalSize (or a.Size when TotalSize is zero; if both are set
// they must agree), all of it free. FreeCollateral starts at
// TotalCollateral. When the quota is too small the error matches both
// ErrReserveFailed and repo.ErrQuotaNotEnough, and nothing is written.
func (s *Store) AddAvailability(ctx context.Context, a Availability) (Availability, error) {
	if a.TotalSize == 0 {
		a.TotalSize = a.Size
	}
	if a.TotalSize == 0 {
		return Availability{}, fmt.Errorf("add availability: %w", ErrInvalidSize)
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
			return fmt.Errorf("%w: %w", ErrReserveFailed, err)
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

// CreateAvailability is AddAvailability with the first release's terms:
// size bytes for slots of at most duration seconds, paying at least
// minPrice per slot, asking at most maxCollateral.
func (s *Store) CreateAvailability(ctx context.Context, size, duration uint64, minPrice, maxCollateral uint256.Int) (Availability, error) {
	return s.AddAvailability(ctx, Availability{TotalSize: size, Duration: duration, MinPrice: minPrice, MaxCollateral: maxCollateral})
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

// UpdateAvailability replaces the terms of the availability with a.ID by
// a's, and resizes it. Size and TotalSize move together: a change of either
// by d (relative to the stored availability) changes both by d; growing
// reserves the difference in the quota (ErrReserveFailed and
// repo.ErrQuotaNotEnough when it does not fit), shrinking releases it, and
// shrinking below what its reservations hold fails with
// ErrBytesOutOfBounds. Both changed by different amounts fails with
// ErrStaleAvailability: that is how a copy read before reservations changed
// the availability shows. FreeCollateral follows TotalCollateral likewise
// (never below what reservations hold). An unknown ID fails with
// ErrNotFound.
//
// A stale copy whose Size alone differs cannot be told from an edit of
// Size: to change an availability relative to its current state (give back
// n bytes, say), use ModifyAvailability, which hands fn the current record.
func (s *Store) UpdateAvailability(ctx context.Context, a Availability) error {
	_, err := s.ModifyAvailability(ctx, a.ID, func(cur *Availability) error {
		*cur = a
		return nil
	})
	return err
}

// ModifyAvailability changes an availability atomically with respect to
// every other operation: fn receives the current availability and edits it
// in place, and the result is stored as by UpdateAvailability. fn runs
// under the repo's staging lock, possibly on the goroutine of another
// call staging changes at the same time, so it must be quick and must not
// call the Store. An error from fn aborts the change and is returned
// wrapped; so does changing the ID.
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
		if a.Size > cur.Size {
			if err := t.Reserve(a.Size - cur.Size); err != nil {
				return fmt.Errorf("grow by %d bytes: %w: %w", a.Size-cur.Size, ErrReserveFailed, err)
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
			return fmt.Errorf("%w: size changed by %d, totalSize by %d", ErrStaleAvailability,
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
		return t.Delete(a.Key())
	})
	if err != nil {
		return fmt.Errorf("delete availability %s: %w", id, err)
	}
	return nil
}

func availabilityReservations(id AvailabilityID) datastore.Key {
	return Prefix.ChildString(id.String())
}

// Availability returns the availability with id, or ErrNotFound.
func (s *Store) Availability(ctx context.Context, id AvailabilityID) (Availability, error) {
	a, err := read(ctx, s, availabilityKey(id), decodeAvailability)
	if err != nil {
		return Availability{}, fmt.Errorf("get availability %s: %w", id, err)
	}
	return a, nil
}

// Reservation returns the reservation with id, which must draw on
// availabilityID (ErrNotFound otherwise).
func (s *Store) Reservation(ctx context.Context, id ReservationID, availabilityID AvailabilityID) (Reservation, error) {
	aid, err := read(ctx, s, byIDKey(id), func(key datastore.Key, b []byte) (AvailabilityID, error) {
		return ParseAvailabilityID(string(b))
	})
	if err == nil && aid != availabilityID {
		err = fmt.Errorf("%w: it draws on availability %s, not %s", ErrNotFound, aid, availabilityID)
	}
	var r Reservation
	if err == nil {
		r, err = read(ctx, s, reservationKey(aid, id), decodeReservation)
	}
	if err != nil {
		return Reservation{}, fmt.Errorf("get reservation %s: %w", id, err)
	}
	return r, nil
}

// ReservationForSlot returns the reservation a slot holds; false when it
// holds none. It reads the slot's index and the reservation in one
// consistent state (see Availabilities).
func (s *Store) ReservationForSlot(ctx context.Context, requestID stowage.RequestID, index uint64) (Reservation, bool, error) {
	var r Reservation
	var found bool
	err := s.view(ctx, func(t txn) error {
		key := slotKey(requestID, index)
		b, err := t.Get(key)
		if errors.Is(err, datastore.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		aid, rid, err := decodeSlot(key, b)
		if err != nil {
			return err
		}
		r, found, err = t.reservationAt(aid, rid)
		if err == nil && !found {
			err = fmt.Errorf("%w: %s names reservation %s of availability %s, which does not exist", ErrCorrupt, key, rid, aid)
		}
		return err
	})
	if err != nil {
		return Reservation{}, false, fmt.Errorf("reservation for slot %d of %s: %w", index, requestID, err)
	}
	return r, found, nil
}

// view runs fn on one consistent state of the records (engine.Read): a
// LevelDB snapshot, a read-only transaction in shared mode, or a read
// under the staging lock on other datastores.
func (s *Store) view(ctx context.Context, fn func(t txn) error) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	return s.eng.Read(ctx, func(tx *engine.Tx) error { return fn(txn{tx}) })
}

// read reads one durable record and decodes it; a missing one is
// ErrNotFound.
func read[T any](ctx context.Context, s *Store, key datastore.Key, decode func(datastore.Key, []byte) (T, error)) (T, error) {
	var zero T
	if err := s.ready(ctx); err != nil {
		return zero, err
	}
	b, err := s.eng.Get(ctx, key)
	if errors.Is(err, datastore.ErrNotFound) {
		return zero, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return zero, err
	}
	return decode(key, b)
}

// HasAvailability reports whether an availability with id exists.
func (s *Store) HasAvailability(ctx context.Context, id AvailabilityID) (bool, error) {
	_, err := s.Availability(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// HasReservation reports whether a reservation with id exists and draws on
// availabilityID.
func (s *Store) HasReservation(ctx context.Context, id ReservationID, availabilityID AvailabilityID) (bool, error) {
	_, err := s.Reservation(ctx, id, availabilityID)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Availabilities returns every availability, oldest first. It reads only
// availability records; a corrupt one fails it with ErrCorrupt, and a read
// error fails it too (never a shorter list).
//
// Every listing (and ReservationForSlot) reads one consistent state: a
// snapshot of the embedded LevelDB, one read-only transaction in shared
// mode, or, on other datastores, a read under the staging lock (changes
// wait while it reads). A record a concurrent change deleted is simply not
// listed; ErrCorrupt means the datastore really holds an inconsistent
// state.
func (s *Store) Availabilities(ctx context.Context) ([]Availability, error) {
	var as []Availability
	err := s.view(ctx, func(t txn) error {
		var err error
		as, err = t.availabilities()
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list availabilities: %w", err)
	}
	return as, nil
}

// Reservations returns every reservation, oldest first.
func (s *Store) Reservations(ctx context.Context) ([]Reservation, error) {
	rs, err := scanAll(ctx, s, Prefix, isReservationKey, decodeReservation)
	if err != nil {
		return nil, fmt.Errorf("list reservations: %w", err)
	}
	slices.SortFunc(rs, func(x, y Reservation) int { return bytes.Compare(x.ID[:], y.ID[:]) })
	return rs, nil
}

// ReservationsOf returns the reservations drawing on one availability,
// oldest first.
func (s *Store) ReservationsOf(ctx context.Context, id AvailabilityID) ([]Reservation, error) {
	rs, err := scanAll(ctx, s, availabilityReservations(id), nil, decodeReservation)
	if err != nil {
		return nil, fmt.Errorf("list reservations of %s: %w", id, err)
	}
	return rs, nil
}

// isReservationKey tells a reservation's key under Prefix from an
// availability's.
func isReservationKey(key string) bool {
	return strings.Count(key[len(Prefix.String())+1:], "/") == 1
}

// scanAll decodes every record under prefix, in key order, in one
// consistent state. keep, when not nil, picks the keys to decode.
func scanAll[T any](ctx context.Context, s *Store, prefix datastore.Key, keep func(string) bool, decode func(datastore.Key, []byte) (T, error)) ([]T, error) {
	var out []T
	err := s.view(ctx, func(t txn) error {
		out = out[:0]
		return t.Scan(prefix, false, func(key string, value []byte) error {
			if keep != nil && !keep(key) {
				return nil
			}
			v, err := decode(datastore.RawKey(key), value)
			out = append(out, v)
			return err
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Available returns the repo's free bytes (see repo.Repo.Available).
func (s *Store) Available() uint64 { return s.repo.Available() }

// HasAvailable reports whether n more bytes fit in the repo quota.
func (s *Store) HasAvailable(n uint64) bool { return s.repo.HasAvailable(n) }

// migrate brings a datastore of the first release, which has no indexes
// and whose availabilities carry no TotalSize, to the current layout:
// TotalSize is Size plus what its reservations hold, and every availability
// and reservation is indexed. It reports whether
// the layout is marked (it was, or records were moved); an empty datastore
// is left unmarked until its first write.
func migrate(t txn, log *slog.Logger) (bool, error) {
	if b, err := t.Get(layoutKey); err == nil {
		return true, upgradeLayout(t, string(b), log)
	} else if !errors.Is(err, datastore.ErrNotFound) {
		return false, err
	}
	var as []Availability
	var rs []Reservation
	base := len(Prefix.String()) + 1
	err := t.Scan(Prefix, false, func(key string, value []byte) error {
		k := datastore.RawKey(key)
		switch strings.Count(key[base:], "/") {
		case 0:
			var a Availability
			if err := json.Unmarshal(value, &a); err != nil {
				return fmt.Errorf("%w: %s: %v", ErrCorrupt, key, err)
			}
			if Prefix.ChildString(a.ID.String()) != k {
				return fmt.Errorf("%w: %s holds availability %s", ErrCorrupt, key, a.ID)
			}
			as = append(as, a)
		case 1:
			r, err := decodeReservation(k, value)
			if err != nil {
				return err
			}
			rs = append(rs, r)
		default:
			return fmt.Errorf("%w: unexpected key %s", ErrCorrupt, key)
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	held := map[AvailabilityID]uint64{}
	for _, r := range rs {
		if r.SlotSize == 0 {
			r.SlotSize = r.Size + r.Used
		}
		held[r.AvailabilityID] += r.Size + r.Used
		if err := t.putReservation(r); err != nil {
			return false, err
		}
		if err := t.putExpiry(&r); err != nil {
			return false, err
		}
		if err := t.Put(byIDKey(r.ID), []byte(r.AvailabilityID.String())); err != nil {
			return false, err
		}
		if taken, err := t.Has(slotKey(r.RequestID, r.SlotIndex)); err != nil {
			return false, err
		} else if taken {
			log.Warn("two reservations for one slot; indexing the older", "reservation", r.ID, "request", r.RequestID, "slot", r.SlotIndex)
			continue
		}
		if err := t.Put(slotKey(r.RequestID, r.SlotIndex), encodeSlot(r)); err != nil {
			return false, err
		}
	}
	for _, a := range as {
		if a.TotalSize == 0 {
			a.TotalSize = a.Size + held[a.ID]
		}
		b, err := encodeAvailability(a)
		if err != nil {
			return false, err
		}
		if err := t.Put(a.Key(), b); err != nil {
			return false, err
		}
		if err := t.Put(availabilityIndexKey(a.ID), nil); err != nil {
			return false, err
		}
	}
	if len(as)+len(rs) == 0 {
		return false, nil
	}
	log.Info("records moved to the current layout", "availabilities", len(as), "reservations", len(rs))
	return true, t.Put(layoutKey, []byte(layoutVersion))
}

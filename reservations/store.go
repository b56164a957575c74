package reservations

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/internal/owner"
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
	own     owner.Repo // the repo as package reservations, its owner, sees it
	st      *state
	onAdded func(context.Context, Availability)
	log     *slog.Logger
}

// state is what every Store on one repo shares.
type state struct {
	laidOut atomic.Bool // the layout's version is known to be this release's

	mu     sync.Mutex
	loaded bool // hints holds every availability as of generation gen
	gen    uint64
	hints  map[AvailabilityID]Availability
}

// New returns a Store over r. Stores made on the same repo share their
// state, so making several is safe (if pointless).
func New(r *repo.Repo, opts ...Option) *Store {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	own := r.Owner(owner.Reservations)
	st := own.State(func() any { return &state{hints: map[AvailabilityID]Availability{}} }).(*state)
	return &Store{repo: r, own: own, st: st, onAdded: o.onAdded, log: o.logger}
}

// txn is a change being staged (a repo.Tx in this package's hands, which
// writes the records under /meta/sales), with the record helpers.
type txn struct{ owner.Tx }

// ownTx takes the change as this package, which owns /meta/sales (the
// Tx refuses only the zero capability).
func ownTx(tx *repo.Tx) (txn, error) {
	o, err := tx.Owner(owner.Reservations)
	return txn{o}, err
}

// update runs fn as one atomic change. Until the datastore's layout is
// known to be this release's, it checks the version recorded (ErrNewerLayout
// for a later one) and records it with the change's first write.
func (s *Store) update(ctx context.Context, fn func(t txn) error) error {
	if s.st.laidOut.Load() {
		return s.repo.Update(ctx, func(tx *repo.Tx) error {
			t, err := ownTx(tx)
			if err != nil {
				return err
			}
			return fn(t)
		})
	}
	known := false
	err := s.repo.Update(ctx, func(tx *repo.Tx) error {
		t, err := ownTx(tx)
		if err != nil {
			return err
		}
		if known, err = t.checkLayout(s.log); err != nil {
			return err
		}
		if err := fn(t); err != nil {
			return err
		}
		if !known && t.Dirty() {
			known = true
			return t.Put(layoutKey, []byte(strconv.Itoa(layoutVersion)))
		}
		return nil
	})
	if err == nil && known {
		s.st.laidOut.Store(true)
	}
	return err
}

// checkLayout reports whether the datastore records this release's layout.
// A datastore without a record (empty, or never written by this release) is
// taken to be in it; one in layout 2 is brought to it in the same change
// (upgradeLayout2); a later version fails with ErrNewerLayout.
func (t txn) checkLayout(log *slog.Logger) (bool, error) {
	b, err := t.Get(layoutKey)
	if errors.Is(err, datastore.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	v, err := strconv.Atoi(string(b))
	switch {
	case err != nil || v < 1:
		return false, fmt.Errorf("%w: %s holds %q", ErrCorrupt, layoutKey, b)
	case v > layoutVersion:
		return false, fmt.Errorf("%w: layout %d, this release reads layout %d", ErrNewerLayout, v, layoutVersion)
	case v == 2:
		// Written before the expiry index: build it in this change.
		return true, t.upgradeLayout2(log)
	case v < layoutVersion:
		// No release wrote an earlier version with this record.
		return false, fmt.Errorf("%w: %s holds layout %d, which no release wrote", ErrCorrupt, layoutKey, v)
	}
	return true, nil
}

// ready makes sure the datastore's layout is this release's before a read.
func (s *Store) ready(ctx context.Context) error {
	if s.st.laidOut.Load() {
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
	var aid AvailabilityID
	if err := aid.UnmarshalText(b); err != nil { // no copy of b, unlike ParseAvailabilityID
		return Reservation{}, fmt.Errorf("%w: %s: %w", ErrCorrupt, idx, err)
	}
	r, found, err := t.reservationAt(aid, id)
	if err == nil && !found {
		return Reservation{}, fmt.Errorf("%w: %s names availability %s, which has no such reservation", ErrCorrupt, idx, aid)
	}
	return r, err
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
	return t.Put(availabilityKey(a.ID), b)
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
	return t.Put(reservationKey(r.AvailabilityID, r.ID), b)
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

// Availability returns the availability with id, or ErrNotFound.
func (s *Store) Availability(ctx context.Context, id AvailabilityID) (Availability, error) {
	a, err := read(ctx, s, availabilityKey(id), decodeAvailability)
	if err != nil {
		return Availability{}, fmt.Errorf("get availability %s: %w", id, err)
	}
	return a, nil
}

// Reservation returns the reservation with id, or ErrNotFound.
func (s *Store) Reservation(ctx context.Context, id ReservationID) (Reservation, error) {
	aid, err := read(ctx, s, byIDKey(id), func(key datastore.Key, b []byte) (AvailabilityID, error) {
		var aid AvailabilityID
		if err := aid.UnmarshalText(b); err != nil {
			return AvailabilityID{}, fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
		}
		return aid, nil
	})
	var r Reservation
	if err == nil {
		// A reservation deleted between the two reads is not found.
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

// view runs fn on one consistent state of the records (repo.View): a
// LevelDB snapshot, a read-only transaction in shared mode, or a read
// under the staging lock on other datastores.
func (s *Store) view(ctx context.Context, fn func(t txn) error) error {
	if err := s.ready(ctx); err != nil {
		return err
	}
	return s.repo.View(ctx, func(tx *repo.Tx) error {
		t, err := ownTx(tx)
		if err != nil {
			return err
		}
		return fn(t)
	})
}

// read reads one durable record and decodes it; a missing one is
// ErrNotFound.
func read[T any](ctx context.Context, s *Store, key datastore.Key, decode func(datastore.Key, []byte) (T, error)) (T, error) {
	var zero T
	if err := s.ready(ctx); err != nil {
		return zero, err
	}
	b, err := s.own.Get(ctx, key)
	if errors.Is(err, datastore.ErrNotFound) {
		return zero, fmt.Errorf("%w: %s", ErrNotFound, key)
	}
	if err != nil {
		return zero, err
	}
	return decode(key, b)
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
	rs, err := scanAll(ctx, s, recordsPrefix, isReservationKey, decodeReservation)
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

// isReservationKey tells a reservation's key under recordsPrefix from an
// availability's.
func isReservationKey(key string) bool {
	return strings.Count(key[len(recordsPrefix.String())+1:], "/") == 1
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

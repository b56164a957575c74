package reservations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-datastore"

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

	// noBlocks are reservations made through this repo that no block
	// was written for since (every block enters the index through
	// putBlockIndex, which takes the reservation out), so that deleting
	// one need not scan its block index; see deleteStep for when that is
	// trusted. Changed under the staging lock only.
	noBlocks generations[ReservationID, struct{}]
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

// reservation finds a reservation by its own ID: under the availability
// this process last saw it under (an ID never moves), else through its
// index.
func (t txn) reservation(id ReservationID) (Reservation, error) {
	if aid, ok := availabilityOf.get(id); ok {
		if r, found, err := t.reservationAt(aid, id); err != nil || found {
			return r, err
		}
	}
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
	if err == nil {
		availabilityOf.put(id, aid)
	}
	return r, err
}

// availabilityOf remembers the availability of the reservations this
// process made or found, so that a change finds a reservation with one
// read instead of two (its index, then its record). It is no cache of
// state: a reservation's availability never changes, and a reservation
// not where it says (deleted, or never committed) is looked up through
// its index.
var availabilityOf idMemo

// idMemo maps reservations to their availabilities.
type idMemo struct {
	g generations[ReservationID, AvailabilityID]
}

func (m *idMemo) get(id ReservationID) (AvailabilityID, bool) {
	return m.g.get(id, func(AvailabilityID) bool { return true })
}

func (m *idMemo) put(id ReservationID, a AvailabilityID) { m.g.put(id, a) }

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

// hasNoBlocks reports whether reservation id was made through this repo
// and no block was written for it since.
func (s *state) hasNoBlocks(id ReservationID) bool {
	_, ok := s.noBlocks.get(id, func(struct{}) bool { return true })
	return ok
}

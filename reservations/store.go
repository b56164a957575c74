package reservations

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
)

type options struct {
	onAdded func(context.Context, Availability)
	logger  *slog.Logger
}

// Option configures New.
type Option func(*options)

// WithOnAvailabilityAdded sets a hook called after each availability is
// created, with the stored availability. It runs on the caller's goroutine
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
// Every change that touches more than one record (an availability, a
// reservation, the Reserved counter) is one atomic repo.Commit, made under a
// per-availability lock, so concurrent callers can never overcommit an
// availability and a crash can never leave the records and the quota
// disagreeing. A Store is safe for concurrent use. Operations on different
// availabilities proceed in parallel as far as the repo allows.
type Store struct {
	repo    *repo.Repo
	ds      datastore.Batching
	onAdded func(context.Context, Availability)
	log     *slog.Logger

	// changes is held shared by every mutation and exclusively by Verify,
	// which needs all records and the counter at one instant.
	changes sync.RWMutex
	locks   stripedMutex
	cache   *cache
}

// New returns a Store over r. The Store owns the records under Prefix in
// r's metadata datastore and keeps those it uses in memory, and expects to be
// the only one changing r's Reserved counter (see Verify): make one Store per
// repo, and do not write its records behind its back.
func New(r *repo.Repo, opts ...Option) *Store {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	return &Store{repo: r, ds: r.Datastore(), onAdded: o.onAdded, log: o.logger, cache: newCache()}
}

// lock takes the locks for a change to one availability; unlock releases
// them.
func (s *Store) lock(id AvailabilityID) *sync.Mutex {
	s.changes.RLock()
	m := s.locks.of(id)
	m.Lock()
	return m
}

func (s *Store) unlock(m *sync.Mutex) {
	m.Unlock()
	s.changes.RUnlock()
}

// CreateAvailability reserves size bytes in the repo quota and stores an
// availability offering them, as one atomic change. When the quota is too
// small the error matches both ErrReserveFailed and repo.ErrQuotaNotEnough,
// and nothing is written. A zero size fails with ErrInvalidSize.
func (s *Store) CreateAvailability(ctx context.Context, size, duration uint64, minPrice, maxCollateral uint256.Int) (Availability, error) {
	if size == 0 {
		return Availability{}, fmt.Errorf("create availability: %w", ErrInvalidSize)
	}
	id, err := newID()
	if err != nil {
		return Availability{}, err
	}
	a := Availability{ID: AvailabilityID(id), Size: size, Duration: duration, MinPrice: minPrice, MaxCollateral: maxCollateral}

	m := s.lock(a.ID)
	err = s.repo.Commit(ctx, repo.Change{
		Reserve: size,
		Put:     []repo.Record{{Key: a.Key(), Value: encode(a)}},
	})
	if err == nil {
		s.cache.put([]Availability{a}, nil)
	}
	s.unlock(m)
	if err != nil {
		return Availability{}, fmt.Errorf("create availability of %d bytes: %w: %w", size, ErrReserveFailed, err)
	}
	s.log.Debug("availability created", "id", a.ID, "size", size)
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

// UpdateAvailability replaces the terms and size of the availability with
// a.ID. Growing Size reserves the difference in the quota (failing, with
// nothing changed, when it does not fit: ErrReserveFailed and
// repo.ErrQuotaNotEnough); shrinking it releases the difference. An unknown
// ID fails with ErrNotFound.
//
// The new Size replaces whatever the availability has now, including bytes
// reservations took since a was read. To change an availability relative to
// its current state (give back n bytes, say), use ModifyAvailability.
func (s *Store) UpdateAvailability(ctx context.Context, a Availability) error {
	_, err := s.ModifyAvailability(ctx, a.ID, func(cur *Availability) error {
		*cur = a
		return nil
	})
	return err
}

// ModifyAvailability changes an availability atomically with respect to
// every other operation on it: fn receives the current availability, edits
// it in place, and the result is stored as by UpdateAvailability (growing
// or shrinking the quota by the change in Size). fn runs under the
// availability's lock, so it must not call the Store. An error from fn
// aborts the change and is returned wrapped; so does changing the ID.
//
//	// Give the bytes of a finished slot back to the offer.
//	_, err := store.ModifyAvailability(ctx, id, func(a *reservations.Availability) error {
//		a.Size += freed
//		return nil
//	})
func (s *Store) ModifyAvailability(ctx context.Context, id AvailabilityID, fn func(a *Availability) error) (Availability, error) {
	defer s.unlock(s.lock(id))
	cur, err := s.availability(ctx, id)
	if err != nil {
		return Availability{}, fmt.Errorf("update availability %s: %w", id, err)
	}
	a := cur
	if err := fn(&a); err != nil {
		return Availability{}, fmt.Errorf("update availability %s: %w", id, err)
	}
	if a.ID != id {
		return Availability{}, fmt.Errorf("update availability %s: %w: the ID cannot change (to %s)", id, ErrInvalidID, a.ID)
	}
	c := repo.Change{Put: []repo.Record{{Key: a.Key(), Value: encode(a)}}}
	if a.Size > cur.Size {
		c.Reserve = a.Size - cur.Size
	} else {
		c.Release = cur.Size - a.Size
	}
	if err := s.repo.Commit(ctx, c); err != nil {
		if c.Reserve > 0 {
			return Availability{}, fmt.Errorf("update availability %s: grow by %d bytes: %w: %w", id, c.Reserve, ErrReserveFailed, err)
		}
		return Availability{}, fmt.Errorf("update availability %s: %w", id, err)
	}
	s.cache.put([]Availability{a}, nil)
	return a, nil
}

// DeleteAvailability deletes an availability and returns its free bytes to
// the quota. It fails with ErrHasReservations while reservations draw on it,
// and with ErrNotFound for an unknown ID.
func (s *Store) DeleteAvailability(ctx context.Context, id AvailabilityID) error {
	defer s.unlock(s.lock(id))
	a, err := s.availability(ctx, id)
	if err != nil {
		return fmt.Errorf("delete availability %s: %w", id, err)
	}
	n, err := s.countReservations(ctx, id)
	if err != nil {
		return fmt.Errorf("delete availability %s: %w", id, err)
	}
	if n > 0 {
		return fmt.Errorf("delete availability %s: %w (%d)", id, ErrHasReservations, n)
	}
	if err := s.repo.Commit(ctx, repo.Change{Release: a.Size, Delete: []datastore.Key{a.Key()}}); err != nil {
		return fmt.Errorf("delete availability %s: %w", id, err)
	}
	s.cache.deleteAvailability(id)
	return nil
}

// CreateReservation carves slotSize bytes out of the availability for one
// slot of a request: it stores the reservation and shrinks the availability
// by slotSize, atomically. The availability must exist (ErrNotFound) and
// have at least slotSize free bytes (ErrBytesOutOfBounds). However many
// callers race, the reservations made never exceed what the availability had.
func (s *Store) CreateReservation(ctx context.Context, id AvailabilityID, slotSize uint64, requestID stowage.RequestID, slotIndex uint64) (Reservation, error) {
	if slotSize == 0 {
		return Reservation{}, fmt.Errorf("create reservation on %s: %w", id, ErrInvalidSize)
	}
	rid, err := newID()
	if err != nil {
		return Reservation{}, err
	}
	r := Reservation{ID: ReservationID(rid), AvailabilityID: id, Size: slotSize, RequestID: requestID, SlotIndex: slotIndex}

	defer s.unlock(s.lock(id))
	a, err := s.availability(ctx, id)
	if err != nil {
		return Reservation{}, fmt.Errorf("create reservation on %s: %w", id, err)
	}
	if slotSize > a.Size {
		return Reservation{}, fmt.Errorf("create reservation on %s: %w: slot of %d bytes, %d free", id, ErrBytesOutOfBounds, slotSize, a.Size)
	}
	a.Size -= slotSize
	err = s.repo.Commit(ctx, repo.Change{Put: []repo.Record{
		{Key: r.Key(), Value: encode(r)},
		{Key: a.Key(), Value: encode(a)},
	}})
	if err != nil {
		return Reservation{}, fmt.Errorf("create reservation on %s: %w", id, err)
	}
	s.cache.put([]Availability{a}, []Reservation{r})
	return r, nil
}

// Release takes bytes out of a reservation and out of the repo's Reserved
// count, atomically: those bytes are now free for the blocks they were
// reserved for (release before repo.PutBlock). The reservation must exist
// (ErrNotFound) and hold at least bytes (ErrBytesOutOfBounds).
func (s *Store) Release(ctx context.Context, id ReservationID, availabilityID AvailabilityID, bytes uint64) error {
	defer s.unlock(s.lock(availabilityID))
	r, err := s.reservation(ctx, id, availabilityID)
	if err != nil {
		return fmt.Errorf("release from reservation %s: %w", id, err)
	}
	if bytes > r.Size {
		return fmt.Errorf("release from reservation %s: %w: release %d bytes, %d held", id, ErrBytesOutOfBounds, bytes, r.Size)
	}
	if bytes == 0 {
		return nil
	}
	r.Size -= bytes
	err = s.repo.Commit(ctx, repo.Change{Release: bytes, Put: []repo.Record{{Key: r.Key(), Value: encode(r)}}})
	if err != nil {
		return fmt.Errorf("release from reservation %s: %w", id, err)
	}
	s.cache.put(nil, []Reservation{r})
	return nil
}

// DeleteReservation deletes a reservation and returns the bytes it still
// holds to its availability, atomically. Deleting a reservation that does
// not exist succeeds, so cleanup can be retried. Should the availability be
// gone (only possible if records were removed behind the Store's back), the
// bytes go back to the repo quota instead of being lost.
func (s *Store) DeleteReservation(ctx context.Context, id ReservationID, availabilityID AvailabilityID) error {
	defer s.unlock(s.lock(availabilityID))
	r, err := s.reservation(ctx, id, availabilityID)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete reservation %s: %w", id, err)
	}
	c := repo.Change{Delete: []datastore.Key{r.Key()}}
	a, err := s.availability(ctx, availabilityID)
	switch {
	case errors.Is(err, ErrNotFound):
		s.log.Warn("reservation outlived its availability; returning its bytes to the quota",
			"reservation", id, "availability", availabilityID, "bytes", r.Size)
		c.Release = r.Size
	case err != nil:
		return fmt.Errorf("delete reservation %s: %w", id, err)
	default:
		a.Size += r.Size
		c.Put = []repo.Record{{Key: a.Key(), Value: encode(a)}}
	}
	if err := s.repo.Commit(ctx, c); err != nil {
		return fmt.Errorf("delete reservation %s: %w", id, err)
	}
	s.cache.deleteReservation(id)
	if c.Put != nil {
		s.cache.put([]Availability{a}, nil)
	}
	return nil
}

// Availability returns the availability with id, or ErrNotFound.
func (s *Store) Availability(ctx context.Context, id AvailabilityID) (Availability, error) {
	if a, ok := s.cache.availability(id); ok {
		return a, nil
	}
	m := s.lock(id)
	a, err := s.availability(ctx, id)
	s.unlock(m)
	if err != nil {
		return Availability{}, fmt.Errorf("get availability %s: %w", id, err)
	}
	return a, nil
}

// Reservation returns the reservation with id under availabilityID, or
// ErrNotFound.
func (s *Store) Reservation(ctx context.Context, id ReservationID, availabilityID AvailabilityID) (Reservation, error) {
	if r, ok := s.cache.reservation(id, availabilityID); ok {
		return r, nil
	}
	m := s.lock(availabilityID)
	r, err := s.reservation(ctx, id, availabilityID)
	s.unlock(m)
	if err != nil {
		return Reservation{}, fmt.Errorf("get reservation %s: %w", id, err)
	}
	return r, nil
}

// HasAvailability reports whether an availability with id exists.
func (s *Store) HasAvailability(ctx context.Context, id AvailabilityID) (bool, error) {
	if _, ok := s.cache.availability(id); ok {
		return true, nil
	}
	ok, err := s.ds.Has(ctx, availabilityKey(id))
	if err != nil {
		return false, fmt.Errorf("has availability %s: %w", id, err)
	}
	return ok, nil
}

// HasReservation reports whether a reservation with id exists under
// availabilityID.
func (s *Store) HasReservation(ctx context.Context, id ReservationID, availabilityID AvailabilityID) (bool, error) {
	if _, ok := s.cache.reservation(id, availabilityID); ok {
		return true, nil
	}
	ok, err := s.ds.Has(ctx, reservationKey(availabilityID, id))
	if err != nil {
		return false, fmt.Errorf("has reservation %s: %w", id, err)
	}
	return ok, nil
}

// Availabilities returns every availability, oldest first. The first call
// reads them all from the datastore (reporting a corrupt record with
// ErrCorrupt); later calls are served from memory.
func (s *Store) Availabilities(ctx context.Context) ([]Availability, error) {
	if err := s.loadAvailabilities(ctx); err != nil {
		return nil, err
	}
	return s.cache.availabilities(), nil
}

// loadAvailabilities makes the cache hold every availability, reading them
// from the datastore the first time.
func (s *Store) loadAvailabilities(ctx context.Context) error {
	if s.cache.complete() {
		return nil
	}
	// Load with every mutation held off, so none can slip between the scan
	// and the cache.
	s.changes.Lock()
	defer s.changes.Unlock()
	if s.cache.complete() {
		return nil
	}
	as, _, err := s.scan(ctx, Prefix, true, false)
	if err != nil {
		return err
	}
	s.cache.setAvailabilities(as)
	return nil
}

// Reservations returns every reservation, oldest first.
func (s *Store) Reservations(ctx context.Context) ([]Reservation, error) {
	_, rs, err := s.scan(ctx, Prefix, false, true)
	return rs, err
}

// ReservationsOf returns the reservations drawing on one availability,
// oldest first.
func (s *Store) ReservationsOf(ctx context.Context, id AvailabilityID) ([]Reservation, error) {
	_, rs, err := s.scan(ctx, availabilityKey(id), false, true)
	return rs, err
}

// FindAvailability returns an availability that can serve a slot of size
// bytes for duration seconds, paying minPrice over that duration and asking
// collateral: one with size <= Size, duration <= Duration, collateral <=
// MaxCollateral and minPrice >= MinPrice. Among several matches it picks the
// best fit, the one with the least free bytes, so large availabilities stay
// whole for large slots; ties go to the oldest. The bool is false when none
// matches.
func (s *Store) FindAvailability(ctx context.Context, size, duration uint64, minPrice, collateral uint256.Int) (Availability, bool, error) {
	if err := s.loadAvailabilities(ctx); err != nil {
		return Availability{}, false, err
	}
	best, found := s.cache.bestFit(func(a *Availability) bool {
		return size <= a.Size && duration <= a.Duration && !collateral.Gt(&a.MaxCollateral) && !minPrice.Lt(&a.MinPrice)
	})
	return best, found, nil
}

// Available returns the repo's free bytes (see repo.Repo.Available).
func (s *Store) Available() uint64 { return s.repo.Available() }

// HasAvailable reports whether n more bytes fit in the repo quota.
func (s *Store) HasAvailable(n uint64) bool { return s.repo.HasAvailable(n) }

// availability returns one availability, from the cache or else from the
// datastore (then caching it). Called with id's lock held.
func (s *Store) availability(ctx context.Context, id AvailabilityID) (Availability, error) {
	if a, ok := s.cache.availability(id); ok {
		return a, nil
	}
	key := availabilityKey(id)
	b, err := s.ds.Get(ctx, key)
	if errors.Is(err, datastore.ErrNotFound) {
		return Availability{}, fmt.Errorf("%w: availability %s", ErrNotFound, id)
	}
	if err != nil {
		return Availability{}, err
	}
	a, err := decodeAvailability(key, b)
	if err != nil {
		return Availability{}, err
	}
	s.cache.put([]Availability{a}, nil)
	return a, nil
}

// reservation returns one reservation, from the cache or else from the
// datastore (then caching it). Called with availabilityID's lock held.
func (s *Store) reservation(ctx context.Context, id ReservationID, availabilityID AvailabilityID) (Reservation, error) {
	if r, ok := s.cache.reservation(id, availabilityID); ok {
		return r, nil
	}
	key := reservationKey(availabilityID, id)
	b, err := s.ds.Get(ctx, key)
	if errors.Is(err, datastore.ErrNotFound) {
		return Reservation{}, fmt.Errorf("%w: reservation %s of availability %s", ErrNotFound, id, availabilityID)
	}
	if err != nil {
		return Reservation{}, err
	}
	r, err := decodeReservation(key, b)
	if err != nil {
		return Reservation{}, err
	}
	s.cache.put(nil, []Reservation{r})
	return r, nil
}

// countReservations counts the reservation records under an availability.
func (s *Store) countReservations(ctx context.Context, id AvailabilityID) (int, error) {
	n := 0
	for _, err := range datastore.QueryIter(ctx, s.ds, query.Query{Prefix: availabilityKey(id).String(), KeysOnly: true}) {
		if err != nil {
			return 0, err
		}
		n++
	}
	return n, nil
}

// scan reads the records under prefix, decoding availabilities and/or
// reservations, each sorted by ID (creation order). A corrupt record fails
// the scan with ErrCorrupt naming its key.
func (s *Store) scan(ctx context.Context, prefix datastore.Key, wantAvail, wantRes bool) ([]Availability, []Reservation, error) {
	var as []Availability
	var rs []Reservation
	base := len(Prefix.String()) + 1
	for e, err := range datastore.QueryIter(ctx, s.ds, query.Query{Prefix: prefix.String()}) {
		if err != nil {
			return nil, nil, fmt.Errorf("reservations: query %s: %w", prefix, err)
		}
		if len(e.Key) <= base {
			continue
		}
		key := datastore.RawKey(e.Key)
		switch strings.Count(e.Key[base:], "/") {
		case 0:
			if !wantAvail {
				continue
			}
			a, err := decodeAvailability(key, e.Value)
			if err != nil {
				return nil, nil, err
			}
			as = append(as, a)
		case 1:
			if !wantRes {
				continue
			}
			r, err := decodeReservation(key, e.Value)
			if err != nil {
				return nil, nil, err
			}
			rs = append(rs, r)
		default:
			return nil, nil, fmt.Errorf("%w: unexpected key %s", ErrCorrupt, key)
		}
	}
	sortAvailabilities(as)
	slices.SortFunc(rs, func(x, y Reservation) int { return bytes.Compare(x.ID[:], y.ID[:]) })
	return as, rs, nil
}

// sortAvailabilities sorts by ID: creation order, as IDs are UUIDv7.
func sortAvailabilities(as []Availability) {
	slices.SortFunc(as, func(x, y Availability) int { return bytes.Compare(x.ID[:], y.ID[:]) })
}

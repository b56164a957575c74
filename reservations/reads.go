package reservations

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
)

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

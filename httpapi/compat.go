package httpapi

import (
	"context"
	"fmt"

	"github.com/stowage/stowage/reservations"
)

// sales is what the API calls on a reservations.Store.
type sales interface {
	AddAvailability(ctx context.Context, a reservations.Availability) (reservations.Availability, error)
	ModifyAvailability(ctx context.Context, id reservations.AvailabilityID, fn func(a *reservations.Availability) error) (reservations.Availability, error)
	DeleteAvailability(ctx context.Context, id reservations.AvailabilityID) error
	Availability(ctx context.Context, id reservations.AvailabilityID) (reservations.Availability, error)
	Availabilities(ctx context.Context) ([]reservations.Availability, error)
	ReservationsOf(ctx context.Context, id reservations.AvailabilityID) ([]reservations.Reservation, error)
	Reservation(ctx context.Context, id reservations.ReservationID) (reservations.Reservation, error)
}

// salesOf adapts the Store of the second round (Reservation takes the
// availability ID too) until the v1 one, whose Reservation takes the ID
// alone, lands.
func salesOf(s *reservations.Store) sales { return storeV0{s} }

type storeV0 struct{ *reservations.Store }

func (s storeV0) Reservation(ctx context.Context, id reservations.ReservationID) (reservations.Reservation, error) {
	rs, err := s.Reservations(ctx)
	if err != nil {
		return reservations.Reservation{}, err
	}
	for _, r := range rs {
		if r.ID == id {
			return r, nil
		}
	}
	return reservations.Reservation{}, fmt.Errorf("get reservation %s: %w", id, reservations.ErrNotFound)
}

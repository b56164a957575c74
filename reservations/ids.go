package reservations

import (
	"fmt"

	"github.com/google/uuid"
)

// AvailabilityID identifies an Availability. IDs are time-ordered UUIDv7, so
// their byte order (and key order in the datastore) is creation order.
type AvailabilityID uuid.UUID

// ReservationID identifies a Reservation; like AvailabilityID it is a
// time-ordered UUIDv7. The two are distinct types so they cannot be swapped.
type ReservationID uuid.UUID

// newID returns a fresh UUIDv7.
func newID() (uuid.UUID, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.UUID{}, fmt.Errorf("reservations: new id: %w", err)
	}
	return id, nil
}

// String returns the canonical 36-character UUID form.
func (id AvailabilityID) String() string { return uuid.UUID(id).String() }

// MarshalText encodes the ID as String does.
func (id AvailabilityID) MarshalText() ([]byte, error) { return uuid.UUID(id).MarshalText() }

// UnmarshalText decodes a UUID in any form uuid.Parse accepts.
func (id *AvailabilityID) UnmarshalText(b []byte) error {
	return unmarshalID((*uuid.UUID)(id), b)
}

// String returns the canonical 36-character UUID form.
func (id ReservationID) String() string { return uuid.UUID(id).String() }

// MarshalText encodes the ID as String does.
func (id ReservationID) MarshalText() ([]byte, error) { return uuid.UUID(id).MarshalText() }

// UnmarshalText decodes a UUID in any form uuid.Parse accepts.
func (id *ReservationID) UnmarshalText(b []byte) error {
	return unmarshalID((*uuid.UUID)(id), b)
}

// ParseAvailabilityID decodes s as UnmarshalText does.
func ParseAvailabilityID(s string) (AvailabilityID, error) {
	var id AvailabilityID
	err := id.UnmarshalText([]byte(s))
	return id, err
}

// ParseReservationID decodes s as UnmarshalText does.
func ParseReservationID(s string) (ReservationID, error) {
	var id ReservationID
	err := id.UnmarshalText([]byte(s))
	return id, err
}

func unmarshalID(dst *uuid.UUID, b []byte) error {
	u, err := uuid.ParseBytes(b)
	if err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidID, b, err)
	}
	*dst = u
	return nil
}

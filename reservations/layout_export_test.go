package reservations

import "github.com/ipfs/go-datastore"

// Tests reach the layout, which is no part of the API, through these.

// RecordsPrefix holds every availability and, under it, its reservations.
var RecordsPrefix = recordsPrefix

// LayoutKey holds the layout's version.
var LayoutKey = layoutKey

// KeyOf returns the datastore key of an availability's or a reservation's
// record.
func KeyOf[T Availability | Reservation](v T) datastore.Key {
	switch v := any(v).(type) {
	case Availability:
		return availabilityKey(v.ID)
	case Reservation:
		return reservationKey(v.AvailabilityID, v.ID)
	}
	panic("unreachable")
}

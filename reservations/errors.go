package reservations

import "errors"

// Errors returned by the Store, one for each failure a caller acts on
// differently, checked with errors.Is. Returned errors wrap them with the
// IDs and figures involved. A quota too small for an availability matches
// repo.ErrQuotaNotEnough, and a bad block key repo.ErrInvalidKey.
var (
	// ErrNotFound means no availability or reservation has the given ID.
	ErrNotFound = errors.New("reservations: not found")
	// ErrBytesOutOfBounds means a release or a block asked for more bytes
	// than the reservation holds, or a change would shrink an availability
	// (its TotalSize or its collateral budget) below what its reservations
	// hold.
	ErrBytesOutOfBounds = errors.New("reservations: bytes out of bounds")
	// ErrHasReservations means an availability cannot be deleted while
	// reservations draw on it.
	ErrHasReservations = errors.New("reservations: availability has reservations")
	// ErrNoAvailability means no availability can take a slot
	// (ReserveSlot, FindAvailability) or the one named cannot
	// (CreateReservation). The error is a *NoAvailabilityError that names
	// the term that ruled it out.
	ErrNoAvailability = errors.New("reservations: no availability fits")
	// ErrSlotReserved means the slot (RequestID, Index) already holds a
	// reservation.
	ErrSlotReserved = errors.New("reservations: slot already reserved")
	// ErrBlockExists means Store.PutBlock was given the key of a block that
	// another reservation (or the host, through the repo) wrote.
	ErrBlockExists = errors.New("reservations: block written by someone else")
	// ErrInvalidSize means a size that cannot be: zero where bytes are
	// needed (a TotalSize, a slot's SlotSize), or an availability's Size
	// and TotalSize changed by different amounts.
	ErrInvalidSize = errors.New("reservations: invalid size")
	// ErrInvalidID means text did not decode to an ID, or a change tried to
	// change an ID.
	ErrInvalidID = errors.New("reservations: invalid id")
	// ErrInvalidTime is returned for a time a record cannot hold (JSON
	// times have years 0 to 9999).
	ErrInvalidTime = errors.New("reservations: time out of range")
	// ErrUntilTooEarly means an availability's Until would end before a
	// reservation it holds (ModifyAvailability).
	ErrUntilTooEarly = errors.New("reservations: until before a reservation's end")
	// ErrNewerLayout means the datastore holds records in a layout of a
	// later release of this package, which this one cannot read; nothing
	// is read or written. Run the later release.
	ErrNewerLayout = errors.New("reservations: datastore written by a newer release")
	// ErrCorrupt means a record in the datastore could not be decoded or
	// contradicts its key.
	ErrCorrupt = errors.New("reservations: corrupt record")
	// ErrInvariant means the books do not balance (see Store.Verify).
	ErrInvariant = errors.New("reservations: the books do not balance")
)

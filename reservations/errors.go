package reservations

import "errors"

// Errors returned by the Store, checked with errors.Is. Returned errors wrap
// them with the IDs and figures involved.
var (
	// ErrNotFound means no availability or reservation has the given ID, or
	// a reservation exists but not under the availability ID given with it.
	ErrNotFound = errors.New("reservations: not found")
	// ErrBytesOutOfBounds means a reservation asked for more bytes than its
	// availability has free, a release or a block for more than the
	// reservation holds, or a shrink below what reservations hold.
	ErrBytesOutOfBounds = errors.New("reservations: bytes out of bounds")
	// ErrReserveFailed means the repo could not reserve an availability's
	// bytes; when the quota is too small the error also matches
	// repo.ErrQuotaNotEnough.
	ErrReserveFailed = errors.New("reservations: reserve failed")
	// ErrHasReservations means an availability cannot be deleted while
	// reservations draw on it.
	ErrHasReservations = errors.New("reservations: availability has reservations")
	// ErrNoAvailability means no availability can take a slot (ReserveSlot).
	// The error is a *NoAvailabilityError that names the term that ruled out
	// the closest candidate.
	ErrNoAvailability = errors.New("reservations: no availability fits")
	// ErrSlotReserved means the slot (RequestID, SlotIndex) already holds a
	// reservation.
	ErrSlotReserved = errors.New("reservations: slot already reserved")
	// ErrStaleAvailability means UpdateAvailability got Size and TotalSize
	// changed by different amounts, which is what a copy read before other
	// changes looks like: re-read it, or use ModifyAvailability.
	ErrStaleAvailability = errors.New("reservations: stale availability")
	// ErrBlockExists means Store.PutBlock was given the key of a block that
	// another reservation (or the host, through the repo) wrote.
	ErrBlockExists = errors.New("reservations: block written by someone else")
	// ErrInvalidSize means a size of zero was given where bytes are needed.
	ErrInvalidSize = errors.New("reservations: size must be greater than zero")
	// ErrInvalidID means text did not decode to an ID.
	ErrInvalidID = errors.New("reservations: invalid id")
	// ErrInvalidTime is returned for a time a record cannot hold (JSON
	// times have years 0 to 9999).
	ErrInvalidTime = errors.New("reservations: time out of range")
	// ErrCorrupt means a record in the datastore could not be decoded or
	// contradicts its key.
	ErrCorrupt = errors.New("reservations: corrupt record")
	// ErrInvariant means the books do not balance (see Store.Verify).
	ErrInvariant = errors.New("reservations: the books do not balance")
)

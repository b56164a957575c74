package reservations

import "errors"

// Errors returned by the Store, checked with errors.Is. Returned errors wrap
// them with the IDs and figures involved.
var (
	// ErrNotFound means no availability or reservation has the given ID.
	ErrNotFound = errors.New("reservations: not found")
	// ErrBytesOutOfBounds means a reservation asked for more bytes than its
	// availability has free, or a release for more than the reservation holds.
	ErrBytesOutOfBounds = errors.New("reservations: bytes out of bounds")
	// ErrReserveFailed means the repo could not reserve an availability's
	// bytes; when the quota is too small the error also matches
	// repo.ErrQuotaNotEnough.
	ErrReserveFailed = errors.New("reservations: reserve failed")
	// ErrHasReservations means an availability cannot be deleted while
	// reservations draw on it.
	ErrHasReservations = errors.New("reservations: availability has reservations")
	// ErrInvalidSize means a size of zero was given where bytes are needed.
	ErrInvalidSize = errors.New("reservations: size must be greater than zero")
	// ErrInvalidID means text did not decode to an ID.
	ErrInvalidID = errors.New("reservations: invalid id")
	// ErrCorrupt means a record in the datastore could not be decoded or
	// contradicts its key.
	ErrCorrupt = errors.New("reservations: corrupt record")
	// ErrInvariant means the repo's Reserved counter differs from the bytes
	// held by availabilities and reservations (see Store.Verify).
	ErrInvariant = errors.New("reservations: reserved bytes do not add up")
)

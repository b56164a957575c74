package slotqueue

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these (check
// with errors.Is) and add context such as the request and slot concerned.
var (
	// ErrNotRunning is returned by Queue.Push while the queue is stopped.
	ErrNotRunning = errors.New("slotqueue: queue is not running")

	// ErrItemExists is returned by Queue.Push for a slot (request ID and
	// slot index) that is already waiting in the queue, or that appears
	// twice in one call.
	ErrItemExists = errors.New("slotqueue: item already in queue")

	// ErrSlotsOutOfRange is returned by ItemsForRequest for a request with
	// more slots than a uint16 slot index can number (more than 65535).
	ErrSlotsOutOfRange = errors.New("slotqueue: number of slots out of range")

	// ErrInvalidConfig is returned by New for a nil process function or
	// options out of range.
	ErrInvalidConfig = errors.New("slotqueue: invalid configuration")
)

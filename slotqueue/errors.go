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
	// more slots than Codex can number (its slot indices are 16 bits wide: at
	// most 65535 slots).
	ErrSlotsOutOfRange = errors.New("slotqueue: number of slots out of range")

	// ErrRequeue, wrapped in the error a ProcessFunc returns, puts the item
	// back in the queue marked Seen: the host cannot serve it now (no
	// availability fits) but may later. Seen items wait, ranked after every
	// unseen one, until Queue.Resume; see the package documentation.
	ErrRequeue = errors.New("slotqueue: requeue item")

	// ErrEvicted is the reason WithOnDrop reports for an item dropped
	// because the queue was full and every item it kept ranks before it.
	ErrEvicted = errors.New("slotqueue: item evicted from a full queue")

	// ErrExpired is the reason WithOnDrop reports for an item dropped
	// because its Expiry passed before a worker took it.
	ErrExpired = errors.New("slotqueue: item expired")

	// ErrInvalidConfig is returned by New for a nil process function or
	// options out of range.
	ErrInvalidConfig = errors.New("slotqueue: invalid configuration")
)

// Package market is what the storage host needs from a marketplace: the
// Market a chain client implements, the Network that fetches a slot's data
// from the client that posted it, and the events and statuses they report.
// Package sim implements both for the simulation; a real host implements
// them over its chain and its peer-to-peer network.
package market

import (
	"context"
	"errors"
	"fmt"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage"
)

// Errors a Market returns, checked with errors.Is.
var (
	// ErrUnknownRequest: the market has no such request.
	ErrUnknownRequest = errors.New("market: unknown request")
	// ErrSlotNotFree: another host filled the slot first, or the slot index
	// is out of range.
	ErrSlotNotFree = errors.New("market: slot not free")
	// ErrRequestNotOpen: the request no longer takes hosts (it was
	// cancelled, failed or finished).
	ErrRequestNotOpen = errors.New("market: request not open")
	// ErrNotSlotHost: this host does not hold the slot.
	ErrNotSlotHost = errors.New("market: not the slot's host")
	// ErrRequestRunning: the request has not ended, so there is nothing to
	// collect yet.
	ErrRequestRunning = errors.New("market: request still running")
	// ErrRequestFailed: the request failed; the host's collateral is gone.
	ErrRequestFailed = errors.New("market: request failed")
	// ErrAlreadyPaid: the slot's payout was collected already.
	ErrAlreadyPaid = errors.New("market: already paid")
)

// Market is the host's view of the marketplace: what a chain client offers a
// storage host. It is all the host needs; the simulation implements it with
// sim.Market, a real node with a client of its chain.
type Market interface {
	// Subscribe calls fn with every market event, one at a time, in the
	// order they happen, until unsubscribe is called. fn must not block.
	Subscribe(fn func(Event)) (unsubscribe func())
	// SlotStatus reports where a slot and its request stand.
	SlotStatus(ctx context.Context, id stowage.RequestID, slot uint64) (SlotStatus, error)
	// FillSlot submits the proof that the host stores the slot and locks the
	// request's collateral. ErrSlotNotFree when another host was first,
	// ErrRequestNotOpen when the request no longer takes hosts.
	FillSlot(ctx context.Context, id stowage.RequestID, slot uint64, proof []byte) error
	// FreeSlot collects what the slot earned: reward and collateral for a
	// finished request, the collateral alone for a cancelled one.
	FreeSlot(ctx context.Context, id stowage.RequestID, slot uint64) (paid uint256.Int, err error)
}

// RequestState is where a storage request stands on the market.
type RequestState uint8

// The states of a request. New requests wait for hosts until every slot is
// filled (Started) or the expiry passes (Cancelled); a started request runs
// for its duration (Finished) unless too many hosts drop out (Failed).
const (
	RequestNew RequestState = iota
	RequestStarted
	RequestCancelled
	RequestFailed
	RequestFinished
)

// String returns the state's name.
func (s RequestState) String() string {
	switch s {
	case RequestNew:
		return "new"
	case RequestStarted:
		return "started"
	case RequestCancelled:
		return "cancelled"
	case RequestFailed:
		return "failed"
	case RequestFinished:
		return "finished"
	}
	return fmt.Sprintf("RequestState(%d)", uint8(s))
}

// SlotStatus is what SlotStatus reports about one slot.
type SlotStatus struct {
	Request RequestState
	// Slot is the slot with its request's terms, as the host queues and
	// reserves it. Its Expiry is when a request that has not started is
	// cancelled (a freed slot: when the request ends).
	Slot stowage.Slot
	Mine bool // this host holds the slot
	Free bool // no host holds the slot
	Paid bool // this host collected the slot's payout
}

// EventKind says what happened on the market.
type EventKind uint8

// The market events a host reacts to.
const (
	// EventRequested: a client posted a storage request (Slot.Ask and
	// Slot.Expiry set; Slot.Index is 0).
	EventRequested EventKind = iota + 1
	// EventSlotFilled: a host filled a slot (Mine when it was this one).
	EventSlotFilled
	// EventRequestStarted: every slot is filled; the request runs.
	EventRequestStarted
	// EventRequestCancelled: the expiry passed before every slot was filled.
	EventRequestCancelled
	// EventRequestFailed: the request failed; its hosts lose their
	// collateral.
	EventRequestFailed
	// EventRequestFinished: the request ran its duration; hosts may collect.
	EventRequestFinished
	// EventSlotFreed: the slot's host lost it (Mine when it was this one).
	// The slot is open to be filled again: Slot is whole (Ask and Expiry
	// set), ready to queue.
	EventSlotFreed
)

// String returns the kind's name.
func (k EventKind) String() string {
	switch k {
	case EventRequested:
		return "requested"
	case EventSlotFilled:
		return "slot-filled"
	case EventRequestStarted:
		return "started"
	case EventRequestCancelled:
		return "cancelled"
	case EventRequestFailed:
		return "failed"
	case EventRequestFinished:
		return "finished"
	case EventSlotFreed:
		return "slot-freed"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one thing that happened on the market. Slot.RequestID names the
// request of every event; Slot.Index the slot of the slot events; Slot.Ask
// and Slot.Expiry are set for EventRequested and EventSlotFreed.
type Event struct {
	Kind EventKind
	Slot stowage.Slot
	Mine bool
}

// Network fetches a slot's data from the client that posted it.
type Network interface {
	// Fetch starts fetching n bytes of a slot's data from offset and returns
	// at once. done is called once, on any goroutine, with the bytes or the
	// error that ended the download; once ctx has ended it may be called
	// with ctx.Err() or not at all. done must not block. The bytes must not
	// be modified.
	//
	// A host waits for the network without holding a goroutine: done
	// schedules an event on the sale (see downloading in sale.go).
	Fetch(ctx context.Context, id stowage.RequestID, slot, offset, n uint64, done func(data []byte, err error))
}

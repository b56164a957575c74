package slotqueue

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage"
)

// Item is one slot of one storage request waiting to be served, with the
// request's terms copied in so that the queue can order slots without looking
// anything up.
//
// Item is a plain value: copies are independent, and nothing a caller does
// to a copy can disturb a queue holding another. Two items are the same slot
// when their RequestID and SlotIndex match; the other fields only decide the
// order (see [Item.Less]).
type Item struct {
	RequestID  stowage.RequestID // the request the slot belongs to
	SlotIndex  uint16            // which of the request's slots, from 0
	SlotSize   uint64            // bytes
	Duration   uint64            // seconds
	Reward     uint256.Int       // per second, per slot
	Collateral uint256.Int       // per slot
	Expiry     uint64            // when the request stops accepting hosts, seconds since the Unix epoch; 0: never

	// Seen marks an item that a process function has already been given
	// and put back with ErrRequeue: it could not be served then. Seen items
	// rank after every unseen one, and a queue whose best waiting item is
	// seen takes nothing until Queue.Resume clears the flags (see
	// [ErrRequeue]).
	Seen bool
}

// NewItem returns the item for slot slotIndex of the request requestID, with
// the request's terms taken from ask.
func NewItem(requestID stowage.RequestID, slotIndex uint16, ask stowage.StorageAsk, expiry uint64) Item {
	return Item{
		RequestID:  requestID,
		SlotIndex:  slotIndex,
		SlotSize:   ask.SlotSize,
		Duration:   ask.Duration,
		Reward:     ask.Reward,
		Collateral: ask.Collateral,
		Expiry:     expiry,
	}
}

// ItemsForRequest returns one item for each slot of the request, slot
// indices 0 to ask.Slots-1, in random order so that hosts learning of the
// same request do not all start with slot 0. A request without slots yields
// no items.
//
// A slot index is a uint16, so at most 65535 slots (indices 0 to 65534) can
// be numbered; more fail with an error wrapping [ErrSlotsOutOfRange].
func ItemsForRequest(requestID stowage.RequestID, ask stowage.StorageAsk, expiry uint64) ([]Item, error) {
	if ask.Slots > math.MaxUint16 {
		return nil, fmt.Errorf("items for request %s: %d slots, at most %d: %w",
			requestID, ask.Slots, math.MaxUint16, ErrSlotsOutOfRange)
	}
	items := make([]Item, ask.Slots)
	for i := range items {
		items[i] = NewItem(requestID, uint16(i), ask, expiry)
	}
	rand.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	return items, nil
}

// Profitability is what serving the slot pays over its whole duration:
// Duration × Reward, saturating at the largest uint256 like
// [stowage.StorageAsk.PricePerSlot].
func (a Item) Profitability() uint256.Int {
	return stowage.MulSaturating(a.Duration, &a.Reward)
}

// Less reports whether a is served before b. The rules, each only breaking
// ties of the one before:
//
//  0. unseen before [Item.Seen];
//  1. higher profitability (Duration × Reward) first;
//  2. lower collateral first;
//  3. later expiry first;
//  4. smaller slot size first.
//
// Slots equal under all these (the slots of one request always are) are not
// Less either way. A Queue serves such ties in an order of its own, drawn at
// random when the queue is made and fixed for its life: hosts that learn of
// the same request each start on a different slot instead of all racing for
// slot 0, while one queue's choices (what it serves next, what it drops when
// full) never depend on the order items were pushed in.
func (a Item) Less(b Item) bool {
	pa, pb := a.Profitability(), b.Profitability()
	return compareTerms(&a, &pa, &b, &pb) < 0
}

// compareTerms orders two items by the rules of Less, with their
// profitabilities computed by the caller (the queue computes each item's
// once): negative when a is served first, positive when b is, zero on a tie.
func compareTerms(a *Item, pa *uint256.Int, b *Item, pb *uint256.Int) int {
	if a.Seen != b.Seen {
		if b.Seen {
			return -1
		}
		return 1
	}
	if c := pa.Cmp(pb); c != 0 {
		return -c
	}
	if c := a.Collateral.Cmp(&b.Collateral); c != 0 {
		return c
	}
	if a.Expiry != b.Expiry {
		if a.Expiry > b.Expiry {
			return -1
		}
		return 1
	}
	if a.SlotSize != b.SlotSize {
		if a.SlotSize < b.SlotSize {
			return -1
		}
		return 1
	}
	return 0
}

// servedBefore is a queue's strict total order: the rules of Less, then the
// items' tie ranks (random per queue, see core.tieRank), then, for the rare
// equal ranks, smaller RequestID and smaller SlotIndex.
func servedBefore(a *Item, pa *uint256.Int, ra uint64, b *Item, pb *uint256.Int, rb uint64) bool {
	if c := compareTerms(a, pa, b, pb); c != 0 {
		return c < 0
	}
	if ra != rb {
		return ra < rb
	}
	if c := bytes.Compare(a.RequestID[:], b.RequestID[:]); c != 0 {
		return c < 0
	}
	return a.SlotIndex < b.SlotIndex
}

package slotqueue

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage"
)

// Item is one slot of one storage request waiting to be served: the
// [stowage.Slot] itself (RequestID, Index, Ask, Expiry), so that the queue
// orders slots without looking anything up and a worker hands item.Slot on
// unchanged (to reservations.Store.ReserveSlot, say).
//
// An Expiry of zero means the slot never expires: it ranks as the latest
// expiry of all and is never dropped as expired.
//
// Item is a plain value: copies are independent, and nothing a caller does
// to a copy can disturb a queue holding another. Two items are the same slot
// when their RequestID and Index match; the other fields only decide the
// order (see [Item.Less]).
type Item struct {
	stowage.Slot

	// Seen marks an item that a process function has already been given
	// and put back with ErrRequeue: it could not be served then. Seen items
	// rank after every unseen one, and a queue whose best waiting item is
	// seen takes nothing until Queue.Resume clears the flags (see
	// [ErrRequeue]).
	Seen bool
}

// maxSlots is Codex's limit on the slots of one request: its slot indices
// are 16 bits wide, so indices 0 to 65534 are all a request can number.
const maxSlots = math.MaxUint16

// ItemsForRequest returns one item for each slot of the request, indices 0
// to ask.Slots-1, each with the whole ask and the request's expiry (zero:
// none), in random order so that hosts learning of the same request do not
// all start with slot 0. A request without slots yields no items.
//
// Codex numbers a request's slots with 16-bit indices, so a request has at
// most 65535 slots (indices 0 to 65534); more fail with an error wrapping
// [ErrSlotsOutOfRange].
func ItemsForRequest(requestID stowage.RequestID, ask stowage.StorageAsk, expiry time.Time) ([]Item, error) {
	if ask.Slots > maxSlots {
		return nil, fmt.Errorf("items for request %s: %d slots, Codex allows at most %d: %w",
			requestID, ask.Slots, maxSlots, ErrSlotsOutOfRange)
	}
	items := make([]Item, ask.Slots)
	for i := range items {
		items[i] = Item{Slot: stowage.Slot{RequestID: requestID, Index: uint64(i), Ask: ask, Expiry: expiry}}
	}
	rand.Shuffle(len(items), func(i, j int) { items[i], items[j] = items[j], items[i] })
	return items, nil
}

// Profitability is what serving the slot pays over its whole duration:
// Ask.Duration × Ask.Reward, saturating at the largest uint256 like
// [stowage.StorageAsk.PricePerSlot].
func (a Item) Profitability() uint256.Int {
	return a.Ask.PricePerSlot()
}

// Less reports whether a is served before b. The rules, each only breaking
// ties of the one before:
//
//  0. unseen before [Item.Seen];
//  1. higher profitability (Ask.Duration × Ask.Reward) first;
//  2. lower collateral (Ask.Collateral) first;
//  3. later Expiry first (zero, no expiry, is the latest of all);
//  4. smaller slot size (Ask.SlotSize) first.
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
	if c := a.Ask.Collateral.Cmp(&b.Ask.Collateral); c != 0 {
		return c
	}
	if c := compareExpiry(a.Expiry, b.Expiry); c != 0 {
		return -c
	}
	if a.Ask.SlotSize != b.Ask.SlotSize {
		if a.Ask.SlotSize < b.Ask.SlotSize {
			return -1
		}
		return 1
	}
	return 0
}

// compareExpiry compares two expiries, zero (none) after every other:
// negative when a comes first.
func compareExpiry(a, b time.Time) int {
	switch az, bz := a.IsZero(), b.IsZero(); {
	case az && bz:
		return 0
	case az:
		return 1
	case bz:
		return -1
	}
	return a.Compare(b)
}

// expired reports whether an item with the given Expiry has expired at now.
// A zero Expiry never does.
func expired(expiry, now time.Time) bool {
	return !expiry.IsZero() && !now.Before(expiry)
}

// servedBefore is a queue's strict total order: the rules of Less, then the
// items' tie ranks (random per queue, see core.tieRank), then, for the rare
// equal ranks, smaller RequestID and smaller Index.
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
	return a.Index < b.Index
}

package slotqueue

import (
	"container/heap"
	"encoding/binary"
	"math/bits"
	"slices"
	"time"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage"
)

// core is the queue without goroutines: ordering, bounding, expiry and
// indexing, deterministic and synchronous, so that it can be tested without
// timing. It is not safe for concurrent use; Queue guards it with a mutex.
//
// The waiting items are ordered by a min-max heap: the min (the item served
// first) is at the root and the max (the item dropped first) is one of the
// root's two children. Go maps find an item by slot and the items of a
// request, and a second heap, ordered by Expiry, finds the expired ones.
// Push, pop, evict and delete are O(log n).
type core struct {
	maxSize  int
	tieSeed  uint64                         // see tieRank
	heap     []*entry                       // min-max heap in serving order
	slots    map[slotKey]*entry             // every waiting item
	requests map[stowage.RequestID][]*entry // the waiting items of each request, in no order
	expiring byExpiry                       // the waiting items that have an Expiry
	spare    []*entry                       // an empty slice for requests
}

// slotKey identifies a slot.
type slotKey struct {
	request stowage.RequestID
	index   uint64
}

// entry is one waiting item with what ordering and removing it needs.
type entry struct {
	item    Item
	profit  uint256.Int // item.Profitability(), computed once
	tie     uint64      // tieRank(item)
	at      int         // position in core.heap
	sibling int         // position in core.requests[item.RequestID]
	expAt   int         // position in core.expiring; -1 without Expiry
}

func newCore(maxSize int, tieSeed uint64) *core {
	return &core{
		maxSize:  maxSize,
		tieSeed:  tieSeed,
		slots:    make(map[slotKey]*entry, min(maxSize, 1024)),
		requests: make(map[stowage.RequestID][]*entry),
	}
}

func (c *core) len() int { return len(c.heap) }

func (c *core) contains(id stowage.RequestID, index uint64) bool {
	_, ok := c.slots[slotKey{id, index}]
	return ok
}

// push adds it unless its slot is already waiting. When that makes more
// than maxSize items wait, the max (possibly it) is dropped and returned.
func (c *core) push(it Item) (dropped Item, didDrop bool, err error) {
	key := slotKey{it.RequestID, it.Index}
	if _, ok := c.slots[key]; ok {
		return Item{}, false, ErrItemExists
	}
	x := entry{item: it, profit: it.Profitability(), tie: c.tieRank(&it)}
	if len(c.heap) >= c.maxSize {
		last := c.heap[c.maxPos()]
		if before(last, &x) {
			return it, true, nil
		}
		// it takes the max's entry and heap position: one sift instead
		// of the two of a removal and an insertion.
		dropped, didDrop = last.item, true
		c.unindex(last)
		x.at = last.at
		*last = x
		c.index(last)
		c.fix(last)
		return dropped, didDrop, nil
	}
	e := new(entry)
	*e = x
	e.at = len(c.heap)
	c.heap = append(c.heap, e)
	c.index(e)
	c.pushUp(e.at)
	return dropped, didDrop, nil
}

// index adds e to the maps and the expiry heap.
func (c *core) index(e *entry) {
	c.slots[slotKey{e.item.RequestID, e.item.Index}] = e
	s, ok := c.requests[e.item.RequestID]
	if !ok {
		s, c.spare = c.spare, nil
	}
	e.sibling = len(s)
	c.requests[e.item.RequestID] = append(s, e)
	e.expAt = -1
	if !e.item.Expiry.IsZero() {
		heap.Push(&c.expiring, e)
	}
}

// unindex takes e out of the maps and the expiry heap.
func (c *core) unindex(e *entry) {
	delete(c.slots, slotKey{e.item.RequestID, e.item.Index})
	s := c.requests[e.item.RequestID]
	last := s[len(s)-1]
	s[e.sibling], last.sibling = last, e.sibling
	s[len(s)-1] = nil
	if s = s[:len(s)-1]; len(s) == 0 {
		delete(c.requests, e.item.RequestID)
		c.spare = s // for the next new request, which would allocate
	} else {
		c.requests[e.item.RequestID] = s
	}
	if e.expAt >= 0 {
		heap.Remove(&c.expiring, e.expAt)
	}
}

// ready reports whether a worker may take the min: it exists and is not
// seen. Seen items rank after all others, so a seen min means only seen
// items wait.
func (c *core) ready() bool { return len(c.heap) > 0 && !c.heap[0].item.Seen }

// pop removes and returns the min.
func (c *core) pop() (Item, bool) {
	if len(c.heap) == 0 {
		return Item{}, false
	}
	e := c.heap[0]
	c.remove(e)
	return e.item, true
}

// expire removes and returns the items with an Expiry at or before now,
// earliest Expiry first.
func (c *core) expire(now time.Time) []Item {
	var out []Item
	for len(c.expiring) > 0 && expired(c.expiring[0].item.Expiry, now) {
		e := c.expiring[0]
		c.remove(e)
		out = append(out, e.item)
	}
	return out
}

// clearSeen clears every Seen flag and restores the heap, in O(n).
func (c *core) clearSeen() {
	for _, e := range c.heap {
		e.item.Seen = false
	}
	for i := len(c.heap)/2 - 1; i >= 0; i-- {
		c.pushDown(i)
	}
}

// delete removes the slot; false when it was not waiting.
func (c *core) delete(id stowage.RequestID, index uint64) bool {
	e, ok := c.slots[slotKey{id, index}]
	if ok {
		c.remove(e)
	}
	return ok
}

// deleteRequest removes every waiting slot of the request and returns how
// many there were.
func (c *core) deleteRequest(id stowage.RequestID) int {
	n := len(c.requests[id])
	for len(c.requests[id]) > 0 {
		c.remove(c.requests[id][0])
	}
	return n
}

// sibling returns one waiting item of the request.
func (c *core) sibling(id stowage.RequestID) (Item, bool) {
	if s := c.requests[id]; len(s) > 0 {
		return s[0].item, true
	}
	return Item{}, false
}

// items returns the waiting items in serving order.
func (c *core) items() []Item {
	es := slices.Clone(c.heap)
	slices.SortFunc(es, func(a, b *entry) int {
		if before(a, b) {
			return -1
		}
		return 1 // entries are distinct slots, never equal
	})
	out := make([]Item, len(es))
	for i, e := range es {
		out[i] = e.item
	}
	return out
}

// remove takes e out of the heaps and the maps.
func (c *core) remove(e *entry) {
	c.unindex(e)
	i, n := e.at, len(c.heap)-1
	c.swap(i, n)
	c.heap[n] = nil
	c.heap = c.heap[:n]
	if i < n {
		c.fix(c.heap[i])
	}
}

// fix moves e, which has just come to its position from elsewhere, to
// where it belongs: below, or above.
func (c *core) fix(e *entry) {
	c.pushDown(e.at)
	c.pushUp(e.at)
}

// before reports whether a is served before b: Item.Less, then the tie
// rank, then the slot, so that two distinct slots are never equal.
func before(a, b *entry) bool {
	// Most comparisons are decided here, without a call.
	if a.item.Seen == b.item.Seen && a.profit != b.profit {
		return a.profit.Gt(&b.profit)
	}
	return servedBefore(&a.item, &a.profit, a.tie, &b.item, &b.profit, b.tie)
}

// tieRank orders it among items equal under Item.Less: a hash of the slot
// under the queue's seed, so each queue (unless given the same seed, see
// WithTieSeed) breaks ties in an order of its own, whatever the order of
// pushes.
func (c *core) tieRank(it *Item) uint64 {
	h := c.tieSeed
	for i := 0; i < len(it.RequestID); i += 8 {
		h = mix64(h ^ binary.LittleEndian.Uint64(it.RequestID[i:]))
	}
	return mix64(h ^ it.Index)
}

// mix64 is the splitmix64 finaliser: every input bit affects every output
// bit.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// The min-max heap, after Atkinson et al. (1986). Nodes on min levels (even
// depths, the root's) are served before all their descendants, nodes on max
// levels after all theirs.

func (c *core) less(i, j int) bool { return before(c.heap[i], c.heap[j]) }

func (c *core) swap(i, j int) {
	h := c.heap
	h[i], h[j] = h[j], h[i]
	h[i].at, h[j].at = i, j
}

func isMinLevel(i int) bool { return bits.Len(uint(i+1))%2 == 1 }

// maxPos is the position of the max. The heap must not be empty.
func (c *core) maxPos() int {
	if len(c.heap) < 3 {
		return len(c.heap) - 1
	}
	if c.less(1, 2) {
		return 2
	}
	return 1
}

// pushUp moves the node at i up to its place.
func (c *core) pushUp(i int) {
	if i == 0 {
		return
	}
	p, minLevel := (i-1)/2, isMinLevel(i)
	if c.less(p, i) == minLevel { // on the wrong side of its parent
		c.swap(i, p)
		c.pushUpLevels(p, minLevel)
	} else {
		c.pushUpLevels(i, !minLevel)
	}
}

// pushUpLevels moves the node at i up its grandparents while it is served
// before them (max: after them).
func (c *core) pushUpLevels(i int, max bool) {
	for g := (i - 3) / 4; i > 2 && c.less(i, g) != max; g = (i - 3) / 4 {
		c.swap(i, g)
		i = g
	}
}

// pushDown sinks the node at i until it is served before (on a max level:
// after) all its descendants.
func (c *core) pushDown(i int) {
	max := !isMinLevel(i)
	for {
		m := c.extremeBelow(i, max)
		if m < 0 || c.less(m, i) == max {
			return
		}
		c.swap(m, i)
		if m <= 2*i+2 {
			return // a child: it has no children
		}
		// A grandchild: the node now at m may be on the wrong side of
		// its parent.
		if p := (m - 1) / 2; c.less(p, m) != max {
			c.swap(m, p)
		}
		i = m
	}
}

// extremeBelow returns the position of the first served (max: the last
// served) of the children and grandchildren of i, or -1 when i is a leaf.
func (c *core) extremeBelow(i int, max bool) int {
	m := -1
	for _, d := range [...]int{2*i + 1, 2*i + 2, 4*i + 3, 4*i + 4, 4*i + 5, 4*i + 6} {
		if d >= len(c.heap) {
			break
		}
		if m < 0 || c.less(d, m) != max {
			m = d
		}
	}
	return m
}

// byExpiry is a container/heap of entries, earliest Expiry first.
type byExpiry []*entry

func (h byExpiry) Len() int           { return len(h) }
func (h byExpiry) Less(i, j int) bool { return h[i].item.Expiry.Before(h[j].item.Expiry) }
func (h byExpiry) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].expAt, h[j].expAt = i, j
}
func (h *byExpiry) Push(x any) {
	e := x.(*entry)
	e.expAt = len(*h)
	*h = append(*h, e)
}
func (h *byExpiry) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.expAt = -1
	return e
}

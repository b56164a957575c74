package slotqueue

import (
	"encoding/binary"
	"hash/maphash"
	"math/bits"
	"slices"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage"
)

// core is the queue without goroutines: ordering, bounding and indexing,
// deterministic and synchronous, so it can be tested without timing. It is
// not safe for concurrent use; Queue guards it with a mutex.
//
// Items live in a slab of entries addressed by stable handles. A min-max heap
// of nodes orders them: nodes on even levels (the root's) come before all
// their descendants, nodes on odd levels after all theirs, so the next item to
// serve is the root and the one to drop is the root or one of its two
// children. Two hash tables of handles find an item by slot and the queued
// slots of a request (which are linked through their entries). Push, pop,
// drop and delete are O(log n); contains is O(1); nothing scans the queue.
//
// The tables are sized for maxSize up front (8 bytes a cell, two cells per
// item) and the entries grow to the most items ever queued, so a queue that
// has been full once no longer allocates.
type core struct {
	maxSize  int
	entries  []entry      // slab indexed by handle
	pos      []uint16     // heap position by handle
	free     []uint16     // handles of unused entries
	heap     []node       // min-max heap
	slots    table        // one cell per queued item, keyed by slot
	requests table        // one cell per request with queued items, holding one of its items
	seed     maphash.Seed // of the hash tables
	tieSeed  uint64       // of the tie ranks, see tieRank
}

// entry is one queued item. What removing it needs comes first, so that it
// shares a cache line with the profitability.
type entry struct {
	hash       uint64      // requestHash(item.RequestID)
	tie        uint64      // tieRank(item)
	prev, next int32       // other queued slots of the same request; none: -1
	profit     uint256.Int // item.Profitability(), computed once
	item       Item
}

// node is a heap element: the entry's rank in the top 48 bits and its
// handle (maxSize ≤ 65535, so handles fit) in the low 16. Nodes with
// different ranks compare as plain integers, which decides most comparisons
// without touching the large, scattered entries.
type node uint64

func (n node) handle() int32 { return int32(uint16(n)) }

// rankOf summarises a profitability in 48 bits, preserving order: 9 bits of
// bit length, then the 39 bits starting at the leading one. Equal ranks mean
// equal profitabilities only up to 39 significant bits, so they fall back to
// the full comparison.
func rankOf(profit *uint256.Int) uint64 {
	const mantissa = 39
	n := profit.BitLen()
	if n <= mantissa {
		return uint64(n)<<mantissa | profit.Uint64()
	}
	var top uint256.Int
	top.Rsh(profit, uint(n-mantissa))
	return uint64(n)<<mantissa | top.Uint64()
}

func newCore(maxSize int, tieSeed uint64) *core {
	return &core{
		tieSeed:  tieSeed,
		maxSize:  maxSize,
		slots:    newTable(maxSize),
		requests: newTable(maxSize),
		seed:     maphash.MakeSeed(),
	}
}

func (c *core) len() int { return len(c.heap) }

func (c *core) requestHash(id *stowage.RequestID) uint64 {
	return maphash.Bytes(c.seed, id[:])
}

// slotHash derives a slot's hash from its request's: the multiplication
// spreads the index into the high bits, which pick the cell.
func slotHash(request uint64, index uint16) uint64 {
	return (request ^ uint64(index)) * 0x9e3779b97f4a7c15
}

// findSlot returns the handle of the queued slot, or -1 and the empty cell
// where it would go.
func (c *core) findSlot(id *stowage.RequestID, index uint16, hash uint64) (cell int, h int32) {
	t := &c.slots
	for i := t.home(hash); ; i = (i + 1) & t.mask {
		v := t.cells[i]
		if v == 0 {
			return i, -1
		}
		if v>>32 == hash>>32 {
			h := handleOf(v)
			if e := &c.entries[h]; e.item.SlotIndex == index && e.item.RequestID == *id {
				return i, h
			}
		}
	}
}

// findRequest returns the handle of one queued slot of the request, or -1
// and the empty cell where the request would go.
func (c *core) findRequest(id *stowage.RequestID, hash uint64) (cell int, h int32) {
	t := &c.requests
	for i := t.home(hash); ; i = (i + 1) & t.mask {
		v := t.cells[i]
		if v == 0 {
			return i, -1
		}
		if v>>32 == hash>>32 {
			h := handleOf(v)
			if c.entries[h].item.RequestID == *id {
				return i, h
			}
		}
	}
}

func (c *core) contains(id stowage.RequestID, index uint16) bool {
	_, h := c.findSlot(&id, index, slotHash(c.requestHash(&id), index))
	return h >= 0
}

// push adds it unless its slot is already queued. When that makes the queue
// overflow, the lowest-priority item (possibly it) is dropped and returned.
func (c *core) push(it Item) (dropped Item, didDrop bool, err error) {
	rh := c.requestHash(&it.RequestID)
	sh := slotHash(rh, it.SlotIndex)
	slotCell, h := c.findSlot(&it.RequestID, it.SlotIndex, sh)
	if h >= 0 {
		return Item{}, false, ErrItemExists
	}
	profit := it.Profitability()
	tie := c.tieRank(&it)
	nd := node(rankOf(&profit) << 16)
	full := len(c.heap) >= c.maxSize
	var at int // heap position of the dropped item, replaced by it
	if full {
		at = c.lastPos()
		wn := c.heap[at]
		w := &c.entries[wn.handle()]
		if nd>>16 != wn>>16 && nd < wn || nd>>16 == wn>>16 && !servedBefore(&it, &profit, tie, &w.item, &w.profit, w.tie) {
			return it, true, nil // it is the lowest
		}
		dropped, didDrop = w.item, true
		h = wn.handle()
		c.unindex(h)
		// Unindexing may have shifted the cells; look again.
		slotCell, _ = c.findSlot(&it.RequestID, it.SlotIndex, sh)
	} else if n := len(c.free); n > 0 {
		h = int32(c.free[n-1])
		c.free = c.free[:n-1]
	} else {
		h = int32(len(c.entries))
		c.entries = append(c.entries, entry{})
		c.pos = append(c.pos, 0)
	}
	nd |= node(h)
	e := &c.entries[h]
	e.profit, e.item, e.hash, e.tie = profit, it, rh, tie
	c.slots.cells[slotCell] = cellOf(sh, h)

	// Link after the request's first slot, so the table is written only
	// when the request is new.
	if reqCell, first := c.findRequest(&it.RequestID, rh); first >= 0 {
		f := &c.entries[first]
		e.prev, e.next = first, f.next
		if f.next >= 0 {
			c.entries[f.next].prev = h
		}
		f.next = h
	} else {
		e.prev, e.next = -1, -1
		c.requests.cells[reqCell] = cellOf(rh, h)
	}

	if full {
		// Reuse the dropped item's handle and heap position: cheaper than
		// filling its place with the last leaf and appending it.
		c.heap[at] = nd
		c.fix(at, h)
	} else {
		c.pos[h] = uint16(len(c.heap))
		c.heap = append(c.heap, nd)
		c.up(len(c.heap) - 1)
	}
	return dropped, didDrop, nil
}

// pop removes and returns the highest-priority item.
func (c *core) pop() (Item, bool) {
	if len(c.heap) == 0 {
		return Item{}, false
	}
	h := c.heap[0].handle()
	it := c.entries[h].item
	c.unindex(h)
	// Delete-min of a min-max heap: the last node takes the root's place and
	// only ever sinks, so there is no need for remove's general fix.
	if last := len(c.heap) - 1; last > 0 {
		moved := c.heap[last]
		c.heap[0] = moved
		c.heap = c.heap[:last]
		c.pos[moved.handle()] = 0
		c.downFirst(0)
	} else {
		c.heap = c.heap[:0]
	}
	c.free = append(c.free, uint16(h))
	return it, true
}

// peek returns the highest-priority item without removing it.
func (c *core) peek() (Item, bool) {
	if len(c.heap) == 0 {
		return Item{}, false
	}
	return c.entries[c.heap[0].handle()].item, true
}

// delete removes the slot; false when it was not queued.
func (c *core) delete(id stowage.RequestID, index uint16) bool {
	_, h := c.findSlot(&id, index, slotHash(c.requestHash(&id), index))
	if h >= 0 {
		c.remove(h)
	}
	return h >= 0
}

// deleteRequest removes every queued slot of the request and returns how
// many there were.
func (c *core) deleteRequest(id stowage.RequestID) int {
	hash := c.requestHash(&id)
	n := 0
	for {
		_, h := c.findRequest(&id, hash)
		if h < 0 {
			return n
		}
		c.remove(h)
		n++
	}
}

// sibling returns one queued item of the request.
func (c *core) sibling(id stowage.RequestID) (Item, bool) {
	_, h := c.findRequest(&id, c.requestHash(&id))
	if h < 0 {
		return Item{}, false
	}
	return c.entries[h].item, true
}

// items returns the queued items, highest priority first.
func (c *core) items() []Item {
	ns := slices.Clone(c.heap)
	slices.SortFunc(ns, func(a, b node) int {
		if c.nodeLess(a, b) {
			return -1
		}
		return 1 // nodes are distinct slots, never equal
	})
	out := make([]Item, len(ns))
	for i, n := range ns {
		out[i] = c.entries[n.handle()].item
	}
	return out
}

// remove takes the entry with handle h out of the heap and the tables and
// frees it.
func (c *core) remove(h int32) {
	c.unindex(h)
	i, last := int(c.pos[h]), len(c.heap)-1
	if i != last {
		moved := c.heap[last]
		c.heap[i] = moved
		c.heap = c.heap[:last]
		c.fix(i, moved.handle())
	} else {
		c.heap = c.heap[:last]
	}
	c.free = append(c.free, uint16(h))
}

// fix restores the heap after the node at position i, with handle h,
// changed. The node may belong further down (it came from another subtree),
// further up, or, after sinking, further up from where it came to rest;
// sifting down then up from its final position covers all three.
func (c *core) fix(i int, h int32) {
	c.pos[h] = uint16(i)
	c.down(i)
	c.up(int(c.pos[h]))
}

// unindex takes the entry with handle h out of the tables and its
// request's list.
func (c *core) unindex(h int32) {
	e := &c.entries[h]
	if e.prev >= 0 {
		c.entries[e.prev].next = e.next
	} else {
		// h is the request's cell: hand it to the next slot, or drop it.
		cell := c.requests.cellOf(e.hash, h)
		if e.next >= 0 {
			c.requests.cells[cell] = cellOf(e.hash, e.next)
		} else {
			c.requests.deleteAt(cell)
		}
	}
	if e.next >= 0 {
		c.entries[e.next].prev = e.prev
	}
	c.slots.deleteAt(c.slots.cellOf(slotHash(e.hash, e.item.SlotIndex), h))
}

// nodeLess reports whether node a is served before node b. It is small
// enough to inline: only ties of rank call out.
func (c *core) nodeLess(a, b node) bool {
	if (a^b)>>16 != 0 {
		return a > b // different ranks
	}
	return c.tieLess(a, b)
}

// tieLess is nodeLess for nodes of equal rank.
func (c *core) tieLess(a, b node) bool {
	x, y := &c.entries[a.handle()], &c.entries[b.handle()]
	return servedBefore(&x.item, &x.profit, x.tie, &y.item, &y.profit, y.tie)
}

// tieRank is the rank that orders it among items equal under the four
// rules of Item.Less: a hash of the slot under the queue's tie seed, so each
// queue (unless given the same seed, see WithTieSeed) breaks ties in its own
// order.
func (c *core) tieRank(it *Item) uint64 {
	h := c.tieSeed
	for i := 0; i < len(it.RequestID); i += 8 {
		h = mix64(h ^ binary.LittleEndian.Uint64(it.RequestID[i:]))
	}
	return mix64(h ^ uint64(it.SlotIndex))
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

// itemLess is the core's order on two items, for tests and models.
func (c *core) itemLess(a, b Item) bool {
	pa, pb := a.Profitability(), b.Profitability()
	return servedBefore(&a, &pa, c.tieRank(&a), &b, &pb, c.tieRank(&b))
}

// less reports whether heap position i is served before heap position j.
func (c *core) less(i, j int) bool { return c.nodeLess(c.heap[i], c.heap[j]) }

func (c *core) swap(i, j int) {
	h := c.heap
	h[i], h[j] = h[j], h[i]
	c.pos[h[i].handle()] = uint16(i)
	c.pos[h[j].handle()] = uint16(j)
}

// lastPos is the heap position of the lowest-priority item. The heap must
// not be empty.
func (c *core) lastPos() int {
	switch len(c.heap) {
	case 1:
		return 0
	case 2:
		return 1
	}
	if c.less(1, 2) {
		return 2
	}
	return 1
}

// firstLevel reports whether heap position i is on an even level, whose nodes
// come before all their descendants (the others come after all theirs).
func firstLevel(i int) bool { return bits.Len(uint(i+1))&1 == 1 }

func (c *core) up(i int) {
	if i == 0 {
		return
	}
	p := (i - 1) / 2
	if firstLevel(i) {
		if c.less(p, i) {
			c.swap(i, p)
			c.upLast(p)
		} else {
			c.upFirst(i)
		}
	} else {
		if c.less(i, p) {
			c.swap(i, p)
			c.upFirst(p)
		} else {
			c.upLast(i)
		}
	}
}

// upFirst moves position i up the even levels while it precedes its
// grandparent.
func (c *core) upFirst(i int) {
	for i > 2 {
		g := (i - 3) / 4
		if !c.less(i, g) {
			return
		}
		c.swap(i, g)
		i = g
	}
}

// upLast moves position i up the odd levels while it follows its
// grandparent.
func (c *core) upLast(i int) {
	for i > 2 {
		g := (i - 3) / 4
		if !c.less(g, i) {
			return
		}
		c.swap(i, g)
		i = g
	}
}

func (c *core) down(i int) {
	if firstLevel(i) {
		c.downFirst(i)
	} else {
		c.downLast(i)
	}
}

// downFirst sinks position i, on an even level, until it precedes all its
// descendants. The sinking node is held aside and written once where it comes
// to rest; the nodes it passes move up into the hole it leaves.
func (c *core) downFirst(i int) {
	h := c.heap
	n := len(h)
	x := h[i]
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m, mn := l, h[l] // the first of children and grandchildren
		if l+1 < n && c.nodeLess(h[l+1], mn) {
			m, mn = l+1, h[l+1]
		}
		g := 2*l + 1
		for k, end := g, min(g+4, n); k < end; k++ {
			if c.nodeLess(h[k], mn) {
				m, mn = k, h[k]
			}
		}
		if !c.nodeLess(mn, x) {
			break
		}
		h[i] = mn
		c.pos[mn.handle()] = uint16(i)
		i = m
		if m < g {
			break // a child: it has no children, or a grandchild would precede it
		}
		// x lands below m's parent, on an odd level: if the parent precedes
		// x, x belongs in the parent's place and the parent sinks on.
		if p := (m - 1) / 2; c.nodeLess(h[p], x) {
			h[p], x = x, h[p]
			c.pos[h[p].handle()] = uint16(p)
		}
	}
	h[i] = x
	c.pos[x.handle()] = uint16(i)
}

// downLast sinks position i, on an odd level, until it follows all its
// descendants.
func (c *core) downLast(i int) {
	h := c.heap
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m, mn := l, h[l] // the last of children and grandchildren
		if l+1 < n && c.nodeLess(mn, h[l+1]) {
			m, mn = l+1, h[l+1]
		}
		g := 2*l + 1
		for k, end := g, min(g+4, n); k < end; k++ {
			if c.nodeLess(mn, h[k]) {
				m, mn = k, h[k]
			}
		}
		if !c.nodeLess(h[i], mn) {
			return
		}
		c.swap(m, i)
		if m < g {
			return
		}
		if p := (m - 1) / 2; c.nodeLess(h[m], h[p]) {
			c.swap(m, p)
		}
		i = m
	}
}

// table is an open-addressing hash table of entry handles, with linear
// probing and backward-shift deletion (so no tombstones build up under
// churn). It is kept at most half full (a quarter full for small queues).
// Each cell holds the top 32 bits of its key's hash (which also give its home
// cell) and handle+1; 0 is empty. Keys live in the entries: the core
// compares them.
type table struct {
	cells []uint64
	mask  int
	shift uint // hash >> shift is the home cell
}

func newTable(maxItems int) table {
	// A sparser table has shorter probe runs. Small queues afford a quarter
	// full (still a few KiB, in cache); large ones stay at half full, as
	// bigger tables would cost more in cache misses than they save.
	spread := 2
	if maxItems <= 1<<12 {
		spread = 4
	}
	n := max(8, 1<<bits.Len(uint(spread*maxItems-1))) // a power of two ≥ spread×maxItems
	return table{
		cells: make([]uint64, n),
		mask:  n - 1,
		shift: uint(64 - bits.TrailingZeros(uint(n))),
	}
}

func cellOf(hash uint64, h int32) uint64 { return hash&^(1<<32-1) | uint64(h+1) }

func handleOf(cell uint64) int32 { return int32(uint32(cell)) - 1 }

func (t *table) home(hash uint64) int { return int(hash >> t.shift) }

// cellOf returns the cell holding handle h, which must be there.
func (t *table) cellOf(hash uint64, h int32) int {
	want := cellOf(hash, h)
	i := t.home(hash)
	for t.cells[i] != want {
		i = (i + 1) & t.mask
	}
	return i
}

// deleteAt empties cell i, moving back later cells of the same probe run that
// may no longer be found past the gap.
func (t *table) deleteAt(i int) {
	for j := (i + 1) & t.mask; ; j = (j + 1) & t.mask {
		v := t.cells[j]
		if v == 0 {
			break
		}
		// v may move into the gap if the gap is not before its home cell
		// (cyclically, between its home and j).
		if home := int(v >> t.shift); (j-home)&t.mask >= (j-i)&t.mask {
			t.cells[i] = v
			i = j
		}
	}
	t.cells[i] = 0
}

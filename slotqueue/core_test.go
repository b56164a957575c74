package slotqueue

import (
	"math/rand/v2"
	"slices"
	"sort"
	"testing"

	"github.com/holiman/uint256"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
)

// checkCore verifies every invariant of the core's heap and tables. It
// avoids testify in its loops: it runs after every operation of the model
// tests.
func checkCore(t testing.TB, c *core) {
	t.Helper()
	n := len(c.heap)
	if n > c.maxSize || len(c.entries) > c.maxSize || n+len(c.free) != len(c.entries) || len(c.pos) != len(c.entries) {
		t.Fatalf("%d items, %d free handles, %d entries, max size %d", n, len(c.free), len(c.entries), c.maxSize)
	}
	used := make([]bool, len(c.entries))
	for _, h := range c.free {
		used[h] = true
	}

	for i, nd := range c.heap {
		h := nd.handle()
		if used[h] {
			t.Fatalf("handle %d used twice", h)
		}
		used[h] = true
		e := &c.entries[h]
		if int(c.pos[h]) != i {
			t.Fatalf("handle %d at heap position %d thinks it is at %d", h, i, c.pos[h])
		}
		if p := e.item.Profitability(); e.profit != p {
			t.Fatalf("handle %d: cached profitability %s, want %s", h, &e.profit, &p)
		}
		if want := node(rankOf(&e.profit)<<16 | uint64(h)); nd != want {
			t.Fatalf("handle %d: node %x, want %x", h, nd, want)
		}
		if e.hash != c.requestHash(&e.item.RequestID) {
			t.Fatalf("handle %d: stale hash", h)
		}
		if _, found := c.findSlot(&e.item.RequestID, e.item.SlotIndex, slotHash(e.hash, e.item.SlotIndex)); found != h {
			t.Fatalf("slot table finds %d for handle %d", found, h)
		}
		// Checking children and grandchildren implies the whole subtree
		// by induction.
		for _, d := range [...]int{2*i + 1, 2*i + 2, 4*i + 3, 4*i + 4, 4*i + 5, 4*i + 6} {
			if d >= n {
				continue
			}
			if firstLevel(i) && !c.less(i, d) {
				t.Fatalf("heap position %d does not precede its descendant %d", i, d)
			}
			if !firstLevel(i) && !c.less(d, i) {
				t.Fatalf("heap position %d does not follow its descendant %d", i, d)
			}
		}
	}

	if full := checkTable(t, &c.slots); full != n {
		t.Fatalf("slot table holds %d cells for %d items", full, n)
	}
	checkTable(t, &c.requests)
	linked := 0
	for _, v := range c.requests.cells {
		if v == 0 {
			continue
		}
		first := handleOf(v)
		id := c.entries[first].item.RequestID
		if _, found := c.findRequest(&id, c.requestHash(&id)); found != first {
			t.Fatalf("request table finds %d for handle %d", found, first)
		}
		prev := int32(-1)
		for h := first; h >= 0; h = c.entries[h].next {
			e := &c.entries[h]
			if e.item.RequestID != id || e.prev != prev {
				t.Fatalf("broken list of request %s at handle %d", id, h)
			}
			if int(c.pos[h]) >= n || c.heap[c.pos[h]].handle() != h {
				t.Fatalf("handle %d of request %s is not queued", h, id)
			}
			prev = h
			if linked++; linked > n {
				t.Fatalf("cycle in the list of request %s", id)
			}
		}
	}
	if linked != n {
		t.Fatalf("request lists hold %d of %d items", linked, n)
	}
}

// checkTable verifies that every cell can be reached from its home cell
// without crossing an empty one, and returns how many cells are full.
func checkTable(t testing.TB, tb *table) int {
	t.Helper()
	full := 0
	for j, v := range tb.cells {
		if v == 0 {
			continue
		}
		full++
		for i := tb.home(v); i != j; i = (i + 1) & tb.mask {
			if tb.cells[i] == 0 {
				t.Fatalf("cell %d is cut off from its home cell %d", j, tb.home(v))
			}
		}
	}
	if 2*full > len(tb.cells) {
		t.Fatalf("table more than half full: %d of %d", full, len(tb.cells))
	}
	return full
}

// pushedItems is the oracle for a queue that is only pushed to: every item
// pushed successfully, sorted by the queue's order; the queue must hold the
// first maxSize. A slot pushed again after it was dropped counts as a new
// item; the dropped one had maxSize better items queued, so it can never be
// among the first maxSize.
type pushedItems struct {
	less  func(a, b Item) bool
	items []Item
}

func (p *pushedItems) add(it Item) {
	i := sort.Search(len(p.items), func(i int) bool { return p.less(it, p.items[i]) })
	p.items = slices.Insert(p.items, i, it)
}

func (p pushedItems) best(n int) []Item { return p.items[:min(n, len(p.items))] }

// randomItem draws terms from small ranges so that every ordering rule,
// and the final tie-break, is exercised; a small key space makes duplicates.
func randomItem(rng *rand.Rand, requests, slots int) Item {
	var it Item
	it.RequestID[0] = byte(rng.IntN(requests))
	it.SlotIndex = uint16(rng.IntN(slots))
	it.Duration = rng.Uint64N(4)
	it.Reward.SetUint64(rng.Uint64N(4))
	it.Collateral.SetUint64(rng.Uint64N(3))
	it.Expiry = rng.Uint64N(3)
	it.SlotSize = rng.Uint64N(3)
	return it
}

func TestCore_PushKeepsExactlyTheBestMaxSize(t *testing.T) {
	for _, maxSize := range []int{1, 2, 3, 4, 7, 8, 31, 100} {
		rng := rand.New(rand.NewPCG(uint64(maxSize), 7))
		c := newCore(maxSize, 1)
		model := newSortedSlice(maxSize, c.tieRank)
		pushed := pushedItems{less: c.itemLess}
		for range 600 {
			it := randomItem(rng, 16, 16)
			wantExists := c.contains(it.RequestID, it.SlotIndex)
			before := c.items()

			dropped, didDrop, err := c.push(it)
			mDropped, mDidDrop, mErr := model.push(it)
			if wantExists {
				require.ErrorIs(t, err, ErrItemExists)
				require.ErrorIs(t, mErr, ErrItemExists)
			} else {
				require.NoError(t, err)
				require.NoError(t, mErr)
				pushed.add(it)
			}
			checkCore(t, c)

			want := pushed.best(maxSize)
			require.Equal(t, want, c.items(), "max size %d after %d pushes", maxSize, len(pushed.items))
			require.Equal(t, want, model.items(), "the model disagrees with the oracle")
			require.Equal(t, mDidDrop, didDrop)
			require.Equal(t, mDropped, dropped)
			require.Equal(t, !wantExists && len(before) == maxSize, didDrop, "drops exactly when full")
			if didDrop {
				lowest := it
				for _, b := range before {
					if c.itemLess(lowest, b) {
						lowest = b
					}
				}
				require.Equal(t, lowest, dropped, "drops the lowest of the queued and the new")
			}
		}
	}
}

func TestCore_PopServesHighestPriorityFirst(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	c := newCore(500, 1)
	for range 500 {
		_, _, _ = c.push(randomItem(rng, 64, 64)) // duplicates are skipped
	}
	want := c.items()
	var got []Item
	for {
		it, ok := c.pop()
		if !ok {
			break
		}
		got = append(got, it)
		checkCore(t, c)
	}
	assert.Equal(t, want, got)
}

func TestCore_DeleteRequestRemovesOnlyThatRequest(t *testing.T) {
	c := newCore(100, 1)
	for r := range 3 {
		for s := range 10 {
			var it Item
			it.RequestID[0] = byte(r)
			it.SlotIndex = uint16(s)
			it.Duration = uint64(s)
			_, _, err := c.push(it)
			require.NoError(t, err)
		}
	}
	require.Equal(t, 10, c.deleteRequest(stowage.RequestID{1}))
	checkCore(t, c)
	assert.Equal(t, 20, c.len())
	for _, it := range c.items() {
		assert.NotEqual(t, stowage.RequestID{1}, it.RequestID)
	}
	assert.Equal(t, 0, c.deleteRequest(stowage.RequestID{1}))
}

func TestRankOf_PreservesOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	random := func() *uint256.Int {
		x := uint256.Int{rng.Uint64(), rng.Uint64(), rng.Uint64(), rng.Uint64()}
		return x.Rsh(&x, uint(rng.IntN(257)))
	}
	for range 100000 {
		a, b := random(), random()
		if rng.IntN(4) == 0 { // close values
			b.AddUint64(a, rng.Uint64N(8))
		}
		switch a.Cmp(b) {
		case -1:
			require.LessOrEqual(t, rankOf(a), rankOf(b), "%s < %s", a, b)
		case 1:
			require.GreaterOrEqual(t, rankOf(a), rankOf(b), "%s > %s", a, b)
		}
		if a.BitLen() <= 39 && b.BitLen() <= 39 {
			require.Equal(t, a.Eq(b), rankOf(a) == rankOf(b), "small values have exact ranks")
		}
	}
	var maxInt uint256.Int
	maxInt.SetAllOne()
	assert.Equal(t, uint64(256)<<39|(1<<39-1), rankOf(&maxInt))
	assert.Equal(t, uint64(0), rankOf(new(uint256.Int)))
}

// runOps interprets data as a sequence of operations on a core and on the
// sorted-slice model and fails at the first disagreement.
func runOps(t *testing.T, data []byte) {
	if len(data) == 0 {
		return
	}
	maxSize := int(data[0]%16) + 1
	data = data[1:]
	c := newCore(maxSize, 1)
	model := newSortedSlice(maxSize, c.tieRank)
	for len(data) >= 4 {
		op, a, b, d := data[0], data[1], data[2], data[3]
		data = data[4:]
		var it Item
		it.RequestID[0] = a % 4
		it.SlotIndex = uint16(a>>2) % 8
		it.Duration = uint64(b & 3)
		it.Reward.SetUint64(uint64(b>>2) & 3)
		if d&4 != 0 { // profitabilities that differ only below the rank's 55 bits
			it.Reward.Or(&it.Reward, new(uint256.Int).Lsh(uint256.NewInt(1), 100))
		}
		if d&8 != 0 && d&4 == 0 { // saturated profitability
			it.Duration = 1 << 63
			it.Reward.SetAllOne()
		}
		it.Collateral.SetUint64(uint64(b>>4) & 3)
		it.Expiry = uint64(b>>6) & 3
		it.SlotSize = uint64(d & 3)

		switch op % 8 {
		case 0, 1, 2: // push
			dropped, didDrop, err := c.push(it)
			mDropped, mDidDrop, mErr := model.push(it)
			require.Equal(t, mErr, err, "push")
			require.Equal(t, mDidDrop, didDrop, "push dropped")
			require.Equal(t, mDropped, dropped, "push dropped")
		case 3: // pop
			got, ok := c.pop()
			want, mOK := model.pop()
			require.Equal(t, mOK, ok, "pop")
			require.Equal(t, want, got, "pop")
		case 4: // delete one slot
			require.Equal(t, model.delete(it.RequestID, it.SlotIndex), c.delete(it.RequestID, it.SlotIndex), "delete")
		case 5: // delete a request
			require.Equal(t, model.deleteRequest(it.RequestID), c.deleteRequest(it.RequestID), "delete request")
		case 6: // contains
			require.Equal(t, model.contains(it.RequestID, it.SlotIndex), c.contains(it.RequestID, it.SlotIndex), "contains")
		case 7: // a sibling for Populate
			sib, ok := c.sibling(it.RequestID)
			require.Equal(t, slices.ContainsFunc(model.items(), func(m Item) bool { return m.RequestID == it.RequestID }), ok, "sibling")
			if ok {
				require.Equal(t, it.RequestID, sib.RequestID, "sibling")
				require.True(t, model.contains(sib.RequestID, sib.SlotIndex), "sibling")
			}
		}
		checkCore(t, c)
		require.Equal(t, model.items(), c.items())
		peek, ok := c.peek()
		require.Equal(t, model.len() > 0, ok)
		if ok {
			require.Equal(t, model.items()[0], peek)
		}
	}
}

func FuzzQueue(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{0, 1, 9, 40, 200, 800} {
		seed := make([]byte, 1+4*n)
		for i := range seed {
			seed[i] = byte(rng.Uint32())
		}
		f.Add(seed)
	}
	// Fill a queue of 3, overflow it, and drain it.
	f.Add([]byte{2, 0, 1, 1, 0, 0, 5, 2, 1, 0, 9, 3, 0, 0, 13, 0, 2, 3, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0, 3, 0, 0, 0})
	f.Fuzz(runOps)
}

// The slots of one request tie under the four rules; each queue breaks the
// tie in an order of its own seed, so hosts do not all serve slot 0 first.
// (Two seeds agreeing on the order of 64 slots by chance: 1 in 64!.)
func TestCore_TiesBrokenInAnOrderOfEachQueue(t *testing.T) {
	ask := stowage.StorageAsk{Slots: 64, SlotSize: 1, Duration: 1}
	items, err := ItemsForRequest(stowage.RequestID{1}, ask, 1)
	require.NoError(t, err)
	order := func(c *core) []uint16 {
		for _, it := range items {
			_, _, err := c.push(it)
			require.NoError(t, err)
		}
		var idx []uint16
		for _, it := range c.items() {
			idx = append(idx, it.SlotIndex)
		}
		return idx
	}
	a, b := order(newCore(64, 1)), order(newCore(64, 2))
	assert.NotEqual(t, a, b)
	assert.Equal(t, a, order(newCore(64, 1)), "the same seed, the same order")

	// Within one queue the order does not depend on the order of pushes.
	c := newCore(64, 1)
	first := order(c)
	for range 64 {
		_, _ = c.pop()
	}
	slices.Reverse(items)
	assert.Equal(t, first, order(c))
}

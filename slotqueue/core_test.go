package slotqueue

import (
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/holiman/uint256"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
)

// checkCore verifies every invariant of the core's heaps and maps. It
// avoids testify in its loops: it runs after every operation of the model
// tests.
func checkCore(t testing.TB, c *core) {
	t.Helper()
	n := len(c.heap)
	if n > c.maxSize || len(c.slots) != n {
		t.Fatalf("%d items, %d slots, max size %d", n, len(c.slots), c.maxSize)
	}
	inRequests, withExpiry := 0, 0
	for i, e := range c.heap {
		if e.at != i {
			t.Fatalf("entry at heap position %d thinks it is at %d", i, e.at)
		}
		if p := e.item.Profitability(); e.profit != p || e.tie != c.tieRank(&e.item) {
			t.Fatalf("position %d: stale profitability or tie rank", i)
		}
		if c.slots[slotKey{e.item.RequestID, e.item.Index}] != e {
			t.Fatalf("position %d: not found by slot", i)
		}
		if s := c.requests[e.item.RequestID]; e.sibling >= len(s) || s[e.sibling] != e {
			t.Fatalf("position %d: not found by request", i)
		}
		if e.item.Expiry.IsZero() && e.expAt != -1 || !e.item.Expiry.IsZero() && c.expiring[e.expAt] != e {
			t.Fatalf("position %d: not found by expiry", i)
		}
		if !e.item.Expiry.IsZero() {
			withExpiry++
		}
		// Checking children and grandchildren implies the whole subtree
		// by induction.
		for _, d := range [...]int{2*i + 1, 2*i + 2, 4*i + 3, 4*i + 4, 4*i + 5, 4*i + 6} {
			if d < n && isMinLevel(i) != c.less(i, d) {
				t.Fatalf("heap position %d (min level: %v) is on the wrong side of its descendant %d", i, isMinLevel(i), d)
			}
		}
	}
	for _, s := range c.requests {
		inRequests += len(s)
	}
	if inRequests != n || withExpiry != len(c.expiring) {
		t.Fatalf("%d items, %d by request, %d with expiry, %d by expiry", n, inRequests, withExpiry, len(c.expiring))
	}
	for i := 1; i < len(c.expiring); i++ {
		if c.expiring.Less(i, (i-1)/2) {
			t.Fatalf("expiry heap position %d expires before its parent", i)
		}
	}
}

// itemLess is the core's order on two items, for tests and models.
func (c *core) itemLess(a, b Item) bool {
	return before(&entry{item: a, profit: a.Profitability(), tie: c.tieRank(&a)},
		&entry{item: b, profit: b.Profitability(), tie: c.tieRank(&b)})
}

// peek returns the min, the item served next.
func (c *core) peek() (Item, bool) {
	if len(c.heap) == 0 {
		return Item{}, false
	}
	return c.heap[0].item, true
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
	it.Index = uint64(rng.IntN(slots))
	it.Ask.Duration = rng.Uint64N(4)
	it.Ask.Reward.SetUint64(rng.Uint64N(4))
	it.Ask.Collateral.SetUint64(rng.Uint64N(3))
	it.Expiry = at(rng.Uint64N(3))
	it.Ask.SlotSize = rng.Uint64N(3)
	it.Seen = rng.IntN(4) == 0
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
			wantExists := c.contains(it.RequestID, it.Index)
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
			it.Index = uint64(s)
			it.Ask.Duration = uint64(s)
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
		it.Index = uint64(a>>2) % 8
		it.Ask.Duration = uint64(b & 3)
		it.Ask.Reward.SetUint64(uint64(b>>2) & 3)
		if d&4 != 0 { // large profitabilities that differ only in the low bits
			it.Ask.Reward.Or(&it.Ask.Reward, new(uint256.Int).Lsh(uint256.NewInt(1), 100))
		}
		if d&8 != 0 && d&4 == 0 { // saturated profitability
			it.Ask.Duration = 1 << 63
			it.Ask.Reward.SetAllOne()
		}
		it.Ask.Collateral.SetUint64(uint64(b>>4) & 3)
		it.Expiry = at(uint64(b>>6) & 3)
		it.Ask.SlotSize = uint64(d & 3)
		it.Seen = d&16 != 0

		switch op % 10 {
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
			require.Equal(t, model.delete(it.RequestID, it.Index), c.delete(it.RequestID, it.Index), "delete")
		case 5: // delete a request
			require.Equal(t, model.deleteRequest(it.RequestID), c.deleteRequest(it.RequestID), "delete request")
		case 6: // contains
			require.Equal(t, model.contains(it.RequestID, it.Index), c.contains(it.RequestID, it.Index), "contains")
		case 7: // a sibling for Queue.Item
			sib, ok := c.sibling(it.RequestID)
			require.Equal(t, slices.ContainsFunc(model.items(), func(m Item) bool { return m.RequestID == it.RequestID }), ok, "sibling")
			if ok {
				require.Equal(t, it.RequestID, sib.RequestID, "sibling")
				require.True(t, model.contains(sib.RequestID, sib.Index), "sibling")
			}
		case 8: // the clock moves (or is set back)
			now := time.Unix(int64(a&3)-1, 0)
			got := c.expire(now)
			require.ElementsMatch(t, model.expire(now), got, "expire")
			require.True(t, slices.IsSortedFunc(got, func(x, y Item) int { return x.Expiry.Compare(y.Expiry) }), "earliest expiry first")
		case 9: // Resume
			c.clearSeen()
			model.clearSeen()
		}
		checkCore(t, c)
		require.Equal(t, model.items(), c.items())
		peek, ok := c.peek()
		require.Equal(t, model.len() > 0, ok)
		if ok {
			require.Equal(t, model.items()[0], peek)
		}
		require.Equal(t, ok && !peek.Seen, c.ready(), "ready")
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

// The slots of one request tie under the rules of Item.Less; each queue breaks the
// tie in an order of its own seed, so hosts do not all serve slot 0 first.
// (Two seeds agreeing on the order of 64 slots by chance: 1 in 64!.)
func TestCore_TiesBrokenInAnOrderOfEachQueue(t *testing.T) {
	ask := stowage.StorageAsk{Slots: 64, SlotSize: 1, Duration: 1}
	items, err := ItemsForRequest(stowage.RequestID{1}, ask, time.Unix(1, 0))
	require.NoError(t, err)
	order := func(c *core) []uint64 {
		for _, it := range items {
			_, _, err := c.push(it)
			require.NoError(t, err)
		}
		var idx []uint64
		for _, it := range c.items() {
			idx = append(idx, it.Index)
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

// at is the Expiry n seconds after the Unix epoch; zero (no expiry) for 0.
func at(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(int64(n), 0)
}

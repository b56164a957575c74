package slotqueue_test

import (
	"cmp"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/holiman/uint256"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/slotqueue"
)

func testAsk(slots uint64) stowage.StorageAsk {
	return stowage.StorageAsk{
		Slots:      slots,
		SlotSize:   1 << 20,
		Duration:   3600,
		Reward:     *uint256.NewInt(5),
		Collateral: *uint256.NewInt(100),
	}
}

// newItem is slot index of a request, as ItemsForRequest makes it.
func newItem(id stowage.RequestID, index uint64, ask stowage.StorageAsk, expiry time.Time) slotqueue.Item {
	return slotqueue.Item{Slot: stowage.Slot{RequestID: id, Index: index, Ask: ask, Expiry: expiry}}
}

// The item is the slot itself, the whole ask included, so that a worker
// hands item.Slot on unchanged.
func TestItemsForRequest_ItemIsTheSlot(t *testing.T) {
	id := stowage.RequestID{1, 2, 3}
	expiry := time.Unix(12345, 0)
	items, err := slotqueue.ItemsForRequest(id, testAsk(1), expiry)
	require.NoError(t, err)
	assert.Equal(t, []slotqueue.Item{{Slot: stowage.Slot{RequestID: id, Index: 0, Ask: testAsk(1), Expiry: expiry}}}, items)
}

func TestItemsForRequest_CreatesAllSlotIndices(t *testing.T) {
	id := stowage.RequestID{1}
	items, err := slotqueue.ItemsForRequest(id, testAsk(12), time.Unix(99, 0))
	require.NoError(t, err)
	require.Len(t, items, 12)
	var indices []uint64
	for _, it := range items {
		indices = append(indices, it.Index)
		assert.Equal(t, newItem(id, it.Index, testAsk(12), time.Unix(99, 0)), it)
	}
	slices.Sort(indices)
	assert.Equal(t, []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, indices)
}

func TestItemsForRequest_Shuffles(t *testing.T) {
	// 1000 slots come out in index order with probability 1/1000!.
	items, err := slotqueue.ItemsForRequest(stowage.RequestID{1}, testAsk(1000), time.Time{})
	require.NoError(t, err)
	assert.False(t, slices.IsSortedFunc(items, func(a, b slotqueue.Item) int {
		return cmp.Compare(a.Index, b.Index)
	}))
}

func TestItemsForRequest_65535SlotsOK_65536Refused(t *testing.T) {
	items, err := slotqueue.ItemsForRequest(stowage.RequestID{1}, testAsk(math.MaxUint16), time.Time{})
	require.NoError(t, err)
	require.Len(t, items, math.MaxUint16)
	assert.Equal(t, uint64(math.MaxUint16-1), slices.MaxFunc(items, func(a, b slotqueue.Item) int {
		return cmp.Compare(a.Index, b.Index)
	}).Index)

	_, err = slotqueue.ItemsForRequest(stowage.RequestID{1}, testAsk(math.MaxUint16+1), time.Time{})
	assert.ErrorIs(t, err, slotqueue.ErrSlotsOutOfRange)
	assert.ErrorContains(t, err, "65536 slots, Codex allows at most 65535")
}

func TestItemsForRequest_NoSlotsNoItems(t *testing.T) {
	items, err := slotqueue.ItemsForRequest(stowage.RequestID{1}, testAsk(0), time.Time{})
	require.NoError(t, err)
	assert.Empty(t, items)
}

func TestProfitability_IsDurationTimesReward(t *testing.T) {
	it := slotqueue.Item{Slot: stowage.Slot{Ask: stowage.StorageAsk{Duration: 100, Reward: *uint256.NewInt(1000)}}}
	assert.Equal(t, *uint256.NewInt(100_000), it.Profitability())

	var huge uint256.Int
	huge.SetAllOne()
	it = slotqueue.Item{Slot: stowage.Slot{Ask: stowage.StorageAsk{Duration: 2, Reward: huge}}}
	assert.Equal(t, huge, it.Profitability(), "saturates instead of wrapping")
}

func TestLess_ComparisonExample(t *testing.T) {
	// A request paying 1000 per second for 100 seconds with collateral 1
	// beats one paying 1 for 1 second with collateral 100000.
	a := newItem(stowage.RequestID{1}, 0, stowage.StorageAsk{Duration: 100, Reward: *uint256.NewInt(1000), Collateral: *uint256.NewInt(1)}, time.Time{})
	b := newItem(stowage.RequestID{2}, 0, stowage.StorageAsk{Duration: 1, Reward: *uint256.NewInt(1), Collateral: *uint256.NewInt(100000)}, time.Time{})
	assert.True(t, a.Less(b))
	assert.False(t, b.Less(a))
}

// TestLess_OrderingRules shows each rule deciding when the ones before it
// tie, and losing to the rule before it otherwise. In every case first is
// served before second.
func TestLess_OrderingRules(t *testing.T) {
	base := newItem(stowage.RequestID{9}, 0, stowage.StorageAsk{
		SlotSize:   100,
		Duration:   10,
		Reward:     *uint256.NewInt(10),
		Collateral: *uint256.NewInt(10),
	}, time.Unix(1000, 0))
	with := func(f func(*slotqueue.Item)) slotqueue.Item {
		it := base
		f(&it)
		return it
	}
	tests := []struct {
		name          string
		first, second slotqueue.Item
	}{
		{"unseen first",
			base, with(func(it *slotqueue.Item) { it.Seen = true })},
		{"unseen beats profitability",
			base, with(func(it *slotqueue.Item) { it.Seen = true; it.Ask.Reward.SetUint64(1000) })},
		{"higher profitability first",
			with(func(it *slotqueue.Item) { it.Ask.Reward.SetUint64(11) }), base},
		{"profitability is duration times reward",
			with(func(it *slotqueue.Item) { it.Ask.Duration, it.Ask.Reward = 101, *uint256.NewInt(1) }), base},
		{"profitability beats collateral",
			with(func(it *slotqueue.Item) { it.Ask.Reward.SetUint64(11); it.Ask.Collateral.SetUint64(1000) }), base},
		{"lower collateral first",
			with(func(it *slotqueue.Item) { it.Ask.Collateral.SetUint64(9) }), base},
		{"collateral beats expiry",
			with(func(it *slotqueue.Item) { it.Ask.Collateral.SetUint64(9); it.Expiry = at(1) }), base},
		{"later expiry first",
			with(func(it *slotqueue.Item) { it.Expiry = at(1001) }), base},
		{"no expiry is the latest expiry",
			with(func(it *slotqueue.Item) { it.Expiry = time.Time{} }), base},
		{"no expiry is later than the latest time",
			with(func(it *slotqueue.Item) { it.Expiry = time.Time{} }),
			with(func(it *slotqueue.Item) { it.Expiry = time.Unix(1<<62, 0) })},
		{"expiry compares times, not seconds",
			with(func(it *slotqueue.Item) { it.Expiry = time.Unix(1000, 1) }), base},
		{"expiry beats slot size",
			with(func(it *slotqueue.Item) { it.Expiry = at(1001); it.Ask.SlotSize = 1 << 30 }), base},
		{"smaller slot size first",
			with(func(it *slotqueue.Item) { it.Ask.SlotSize = 99 }), base},
		{"slot size decides whatever the slot",
			with(func(it *slotqueue.Item) { it.Ask.SlotSize = 99; it.RequestID = stowage.RequestID{10}; it.Index = 7 }), base},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.True(t, tt.first.Less(tt.second))
			assert.False(t, tt.second.Less(tt.first))
		})
	}
}

// Slots equal under the four rules tie: neither is Less, whatever their
// request and index.
func TestLess_TiesBeyondTheFourRules(t *testing.T) {
	a := newItem(stowage.RequestID{1}, 0, testAsk(4), at(10))
	for _, b := range []slotqueue.Item{
		newItem(stowage.RequestID{1}, 1, testAsk(4), at(10)),
		newItem(stowage.RequestID{2}, 0, testAsk(4), at(10)),
		newItem(stowage.RequestID{0}, 9, testAsk(4), at(10)),
	} {
		assert.False(t, a.Less(b))
		assert.False(t, b.Less(a))
	}
}

func TestLess_SameSlotIsNotLess(t *testing.T) {
	a := newItem(stowage.RequestID{1}, 3, testAsk(4), at(10))
	assert.False(t, a.Less(a))
}

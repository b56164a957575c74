package slotqueue_test

import (
	"math"
	"slices"
	"testing"

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

func TestNewItem_CopiesTheAsk(t *testing.T) {
	id := stowage.RequestID{1, 2, 3}
	it := slotqueue.NewItem(id, 7, testAsk(10), 12345)
	assert.Equal(t, slotqueue.Item{
		RequestID:  id,
		SlotIndex:  7,
		SlotSize:   1 << 20,
		Duration:   3600,
		Reward:     *uint256.NewInt(5),
		Collateral: *uint256.NewInt(100),
		Expiry:     12345,
	}, it)
}

func TestItemsForRequest_CreatesAllSlotIndices(t *testing.T) {
	id := stowage.RequestID{1}
	items, err := slotqueue.ItemsForRequest(id, testAsk(12), 99)
	require.NoError(t, err)
	require.Len(t, items, 12)
	var indices []uint16
	for _, it := range items {
		indices = append(indices, it.SlotIndex)
		assert.Equal(t, slotqueue.NewItem(id, it.SlotIndex, testAsk(12), 99), it)
	}
	slices.Sort(indices)
	assert.Equal(t, []uint16{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, indices)
}

func TestItemsForRequest_Shuffles(t *testing.T) {
	// 1000 slots come out in index order with probability 1/1000!.
	items, err := slotqueue.ItemsForRequest(stowage.RequestID{1}, testAsk(1000), 0)
	require.NoError(t, err)
	assert.False(t, slices.IsSortedFunc(items, func(a, b slotqueue.Item) int {
		return int(a.SlotIndex) - int(b.SlotIndex)
	}))
}

func TestItemsForRequest_65535SlotsOK_65536Refused(t *testing.T) {
	items, err := slotqueue.ItemsForRequest(stowage.RequestID{1}, testAsk(math.MaxUint16), 0)
	require.NoError(t, err)
	require.Len(t, items, math.MaxUint16)
	assert.Equal(t, uint16(math.MaxUint16-1), slices.MaxFunc(items, func(a, b slotqueue.Item) int {
		return int(a.SlotIndex) - int(b.SlotIndex)
	}).SlotIndex)

	_, err = slotqueue.ItemsForRequest(stowage.RequestID{1}, testAsk(math.MaxUint16+1), 0)
	assert.ErrorIs(t, err, slotqueue.ErrSlotsOutOfRange)
}

func TestItemsForRequest_NoSlotsNoItems(t *testing.T) {
	items, err := slotqueue.ItemsForRequest(stowage.RequestID{1}, testAsk(0), 0)
	require.NoError(t, err)
	assert.Empty(t, items)
}

func TestProfitability_IsDurationTimesReward(t *testing.T) {
	it := slotqueue.Item{Duration: 100, Reward: *uint256.NewInt(1000)}
	assert.Equal(t, *uint256.NewInt(100_000), it.Profitability())

	var huge uint256.Int
	huge.SetAllOne()
	it = slotqueue.Item{Duration: 2, Reward: huge}
	assert.Equal(t, huge, it.Profitability(), "saturates instead of wrapping")
}

func TestLess_ComparisonExample(t *testing.T) {
	// A request paying 1000 per second for 100 seconds with collateral 1
	// beats one paying 1 for 1 second with collateral 100000.
	a := slotqueue.Item{RequestID: stowage.RequestID{1}, Duration: 100, Reward: *uint256.NewInt(1000), Collateral: *uint256.NewInt(1)}
	b := slotqueue.Item{RequestID: stowage.RequestID{2}, Duration: 1, Reward: *uint256.NewInt(1), Collateral: *uint256.NewInt(100000)}
	assert.True(t, a.Less(b))
	assert.False(t, b.Less(a))
}

// TestLess_OrderingRules shows each rule deciding when the ones before it
// tie, and losing to the rule before it otherwise. In every case first is
// served before second.
func TestLess_OrderingRules(t *testing.T) {
	base := slotqueue.Item{
		RequestID:  stowage.RequestID{9},
		SlotSize:   100,
		Duration:   10,
		Reward:     *uint256.NewInt(10),
		Collateral: *uint256.NewInt(10),
		Expiry:     1000,
	}
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
			base, with(func(it *slotqueue.Item) { it.Seen = true; it.Reward.SetUint64(1000) })},
		{"higher profitability first",
			with(func(it *slotqueue.Item) { it.Reward.SetUint64(11) }), base},
		{"profitability is duration times reward",
			with(func(it *slotqueue.Item) { it.Duration, it.Reward = 101, *uint256.NewInt(1) }), base},
		{"profitability beats collateral",
			with(func(it *slotqueue.Item) { it.Reward.SetUint64(11); it.Collateral.SetUint64(1000) }), base},
		{"lower collateral first",
			with(func(it *slotqueue.Item) { it.Collateral.SetUint64(9) }), base},
		{"collateral beats expiry",
			with(func(it *slotqueue.Item) { it.Collateral.SetUint64(9); it.Expiry = 1 }), base},
		{"later expiry first",
			with(func(it *slotqueue.Item) { it.Expiry = 1001 }), base},
		{"expiry beats slot size",
			with(func(it *slotqueue.Item) { it.Expiry = 1001; it.SlotSize = 1 << 30 }), base},
		{"smaller slot size first",
			with(func(it *slotqueue.Item) { it.SlotSize = 99 }), base},
		{"slot size decides whatever the slot",
			with(func(it *slotqueue.Item) { it.SlotSize = 99; it.RequestID = stowage.RequestID{10}; it.SlotIndex = 7 }), base},
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
	a := slotqueue.NewItem(stowage.RequestID{1}, 0, testAsk(4), 10)
	for _, b := range []slotqueue.Item{
		slotqueue.NewItem(stowage.RequestID{1}, 1, testAsk(4), 10),
		slotqueue.NewItem(stowage.RequestID{2}, 0, testAsk(4), 10),
		slotqueue.NewItem(stowage.RequestID{0}, 9, testAsk(4), 10),
	} {
		assert.False(t, a.Less(b))
		assert.False(t, b.Less(a))
	}
}

func TestLess_SameSlotIsNotLess(t *testing.T) {
	a := slotqueue.NewItem(stowage.RequestID{1}, 3, testAsk(4), 10)
	assert.False(t, a.Less(a))
}

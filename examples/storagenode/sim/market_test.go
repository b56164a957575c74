package sim

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/holiman/uint256"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/examples/storagenode/market"
)

// timedEvent is a market event and the market time it happened at.
type timedEvent struct {
	At uint64
	market.Event
}

// record subscribes to m and collects its events.
func record(m *Market, clock *Clock) *[]timedEvent {
	var evs []timedEvent
	m.Subscribe(func(ev market.Event) { evs = append(evs, timedEvent{clock.Unix(), ev}) })
	return &evs
}

// stepUntil steps the clock while the next callback is due by t (0: to the
// end).
func stepUntil(clock *Clock, t uint64) {
	for {
		next, ok := clock.Next()
		if !ok || (t > 0 && next > t) {
			return
		}
		clock.Step()
	}
}

func smallSim(seed uint64, requests int) Config {
	cfg := DefaultConfig()
	cfg.Seed, cfg.Requests = seed, requests
	return cfg
}

func newTestMarket(t *testing.T, cfg Config) (*Market, *Clock) {
	t.Helper()
	clock := NewClock(cfg.Start)
	m, err := NewMarket(cfg, clock)
	require.NoError(t, err)
	return m, clock
}

func TestMarket_SameSeedSameScenario(t *testing.T) {
	run := func(seed uint64) []timedEvent {
		m, clock := newTestMarket(t, smallSim(seed, 50))
		evs := record(m, clock)
		stepUntil(clock, 0)
		assert.True(t, m.Done())
		return *evs
	}
	a, b := run(3), run(3)
	require.NotEmpty(t, a)
	assert.Equal(t, a, b)
	assert.NotEqual(t, a, run(4))
}

func TestMarket_CancelsRequestsNotFilledByTheirExpiry(t *testing.T) {
	cfg := smallSim(1, 30)
	cfg.Competition = 0 // nobody fills anything
	m, clock := newTestMarket(t, cfg)
	evs := record(m, clock)
	stepUntil(clock, 0)

	expiry := map[[32]byte]uint64{}
	cancelled := 0
	for _, ev := range *evs {
		switch ev.Kind {
		case market.EventRequested:
			expiry[ev.Slot.RequestID] = uint64(ev.Slot.Expiry.Unix())
			assert.Greater(t, uint64(ev.Slot.Expiry.Unix()), ev.At)
			assert.NotZero(t, ev.Slot.Ask.Slots)
		case market.EventRequestCancelled:
			cancelled++
			assert.Equal(t, expiry[ev.Slot.RequestID], ev.At, "cancelled at its expiry")
		default:
			t.Errorf("unexpected event %v", ev.Kind)
		}
	}
	assert.Equal(t, 30, cancelled)
	st := m.Stats()
	assert.Equal(t, 30, st.Posted)
	assert.Equal(t, 30, st.Cancelled)
}

func TestMarket_CompetitorsFillSlotsAndRequestsRunTheirCourse(t *testing.T) {
	cfg := smallSim(2, 40)
	cfg.Competition = 1 // other hosts fill every slot
	cfg.FailRate, cfg.FreeRate = 0, 0
	m, clock := newTestMarket(t, cfg)
	evs := record(m, clock)
	stepUntil(clock, 0)
	st := m.Stats()
	assert.Equal(t, 40, st.Started)
	assert.Equal(t, 40, st.Finished)
	assert.Zero(t, st.FilledByHost)
	for _, ev := range *evs {
		if ev.Kind == market.EventSlotFilled {
			assert.False(t, ev.Mine)
		}
	}
}

func TestMarket_HostFillsAndIsPaid(t *testing.T) {
	ctx := context.Background()
	cfg := smallSim(5, 1)
	cfg.Competition, cfg.FailRate, cfg.FreeRate = 0, 0, 0
	m, clock := newTestMarket(t, cfg)
	evs := record(m, clock)
	clock.Step() // the request is posted
	require.Len(t, *evs, 1)
	req := (*evs)[0]
	require.Equal(t, market.EventRequested, req.Kind)

	_, err := m.FreeSlot(ctx, req.Slot.RequestID, 0)
	assert.ErrorIs(t, err, market.ErrNotSlotHost)
	for slot := range req.Slot.Ask.Slots {
		require.NoError(t, m.FillSlot(ctx, req.Slot.RequestID, slot, []byte{1}))
	}
	assert.ErrorIs(t, m.FillSlot(ctx, req.Slot.RequestID, 0, []byte{1}), market.ErrSlotNotFree)
	last := (*evs)[len(*evs)-1]
	assert.Equal(t, market.EventRequestStarted, last.Kind, "the last fill starts the request")
	mine, err := m.MySlots(ctx)
	require.NoError(t, err)
	assert.Len(t, mine, int(req.Slot.Ask.Slots))

	_, err = m.FreeSlot(ctx, req.Slot.RequestID, 0)
	assert.ErrorIs(t, err, market.ErrRequestRunning)

	stepUntil(clock, 0)
	assert.Equal(t, market.EventRequestFinished, (*evs)[len(*evs)-1].Kind)
	assert.Equal(t, req.At+req.Slot.Ask.Duration, (*evs)[len(*evs)-1].At)
	status, err := m.SlotStatus(ctx, req.Slot.RequestID, 0)
	require.NoError(t, err)
	assert.Equal(t, market.RequestFinished, status.Request)
	assert.True(t, status.Mine)

	paid, err := m.FreeSlot(ctx, req.Slot.RequestID, 0)
	require.NoError(t, err)
	reward := req.Slot.Ask.PricePerSlot()
	var want uint256.Int
	want.Add(&reward, &req.Slot.Ask.Collateral)
	assert.Equal(t, want, paid, "reward for the whole duration plus the collateral back")
	_, err = m.FreeSlot(ctx, req.Slot.RequestID, 0)
	assert.ErrorIs(t, err, market.ErrAlreadyPaid)
	mine, err = m.MySlots(ctx)
	require.NoError(t, err)
	assert.Len(t, mine, int(req.Slot.Ask.Slots)-1)
}

func TestMarket_FillSlotRefusesClosedRequests(t *testing.T) {
	ctx := context.Background()
	cfg := smallSim(6, 1)
	cfg.Competition = 0
	m, clock := newTestMarket(t, cfg)
	evs := record(m, clock)
	stepUntil(clock, 0) // posted, then cancelled
	require.Equal(t, market.EventRequestCancelled, (*evs)[len(*evs)-1].Kind)
	assert.ErrorIs(t, m.FillSlot(ctx, (*evs)[0].Slot.RequestID, 0, []byte{1}), market.ErrRequestNotOpen)
	assert.ErrorIs(t, m.FillSlot(ctx, [32]byte{9}, 0, []byte{1}), market.ErrUnknownRequest)
}

func TestMarket_SaveAndLoadCarryOn(t *testing.T) {
	cfg := smallSim(8, 60)
	cfg.Competition = 0.6

	// One run straight through.
	m, clock := newTestMarket(t, cfg)
	whole := record(m, clock)
	stepUntil(clock, 0)

	// The same, saved half way and loaded again.
	m, clock = newTestMarket(t, cfg)
	first := record(m, clock)
	stepUntil(clock, cfg.Start+4*3600)
	path := filepath.Join(t.TempDir(), "market.json")
	require.NoError(t, m.Save(path))
	m2, clock2, err := LoadMarket(path)
	require.NoError(t, err)
	assert.Equal(t, clock.Unix(), clock2.Unix())
	second := record(m2, clock2)
	stepUntil(clock2, 0)

	assert.Equal(t, *whole, append(*first, *second...))
	assert.Equal(t, m.Config().Seed, m2.Config().Seed)
	assert.True(t, m2.Done())
}

func TestMarket_FetchDeliversAfterTheUploadTime(t *testing.T) {
	cfg := smallSim(1, 0)
	cfg.Bandwidth = 100
	cfg.NetworkErrorRate = 0
	m, clock := newTestMarket(t, cfg)
	var got [][]byte
	m.Fetch(context.Background(), [32]byte{1}, 0, 0, 250, func(b []byte, err error) {
		assert.NoError(t, err)
		got = append(got, b)
	})
	next, ok := clock.Next()
	require.True(t, ok)
	assert.Equal(t, cfg.Start+3, next, "250 bytes at 100 B/s")
	assert.Empty(t, got, "nothing before the upload time")
	clock.Step()
	require.Len(t, got, 1, "delivered by the Step that reaches the upload time")
	assert.Len(t, got[0], 250)
}

func TestMarket_FetchCancelledDeliversNothing(t *testing.T) {
	m, clock := newTestMarket(t, smallSim(1, 0))
	ctx, cancel := context.WithCancel(context.Background())
	called := false
	m.Fetch(ctx, [32]byte{1}, 0, 0, 250, func([]byte, error) { called = true })
	cancel()
	for clock.Step() {
	}
	assert.False(t, called, "done is not called once ctx has ended")
}

func TestConfig_Validate(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"no slots":             func(c *Config) { c.MaxSlots = 0 },
		"no slot sizes":        func(c *Config) { c.SlotSizes = nil },
		"zero slot size":       func(c *Config) { c.SlotSizes = []uint64{0} },
		"expiry past duration": func(c *Config) { c.MaxExpiry = c.MinDuration },
		"no bandwidth":         func(c *Config) { c.Bandwidth = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultConfig()
			mutate(&cfg)
			_, err := NewMarket(cfg, NewClock(0))
			assert.Error(t, err)
		})
	}
}

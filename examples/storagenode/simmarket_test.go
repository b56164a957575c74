package main

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/holiman/uint256"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// timedEvent is a market event and the market time it happened at.
type timedEvent struct {
	At uint64
	Event
}

// record subscribes to m and collects its events.
func record(m *SimMarket, clock *SimClock) *[]timedEvent {
	var evs []timedEvent
	m.Subscribe(func(ev Event) { evs = append(evs, timedEvent{clock.Now(), ev}) })
	return &evs
}

// stepUntil steps the clock while the next callback is due by t (0: to the
// end).
func stepUntil(clock *SimClock, t uint64) {
	for {
		next, ok := clock.Next()
		if !ok || (t > 0 && next > t) {
			return
		}
		clock.Step()
	}
}

func smallSim(seed uint64, requests int) SimConfig {
	cfg := DefaultSimConfig()
	cfg.Seed, cfg.Requests = seed, requests
	return cfg
}

func newTestMarket(t *testing.T, cfg SimConfig) (*SimMarket, *SimClock) {
	t.Helper()
	clock := NewSimClock(cfg.Start)
	m, err := NewSimMarket(cfg, clock)
	require.NoError(t, err)
	return m, clock
}

func TestSimMarket_SameSeedSameScenario(t *testing.T) {
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

func TestSimMarket_CancelsRequestsNotFilledByTheirExpiry(t *testing.T) {
	cfg := smallSim(1, 30)
	cfg.Competition = 0 // nobody fills anything
	m, clock := newTestMarket(t, cfg)
	evs := record(m, clock)
	stepUntil(clock, 0)

	expiry := map[[32]byte]uint64{}
	cancelled := 0
	for _, ev := range *evs {
		switch ev.Kind {
		case EventRequested:
			expiry[ev.Request] = ev.Expiry
			assert.Greater(t, ev.Expiry, ev.At)
			assert.NotZero(t, ev.Ask.Slots)
		case EventRequestCancelled:
			cancelled++
			assert.Equal(t, expiry[ev.Request], ev.At, "cancelled at its expiry")
		default:
			t.Errorf("unexpected event %v", ev.Kind)
		}
	}
	assert.Equal(t, 30, cancelled)
	st := m.Stats()
	assert.Equal(t, 30, st.Posted)
	assert.Equal(t, 30, st.Cancelled)
}

func TestSimMarket_CompetitorsFillSlotsAndRequestsRunTheirCourse(t *testing.T) {
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
		if ev.Kind == EventSlotFilled {
			assert.False(t, ev.Mine)
		}
	}
}

func TestSimMarket_HostFillsAndIsPaid(t *testing.T) {
	ctx := context.Background()
	cfg := smallSim(5, 1)
	cfg.Competition, cfg.FailRate, cfg.FreeRate = 0, 0, 0
	m, clock := newTestMarket(t, cfg)
	evs := record(m, clock)
	clock.Step() // the request is posted
	require.Len(t, *evs, 1)
	req := (*evs)[0]
	require.Equal(t, EventRequested, req.Kind)

	_, err := m.FreeSlot(ctx, req.Request, 0)
	assert.ErrorIs(t, err, ErrNotSlotHost)
	for slot := range req.Ask.Slots {
		require.NoError(t, m.FillSlot(ctx, req.Request, slot, []byte{1}))
	}
	assert.ErrorIs(t, m.FillSlot(ctx, req.Request, 0, []byte{1}), ErrSlotNotFree)
	last := (*evs)[len(*evs)-1]
	assert.Equal(t, EventRequestStarted, last.Kind, "the last fill starts the request")
	mine, err := m.MySlots(ctx)
	require.NoError(t, err)
	assert.Len(t, mine, int(req.Ask.Slots))

	_, err = m.FreeSlot(ctx, req.Request, 0)
	assert.ErrorIs(t, err, ErrRequestRunning)

	stepUntil(clock, 0)
	assert.Equal(t, EventRequestFinished, (*evs)[len(*evs)-1].Kind)
	assert.Equal(t, req.At+req.Ask.Duration, (*evs)[len(*evs)-1].At)
	status, err := m.SlotStatus(ctx, req.Request, 0)
	require.NoError(t, err)
	assert.Equal(t, RequestFinished, status.Request)
	assert.True(t, status.Mine)

	paid, err := m.FreeSlot(ctx, req.Request, 0)
	require.NoError(t, err)
	reward := req.Ask.PricePerSlot()
	var want uint256.Int
	want.Add(&reward, &req.Ask.Collateral)
	assert.Equal(t, want, paid, "reward for the whole duration plus the collateral back")
	_, err = m.FreeSlot(ctx, req.Request, 0)
	assert.ErrorIs(t, err, ErrAlreadyPaid)
	mine, err = m.MySlots(ctx)
	require.NoError(t, err)
	assert.Len(t, mine, int(req.Ask.Slots)-1)
}

func TestSimMarket_FillSlotRefusesClosedRequests(t *testing.T) {
	ctx := context.Background()
	cfg := smallSim(6, 1)
	cfg.Competition = 0
	m, clock := newTestMarket(t, cfg)
	evs := record(m, clock)
	stepUntil(clock, 0) // posted, then cancelled
	require.Equal(t, EventRequestCancelled, (*evs)[len(*evs)-1].Kind)
	assert.ErrorIs(t, m.FillSlot(ctx, (*evs)[0].Request, 0, []byte{1}), ErrRequestNotOpen)
	assert.ErrorIs(t, m.FillSlot(ctx, [32]byte{9}, 0, []byte{1}), ErrUnknownRequest)
}

func TestSimMarket_SaveAndLoadCarryOn(t *testing.T) {
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
	m2, clock2, err := LoadSimMarket(path)
	require.NoError(t, err)
	assert.Equal(t, clock.Now(), clock2.Now())
	second := record(m2, clock2)
	stepUntil(clock2, 0)

	assert.Equal(t, *whole, append(*first, *second...))
	assert.Equal(t, m.Config().Seed, m2.Config().Seed)
	assert.True(t, m2.Done())
}

func TestSimMarket_FetchDeliversAfterTheUploadTime(t *testing.T) {
	cfg := smallSim(1, 0)
	cfg.Bandwidth = 100
	cfg.NetworkErrorRate = 0
	m, clock := newTestMarket(t, cfg)
	var got []byte
	m.Fetch(context.Background(), [32]byte{1}, 0, 0, 250, func(b []byte, err error) {
		require.NoError(t, err)
		got = b
	})
	next, ok := clock.Next()
	require.True(t, ok)
	assert.Equal(t, cfg.Start+3, next, "250 bytes at 100 B/s")
	clock.Step()
	assert.Len(t, got, 250)
}

func TestSimConfig_Validate(t *testing.T) {
	for name, mutate := range map[string]func(*SimConfig){
		"no slots":             func(c *SimConfig) { c.MaxSlots = 0 },
		"no slot sizes":        func(c *SimConfig) { c.SlotSizes = nil },
		"zero slot size":       func(c *SimConfig) { c.SlotSizes = []uint64{0} },
		"expiry past duration": func(c *SimConfig) { c.MaxExpiry = c.MinDuration },
		"no bandwidth":         func(c *SimConfig) { c.Bandwidth = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := DefaultSimConfig()
			mutate(&cfg)
			_, err := NewSimMarket(cfg, NewSimClock(0))
			assert.Error(t, err)
		})
	}
}

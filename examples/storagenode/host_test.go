package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/holiman/uint256"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stowage/stowage"
)

func TestMain(m *testing.M) {
	// goleveldb's mpoolDrain outlives DB.Close by up to a second (it waits
	// that long for a pooled buffer); it is not the host's goroutine.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"))
}

// testSim is a busy market with KiB-sized slots, so that a few hundred
// requests run in well under a second.
func testSim(seed uint64, requests int) SimConfig {
	cfg := DefaultSimConfig()
	cfg.Seed, cfg.Requests = seed, requests
	cfg.MeanInterval = 120
	cfg.SlotSizes = []uint64{4 << 10, 8 << 10, 12 << 10, 16 << 10}
	cfg.Bandwidth = 256 // 4 KiB batches take 16 s
	cfg.FailRate, cfg.FreeRate = 0.05, 0.1
	return cfg
}

// testHostConfig is small enough that availabilities run out at times.
func testHostConfig(t *testing.T) HostConfig {
	cfg := HostConfig{
		Dir:            t.TempDir(),
		Capacity:       6 << 20,
		Availabilities: 2,
		MaxDuration:    12 * 3600,
		Workers:        3,
		QueueSize:      64,
		Batch:          4 << 10,
		MarketTimeout:  10 * time.Second,
	}
	cfg.MinPrice.SetUint64(50_000)
	cfg.MaxCollateral.SetUint64(900)
	return cfg
}

// saleChecker checks every sale as it is filled and as it ends, and keeps
// score. Its hooks run on the sales' goroutines.
type saleChecker struct {
	t *testing.T

	mu     sync.Mutex
	filled map[SlotRef]bool
	ended  map[Outcome]int
	calls  int
}

// sample reports whether this hook call should also verify the store's
// invariant: one call in four, which keeps the test quick under -race and
// still checks it hundreds of times while other sales are busy.
func (c *saleChecker) sample() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return c.calls%4 == 0
}

func newSaleChecker(t *testing.T) *saleChecker {
	return &saleChecker{t: t, filled: make(map[SlotRef]bool), ended: make(map[Outcome]int)}
}

func (c *saleChecker) hook(cfg *HostConfig) {
	cfg.OnFilled = c.onFilled
	cfg.OnEnded = c.onEnded
}

// onFilled: every filled slot has a reservation, and all its bytes stored.
func (c *saleChecker) onFilled(h *Host, s SaleInfo) {
	ctx := context.Background()
	if assert.True(c.t, s.HasReservation, "%s filled without a reservation", s.Slot) {
		_, err := h.Store().Reservation(ctx, s.Reservation.ID, s.Reservation.AvailabilityID)
		assert.NoError(c.t, err, "%s filled: its reservation", s.Slot)
		assert.Zero(c.t, s.Reservation.Size, "%s filled: every reserved byte was released to a block", s.Slot)
	}
	stored, err := h.walkBlocks(ctx, s.Slot, nil)
	assert.NoError(c.t, err)
	assert.Equal(c.t, s.Ask.SlotSize, stored, "%s filled: bytes stored", s.Slot)
	assert.Equal(c.t, s.Ask.SlotSize, s.Written, "%s filled: bytes written", s.Slot)
	if c.sample() {
		assert.NoError(c.t, h.Verify(ctx), "while %s is filled", s.Slot)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.False(c.t, c.filled[s.Slot], "%s filled twice", s.Slot)
	c.filled[s.Slot] = true
}

// onEnded: a sale that ended left no reservation and no block behind.
func (c *saleChecker) onEnded(h *Host, s SaleInfo) {
	ctx := context.Background()
	assert.False(c.t, s.HasReservation, "%s ended %s holding its reservation", s.Slot, s.Outcome)
	if s.Reservation.ID != ([16]byte{}) {
		ok, err := h.Store().HasReservation(ctx, s.Reservation.ID, s.Reservation.AvailabilityID)
		assert.NoError(c.t, err)
		assert.False(c.t, ok, "%s ended %s: reservation still stored", s.Slot, s.Outcome)
	}
	stored, err := h.walkBlocks(ctx, s.Slot, nil)
	assert.NoError(c.t, err)
	assert.Zero(c.t, stored, "%s ended %s: blocks left", s.Slot, s.Outcome)
	if c.sample() {
		assert.NoError(c.t, h.Verify(ctx), "while %s ends", s.Slot)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ended[s.Outcome]++
}

// idleCheck is drive's step for tests: between steps the host is idle and
// its accounts must add up exactly. Checking every few steps keeps the test
// quick under -race; the hooks check the invariant while sales are busy.
func idleCheck(ctx context.Context, h *Host) func() error {
	steps := 0
	return func() error {
		steps++
		if steps%8 != 0 {
			return nil
		}
		return h.CheckAccounts(ctx)
	}
}

// finalChecks: nothing left once the market is done.
func finalChecks(t *testing.T, ctx context.Context, h *Host, cfg HostConfig) {
	t.Helper()
	require.NoError(t, h.CheckAccounts(ctx))
	rs, err := h.Store().Reservations(ctx)
	require.NoError(t, err)
	assert.Empty(t, rs, "reservations left")
	q := h.Quota()
	assert.Zero(t, q.Used, "blocks left")
	as, err := h.Store().Availabilities(ctx)
	require.NoError(t, err)
	var free uint64
	for _, a := range as {
		free += a.Size
	}
	assert.Equal(t, cfg.Capacity, free, "every byte back in the availabilities")
	assert.Equal(t, cfg.Capacity, q.Reserved)
	st := h.Stats()
	assert.Zero(t, st.Active)
	assert.Equal(t, st.Sales, st.Finished+st.Cancelled+st.Failed+st.Errored+st.Ignored, "every sale ended")
	assert.Zero(t, h.QueueLen())
	assert.Zero(t, h.queue.ActiveWorkers(), "no worker held")
}

func TestHost_EndToEndWithRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	sim := testSim(11, 300)
	market, clock := newTestMarket(t, sim)
	cfg := testHostConfig(t)
	checker := newSaleChecker(t)
	checker.hook(&cfg)

	// First half.
	h, err := OpenHost(ctx, cfg, market, market)
	require.NoError(t, err)
	// Stop at the first idle moment past five hours at which some sale is
	// downloading, so the restart cuts a download short.
	var downloading int
	errRestart := errors.New("restart here")
	check := idleCheck(ctx, h)
	err = drive(ctx, clock, h, 0, func() error {
		if err := check(); err != nil {
			return err
		}
		if clock.Now() < sim.Start+5*3600 {
			return nil
		}
		for _, s := range h.Sales() {
			if s.State == "downloading" {
				downloading++
			}
		}
		if downloading > 0 {
			return errRestart
		}
		return nil
	})
	require.ErrorIs(t, err, errRestart, h.debugState())
	before := h.Stats()
	require.NotZero(t, before.Active, "sales running at the restart")
	require.NoError(t, h.Close())

	// The market moves on for half an hour without the host.
	stepUntil(clock, clock.Now()+1800)

	// Second half, same directory.
	mine, err := market.MySlots(ctx)
	require.NoError(t, err)
	h, err = OpenHost(ctx, cfg, market, market)
	require.NoError(t, err)
	require.NoError(t, h.WaitIdle(ctx))
	after := h.Stats()
	assert.Equal(t, len(mine), after.Resumed, "every slot the market counts as the host's resumed")
	assert.GreaterOrEqual(t, after.Orphans, downloading, "sales cut off mid-download leave orphans, deleted")
	rs, err := h.Store().Reservations(ctx)
	require.NoError(t, err)
	live := make(map[SlotRef]bool)
	for _, s := range h.Sales() {
		live[s.Slot] = true
	}
	for _, r := range rs {
		assert.True(t, live[SlotRef{r.RequestID, r.SlotIndex}], "reservation %s: no sale of its slot runs", r.ID)
	}

	if err := drive(ctx, clock, h, 0, idleCheck(ctx, h)); err != nil {
		t.Fatal(err, h.debugState())
	}
	require.True(t, market.Done())
	finalChecks(t, ctx, h, cfg)

	// Nothing lost: every slot the host filled was paid, except where the
	// request failed or the market took the slot back.
	mine, err = market.MySlots(ctx)
	require.NoError(t, err)
	assert.Empty(t, mine, "slots held and never paid")

	ms, st := market.Stats(), h.Stats()
	require.NoError(t, h.Close())

	checker.mu.Lock()
	defer checker.mu.Unlock()
	t.Logf("market: %+v; ignored: %v", ms, st.IgnoredReasons)
	t.Logf("host before restart: filled %d, active %d, downloading %d; after: resumed %d, orphans %d; outcomes %v",
		before.Filled, before.Active, downloading, after.Resumed, after.Orphans, checker.ended)
	assert.Equal(t, ms.FilledByHost, len(checker.filled), "every fill seen by the hook")
	assert.Equal(t, ms.FilledByHost, before.Filled+st.Filled, "fills counted once across the restart")
	assert.Positive(t, checker.ended[OutcomeFinished])
	assert.Positive(t, checker.ended[OutcomeIgnored], "availabilities ran out at times")
	assert.Positive(t, after.Resumed, "the restart had work to resume")
}

// faultyMarket wraps a Market and makes some of its calls fail or hang
// until their context ends.
type faultyMarket struct {
	Market
	failRate, slowRate float64

	mu  sync.Mutex
	rng *rand.Rand
}

var errMarketDown = errors.New("market unreachable")

func (f *faultyMarket) fault(ctx context.Context) error {
	f.mu.Lock()
	r := f.rng.Float64()
	f.mu.Unlock()
	switch {
	case r < f.slowRate:
		<-ctx.Done() // a call that never answers
		return ctx.Err()
	case r < f.slowRate+f.failRate:
		return errMarketDown
	}
	return nil
}

func (f *faultyMarket) SlotStatus(ctx context.Context, id stowage.RequestID, slot uint64) (SlotStatus, error) {
	if err := f.fault(ctx); err != nil {
		return SlotStatus{}, err
	}
	return f.Market.SlotStatus(ctx, id, slot)
}

func (f *faultyMarket) FillSlot(ctx context.Context, id stowage.RequestID, slot uint64, proof []byte) error {
	if err := f.fault(ctx); err != nil {
		return err
	}
	return f.Market.FillSlot(ctx, id, slot, proof)
}

func (f *faultyMarket) FreeSlot(ctx context.Context, id stowage.RequestID, slot uint64) (uint256.Int, error) {
	if err := f.fault(ctx); err != nil {
		return uint256.Int{}, err
	}
	return f.Market.FreeSlot(ctx, id, slot)
}

func TestHost_FaultyMarketErrorsSalesWithoutHanging(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sim := testSim(12, 100)
	sim.NetworkErrorRate = 0.02
	market, clock := newTestMarket(t, sim)
	faulty := &faultyMarket{Market: market, failRate: 0.15, slowRate: 0.05, rng: rand.New(rand.NewPCG(1, 2))}
	cfg := testHostConfig(t)
	cfg.MarketTimeout = 20 * time.Millisecond
	checker := newSaleChecker(t)
	checker.hook(&cfg)

	h, err := OpenHost(ctx, cfg, faulty, market)
	require.NoError(t, err)
	if err := drive(ctx, clock, h, 0, idleCheck(ctx, h)); err != nil {
		t.Fatal("the run must not hang:", err, h.debugState())
	}
	finalChecks(t, ctx, h, cfg)
	st := h.Stats()
	require.NoError(t, h.Close())

	assert.Positive(t, st.Errored)
	assert.Positive(t, st.Finished, "healthy calls still go through")
	checker.mu.Lock()
	defer checker.mu.Unlock()
	assert.Equal(t, st.Errored, checker.ended[OutcomeErrored])
	t.Logf("outcomes %v", checker.ended)
}

func TestHost_CloseStopsEverythingMidRun(t *testing.T) {
	ctx := context.Background()
	sim := testSim(13, 40)
	market, clock := newTestMarket(t, sim)
	cfg := testHostConfig(t)
	h, err := OpenHost(ctx, cfg, market, market)
	require.NoError(t, err)
	require.NoError(t, drive(ctx, clock, h, sim.Start+3600, idleCheck(ctx, h)))
	require.Positive(t, h.Stats().Active)
	require.NoError(t, h.Close())
	require.NoError(t, h.Close(), "idempotent")
	assert.NoError(t, h.WaitIdle(ctx), "a closed host is idle")
	// goleak (TestMain) checks that no sale, worker or supervisor is left.
}

func TestOpenHost_RejectsBadConfig(t *testing.T) {
	market, _ := newTestMarket(t, testSim(1, 1))
	for name, mutate := range map[string]func(*HostConfig){
		"no dir":         func(c *HostConfig) { c.Dir = "" },
		"no capacity":    func(c *HostConfig) { c.Capacity = 0 },
		"no batch":       func(c *HostConfig) { c.Batch = 0 },
		"no timeout":     func(c *HostConfig) { c.MarketTimeout = 0 },
		"too many avail": func(c *HostConfig) { c.Capacity, c.Availabilities = 1, 2 },
		"no workers":     func(c *HostConfig) { c.Workers = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testHostConfig(t)
			mutate(&cfg)
			_, err := OpenHost(context.Background(), cfg, market, market)
			assert.Error(t, err)
		})
	}
}

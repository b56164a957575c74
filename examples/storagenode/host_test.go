package main

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stowage/stowage/examples/storagenode/sim"
	"github.com/stowage/stowage/slotqueue"
)

// TestMain checks that no test leaves a goroutine behind, except
// goleveldb's mpoolDrain, which exits on its own a second after its
// database is closed (the tests that run the program run it as main does,
// outside a bubble, and do not wait that second).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/syndtr/goleveldb/leveldb.(*DB).mpoolDrain"))
}

// testSim is a busy market with KiB-sized slots and little room, so that
// availabilities run out at times.
func testSim(seed uint64, requests int) sim.Config {
	cfg := sim.DefaultConfig()
	cfg.Seed, cfg.Requests = seed, requests
	cfg.MeanInterval = 120
	cfg.SlotSizes = []uint64{4 << 10, 8 << 10, 12 << 10, 16 << 10}
	cfg.Bandwidth = 256 // 4 KiB batches take 16 s
	cfg.FailRate, cfg.FreeRate = 0.05, 0.1
	return cfg
}

func testHostConfig(t *testing.T, clock *sim.Clock, seed uint64) Config {
	cfg := Config{Dir: t.TempDir(), Capacity: 6 << 20, Availabilities: 2, MaxDuration: 12 * 3600, Workers: 3,
		QueueSize: 64, Batch: 4 << 10, MarketTimeout: 10 * time.Second, ReclaimEvery: 10 * time.Minute, Clock: clock,
		QueueOptions: []slotqueue.Option{slotqueue.WithTieSeed(seed)}}
	cfg.MinPrice.SetUint64(50_000)
	cfg.MaxCollateral.SetUint64(900)
	return cfg
}

// step lets the host do all it can, checks the books, and moves the clock;
// false once the market is done. It waits with Host.WaitIdle, as the
// program does, and checks that the host is then really done: inside the
// bubble, synctest.Wait returns only once every goroutine is blocked, and
// nothing may have changed meanwhile.
func step(t *testing.T, h *Host, m *sim.Market, clock *sim.Clock, n *int) bool {
	require.NoError(t, h.WaitIdle(context.Background()))
	before := quiescence(h, clock)
	synctest.Wait()
	require.Equal(t, before, quiescence(h, clock), "the host still worked after WaitIdle returned")
	if *n++; *n%16 == 0 {
		require.NoError(t, h.Store().Verify(context.Background()), "at %d", clock.Unix())
	}
	if m.Done() {
		return false
	}
	require.True(t, clock.Step())
	return true
}

// quiescence is what must not change once the host is idle.
func quiescence(h *Host, clock *sim.Clock) string {
	return fmt.Sprintf("%+v %+v %v %d %v", h.Stats(), h.Queue().Stats(), h.SaleStates(), clock.Pending(), h.Quota())
}

func TestHost_EndToEndWithRestart(t *testing.T) {
	for _, away := range []uint64{0, 1800} {
		t.Run(fmt.Sprintf("away %ds", away), func(t *testing.T) { testEndToEndWithRestart(t, away) })
	}
}

// testEndToEndWithRestart runs a host, closes it while it downloads, lets
// the market go on for away seconds, and resumes it.
func testEndToEndWithRestart(t *testing.T, away uint64) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		cfg := testSim(11, 300)
		clock := sim.NewClock(cfg.Start)
		m, err := sim.NewMarket(cfg, clock)
		require.NoError(t, err)
		hc := testHostConfig(t, clock, cfg.Seed)
		h, err := OpenHost(ctx, hc, m, m)
		require.NoError(t, err)

		// Run until, past five hours, some sale is downloading; restart there.
		steps := 0
		for step(t, h, m, clock, &steps) {
			if clock.Unix() > cfg.Start+5*3600 && h.SaleStates()["downloading"] > 0 {
				break
			}
		}
		require.NoError(t, h.WaitIdle(ctx))
		before := h.Stats()
		require.Positive(t, h.SaleStates()["downloading"], "a download is cut short")
		left, err := h.Store().Reservations(ctx)
		require.NoError(t, err)
		require.NoError(t, h.Close())
		for end := clock.Unix() + away; clock.Unix() < end && clock.Step(); {
			// the market moves on for half an hour without the host
		}

		h, err = OpenHost(ctx, hc, m, m)
		require.NoError(t, err)
		require.NoError(t, h.WaitIdle(ctx))
		after := h.Stats()
		assert.Positive(t, after.Resumed+after.Requeued+after.Orphans, "the restart found reservations to resume, requeue or delete")
		assert.Equal(t, len(left), after.Resumed+after.Requeued+after.Orphans, "every reservation left is resumed, requeued or deleted")
		if away == 0 {
			assert.Positive(t, after.Requeued, "downloads cut short go back to the queue")
		}
		for step(t, h, m, clock, &steps) {
		}
		require.NoError(t, h.WaitIdle(ctx))

		require.NoError(t, h.Store().Verify(ctx))
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
			assert.Equal(t, a.TotalSize, a.Size, "the offer is whole again")
		}
		assert.Equal(t, hc.Capacity, free)
		assert.Empty(t, h.SaleStates(), "every sale ended")
		mine, err := m.MySlots(ctx)
		require.NoError(t, err)
		assert.Empty(t, mine, "slots held and never paid")
		st, ms := h.Stats(), m.Stats()
		assert.Equal(t, ms.FilledByHost, before.Filled+st.Filled, "fills counted once across the restart")
		assert.Positive(t, st.Ended["finished"])
		assert.Positive(t, ignoredTotal(before)+ignoredTotal(st))
		qs := h.Queue().Stats()
		assert.Zero(t, qs.Waiting+qs.Busy)
		require.NoError(t, h.Close())
		require.NoError(t, h.Close(), "idempotent")
		time.Sleep(2 * time.Second) // fake time: goleveldb's mpoolDrain exits a second after Close
		t.Logf("before restart %+v\nafter %+v\nmarket %+v", before, st, ms)
	})
}

func TestOpenHost_RejectsBadConfig(t *testing.T) {
	for name, mutate := range map[string]func(*Config){
		"no capacity":    func(c *Config) { c.Capacity = 0 },
		"no batch":       func(c *Config) { c.Batch = 0 },
		"no timeout":     func(c *Config) { c.MarketTimeout = 0 },
		"no reclaim":     func(c *Config) { c.ReclaimEvery = 0 },
		"too many avail": func(c *Config) { c.Capacity, c.Availabilities = 1, 2 },
		"no workers":     func(c *Config) { c.Workers = 0 },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := testSim(1, 1)
			clock := sim.NewClock(cfg.Start)
			m, err := sim.NewMarket(cfg, clock)
			require.NoError(t, err)
			hc := testHostConfig(t, clock, 1)
			mutate(&hc)
			_, err = OpenHost(context.Background(), hc, m, m)
			assert.Error(t, err)
		})
	}
}

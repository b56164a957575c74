package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/examples/storagenode/market"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
	"github.com/stowage/stowage/slotqueue"
	"github.com/stowage/stowage/statemachine"
)

// Clock is the host's time: the system clock for a real host, the
// simulated one in a simulation.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Config is what the operator decides.
type Config struct {
	Dir  string // where the repo lives (embedded LevelDB)
	Sync bool   // fsync every write; off is fine for a simulation

	// Capacity is the repo quota, offered in Availabilities equal
	// availabilities when the repo has none yet.
	Capacity       uint64
	Availabilities int
	MaxDuration    uint64      // longest request to serve, seconds
	MinPrice       uint256.Int // least a slot must pay over its duration
	MaxCollateral  uint256.Int // most collateral to lock for one slot

	Workers       int           // slots downloaded at once (slot queue workers)
	QueueSize     int           // slots waiting at most
	Batch         uint64        // bytes per download batch and per stored block
	MarketTimeout time.Duration // bounds every market call
	ReclaimEvery  time.Duration // how often expired reservations are reclaimed

	Clock        Clock        // nil: the system clock
	Logger       *slog.Logger // nil: discard
	QueueOptions []slotqueue.Option
}

// Stats counts what the host did since it was opened.
type Stats struct {
	Requests  int            // requests the market announced
	Resumed   int            // sales resumed at open
	Orphans   int            // reservations deleted at open: their slot was no longer the host's
	Reclaimed int            // reservations deleted by ReclaimExpired
	Filled    int            // sales that filled their slot
	Ended     map[string]int // ended sales by final state
	Ignored   map[string]int // slots not served, by reason
	ErroredIn map[string]int // errored sales by the state they failed in

	Downloaded uint64      // bytes stored
	Collected  uint256.Int // paid out by the market
}

// Host is a storage host: it watches the market, queues the slots worth
// serving, and drives each sale through its states, with the reservations
// store accounting for every byte.
type Host struct {
	cfg     Config
	log     *slog.Logger
	clock   Clock
	market  market.Market
	network market.Network
	repo    *repo.Repo
	store   *reservations.Store
	queue   *slotqueue.Queue

	mu       sync.Mutex
	sales    map[market.SlotRef]*sale
	backlog  []market.Event // events that came while opening
	starting bool
	closed   bool
	stats    Stats

	unsubscribe func()
	stop        context.CancelFunc // ends the maintenance loop
	wg          sync.WaitGroup     // the maintenance loop and one per sale
}

// OpenHost opens (or creates) the repo in cfg.Dir, creates the
// availabilities if there are none, resumes the sales of a previous run and
// starts serving the market's requests.
func OpenHost(ctx context.Context, cfg Config, m market.Market, n market.Network) (*Host, error) {
	if cfg.Capacity == 0 || cfg.Availabilities < 1 || cfg.Capacity < uint64(cfg.Availabilities) || cfg.Batch == 0 ||
		cfg.MarketTimeout <= 0 || cfg.ReclaimEvery <= 0 {
		return nil, fmt.Errorf("open host: bad config: capacity %d in %d availabilities, batch %d, market timeout %v, reclaim every %v",
			cfg.Capacity, cfg.Availabilities, cfg.Batch, cfg.MarketTimeout, cfg.ReclaimEvery)
	}
	h := &Host{cfg: cfg, log: cfg.Logger, clock: cfg.Clock, market: m, network: n, sales: make(map[market.SlotRef]*sale), starting: true}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.clock == nil {
		h.clock = systemClock{}
	}
	h.stats.Ended, h.stats.Ignored, h.stats.ErroredIn = map[string]int{}, map[string]int{}, map[string]int{}
	q, err := slotqueue.New(h.process, append([]slotqueue.Option{
		slotqueue.WithMaxWorkers(cfg.Workers), slotqueue.WithMaxSize(cfg.QueueSize),
		slotqueue.WithLogger(h.log), slotqueue.WithClock(h.clock.Now),
	}, cfg.QueueOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("open host: %w", err)
	}
	h.queue = q
	opts := []repo.Option{repo.WithQuotaMaxBytes(cfg.Capacity), repo.WithLogger(h.log)}
	if !cfg.Sync {
		opts = append(opts, repo.WithNoSync())
	}
	if h.repo, err = repo.Open(ctx, cfg.Dir, opts...); err != nil {
		return nil, fmt.Errorf("open host: %w", err)
	}
	// Whenever an availability is added, slots set aside for want of space
	// get another try.
	h.store = reservations.New(h.repo, reservations.WithLogger(h.log),
		reservations.WithOnAvailabilityAdded(func(context.Context, reservations.Availability) { h.queue.Resume() }))
	if err := h.start(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open host: %w", err), h.Close())
	}
	return h, nil
}

// start creates the availabilities or resumes the reservations of a
// previous run, then serves the market.
func (h *Host) start(ctx context.Context) error {
	h.unsubscribe = h.market.Subscribe(h.onEvent) // events wait in backlog until the end
	h.queue.Pause()
	h.queue.Start()
	as, err := h.store.Availabilities(ctx)
	if err != nil {
		return err
	}
	for i := 0; len(as) == 0 && i < h.cfg.Availabilities; i++ {
		a := reservations.Availability{TotalSize: h.cfg.Capacity / uint64(h.cfg.Availabilities),
			Duration: h.cfg.MaxDuration, MinPrice: h.cfg.MinPrice, MaxCollateral: h.cfg.MaxCollateral}
		if _, err := h.store.AddAvailability(ctx, a); err != nil {
			return err
		}
	}
	rs, err := h.store.Reservations(ctx)
	if err != nil {
		return err
	}
	for _, res := range rs {
		if err := h.resume(ctx, res); err != nil {
			return fmt.Errorf("resume %s/%d: %w", res.RequestID, res.SlotIndex, err)
		}
	}
	mctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	h.stop = stop
	h.wg.Go(func() { h.maintain(mctx) })
	h.mu.Lock()
	h.starting = false
	for _, ev := range h.backlog {
		h.handleLocked(ev)
	}
	h.backlog = nil
	h.mu.Unlock()
	h.queue.Resume()
	return nil
}

// resume picks up a reservation left by a previous run: a slot the host
// holds resumes its sale where the market says it stands, a slot still open
// goes back to the queue (its download goes on from the bytes stored), and
// any other reservation is deleted, which gives its bytes back.
func (h *Host) resume(ctx context.Context, res reservations.Reservation) error {
	ref := market.SlotRef{Request: res.RequestID, Slot: res.SlotIndex}
	mctx, cancel := context.WithTimeout(ctx, h.cfg.MarketTimeout)
	st, err := h.market.SlotStatus(mctx, ref.Request, ref.Slot)
	cancel()
	if err != nil && !errors.Is(err, market.ErrUnknownRequest) {
		return err
	}
	if next := resumeState(st, err); next != nil {
		s := h.newSale(ref, st.Ask, res)
		s.mine = true
		h.mu.Lock()
		h.stats.Resumed++
		h.startLocked(s, next)
		h.mu.Unlock()
		return nil
	}
	if err == nil && st.Request == market.RequestNew && st.Free {
		return h.queue.Push(slotqueue.Item{Slot: stowage.Slot{RequestID: ref.Request, Index: ref.Slot, Ask: st.Ask, Expiry: unixTime(st.Expiry)}})
	}
	h.mu.Lock()
	h.stats.Orphans++
	h.mu.Unlock()
	return h.store.DeleteReservation(ctx, res.ID)
}

// maintain is the host's periodic work: reservations whose contract is over
// are deleted even if their sale never got to clean up.
func (h *Host) maintain(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.clock.After(h.cfg.ReclaimEvery):
		}
		n, err := h.store.ReclaimExpired(ctx, h.clock.Now())
		if err != nil && ctx.Err() == nil {
			h.log.Warn("reclaim expired reservations", "reclaimed", n, "err", err)
		}
		if n > 0 {
			h.mu.Lock()
			h.stats.Reclaimed += n
			h.mu.Unlock()
			h.queue.Resume()
		}
	}
}

// process is the slot queue's ProcessFunc: it reserves the slot's bytes,
// starts a sale and keeps the worker until the sale has filled its slot or
// ended, so the workers bound how many slots download at once.
func (h *Host) process(ctx context.Context, it slotqueue.Item) error {
	ref := market.SlotRef{Request: it.RequestID, Slot: it.Index}
	ask := it.Ask
	res, err := h.store.ReserveSlot(ctx, it.Slot)
	var none *reservations.NoAvailabilityError
	switch {
	case errors.As(err, &none) && (none.Term == reservations.TermSize || none.Term == reservations.TermBudget):
		return fmt.Errorf("%w: %w", slotqueue.ErrRequeue, err) // may fit once a sale gives its bytes back
	case errors.As(err, &none):
		h.mu.Lock()
		h.stats.Ignored["no availability: "+string(none.Term)]++
		h.mu.Unlock()
		return nil
	case errors.Is(err, reservations.ErrSlotReserved):
		// Reserved by the previous run, which stopped mid-download.
		var ok bool
		if res, ok, err = h.store.ReservationForSlot(ctx, ref.Request, ref.Slot); err == nil && !ok {
			err = fmt.Errorf("reservation of %s vanished", ref)
		}
	}
	if err != nil {
		return err
	}
	s := h.newSale(ref, ask, res)
	h.mu.Lock()
	if h.closed || h.sales[ref] != nil {
		h.mu.Unlock()
		return nil
	}
	h.startLocked(s, &downloading{})
	h.mu.Unlock()
	select {
	case <-s.filled:
	case <-s.m.Done():
	case <-ctx.Done():
	}
	return nil
}

// newSale makes the machine of a sale, not started.
func (h *Host) newSale(ref market.SlotRef, ask stowage.StorageAsk, res reservations.Reservation) *sale {
	s := &sale{h: h, ref: ref, ask: ask, res: res, filled: make(chan struct{})}
	s.m = statemachine.New(s, statemachine.WithLogger(h.log.With("slot", ref)))
	return s
}

// startLocked starts a sale and the goroutine that cleans up once its
// machine has ended.
func (h *Host) startLocked(s *sale, first saleState) {
	h.sales[s.ref] = s
	s.m.Start(first)
	h.wg.Go(func() {
		<-s.m.Done()
		h.ended(s)
	})
}

// ended cleans up after a sale whose machine has ended. A sale that reached
// a final state (or failed on an error no state handled) gives its bytes
// back; one stopped by Close keeps its reservation for the next start.
func (h *Host) ended(s *sale) {
	last, err := s.m.Last(), s.m.Err()
	_, final := last.(statemachine.Final)
	if final || err != nil {
		if err := h.store.DeleteReservation(context.Background(), s.res.ID); err != nil {
			h.log.Error("sale cleanup failed; ReclaimExpired or the next start retries", "slot", s.ref, "err", err)
		}
		h.queue.Resume() // its bytes are free again
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.sales, s.ref)
	h.stats.Downloaded += s.downloaded
	h.stats.Collected.Add(&h.stats.Collected, &s.collected)
	switch st := last.(type) {
	case *errored:
		h.stats.ErroredIn[st.in]++
	case *ignored:
		h.stats.Ignored[st.reason]++
	}
	switch {
	case err != nil:
		h.stats.Ended["errored"]++
		h.stats.ErroredIn["unhandled"]++
	case final:
		h.stats.Ended[fmt.Sprint(last)]++
	}
}

// onEvent receives the market's events; it never blocks.
func (h *Host) onEvent(ev market.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
	case h.starting:
		h.backlog = append(h.backlog, ev)
	default:
		h.handleLocked(ev)
	}
}

// handleLocked routes a market event to the queue and to the sales it
// concerns.
func (h *Host) handleLocked(ev market.Event) {
	ref := market.SlotRef{Request: ev.Request, Slot: ev.Slot}
	switch ev.Kind {
	case market.EventRequested:
		h.stats.Requests++
		items, err := slotqueue.ItemsForRequest(ev.Request, ev.Ask, unixTime(ev.Expiry))
		if err == nil {
			err = h.queue.Push(items...)
		}
		if err != nil {
			h.log.Warn("request not queued", "request", ev.Request, "err", err)
		}
	case market.EventSlotFilled:
		if !ev.Mine {
			h.queue.Delete(ev.Request, ev.Slot)
			h.scheduleLocked(ref, onFilledByOther)
		}
	case market.EventRequestStarted:
		h.queue.DeleteRequest(ev.Request)
	case market.EventRequestCancelled:
		h.queue.DeleteRequest(ev.Request)
		h.scheduleRequestLocked(ev.Request, onCancelled)
	case market.EventRequestFailed:
		h.queue.DeleteRequest(ev.Request)
		h.scheduleRequestLocked(ev.Request, onFailed)
	case market.EventRequestFinished:
		h.scheduleRequestLocked(ev.Request, onFinished)
	case market.EventSlotFreed:
		if ev.Mine {
			h.scheduleLocked(ref, onSlotLost)
		} else {
			// Open again: queue it with the terms the event carries.
			it := slotqueue.Item{Slot: stowage.Slot{RequestID: ev.Request, Index: ev.Slot, Ask: ev.Ask, Expiry: unixTime(ev.Expiry)}}
			if err := h.queue.Push(it); err != nil {
				h.log.Debug("freed slot not queued", "slot", ref, "err", err)
			}
		}
	}
}

func (h *Host) scheduleLocked(ref market.SlotRef, ev saleEvent) {
	if s := h.sales[ref]; s != nil {
		s.m.Schedule(ev)
	}
}

func (h *Host) scheduleRequestLocked(id stowage.RequestID, ev saleEvent) {
	for ref, s := range h.sales {
		if ref.Request == id {
			s.m.Schedule(ev)
		}
	}
}

// Close stops the host: no more market events, the queue's workers and
// every sale stopped, the repo closed. Sales that were running resume at the
// next OpenHost on the same directory.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.mu.Unlock()
	if h.unsubscribe != nil {
		h.unsubscribe()
	}
	if h.stop != nil {
		h.stop()
	}
	h.queue.Stop()
	h.mu.Lock()
	for _, s := range h.sales {
		s.m.Stop() // does not wait; h.wg does
	}
	h.mu.Unlock()
	h.wg.Wait()
	if h.repo == nil {
		return nil
	}
	return h.repo.Close()
}

// Stats returns what the host did since it was opened.
func (h *Host) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.stats
	st.Ended, st.Ignored, st.ErroredIn = maps.Clone(st.Ended), maps.Clone(st.Ignored), maps.Clone(st.ErroredIn)
	return st
}

// SaleStates counts the running sales by state.
func (h *Host) SaleStates() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int)
	for _, s := range h.sales {
		if st := s.m.State(); st != nil {
			out[fmt.Sprint(st)]++
		}
	}
	return out
}

// Queue returns the host's slot queue, for its Stats.
func (h *Host) Queue() *slotqueue.Queue { return h.queue }

// Store returns the host's availabilities and reservations.
func (h *Host) Store() *reservations.Store { return h.store }

// Quota returns the repo's byte accounting.
func (h *Host) Quota() repo.Quota { return h.repo.Quota() }

// unixTime is the time of a market Expiry in Unix seconds; zero for none.
func unixTime(sec uint64) time.Time {
	if sec == 0 {
		return time.Time{}
	}
	return time.Unix(int64(sec), 0)
}

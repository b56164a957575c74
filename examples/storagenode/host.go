package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
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
	// AfterFunc calls f once d has passed, like time.AfterFunc; stop
	// cancels the call and reports whether it did so before f started.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Config is what the operator decides.
type Config struct {
	Dir  string // where the repo lives (embedded LevelDB)
	Sync bool   // fsync every write; off is fine for a simulation

	// Capacity is the repo quota, offered in Availabilities equal
	// availabilities when the repo has none yet.
	Capacity       uint64 // bytes
	Availabilities int
	MaxDuration    uint64      // longest request to serve, seconds
	MinPrice       uint256.Int // least a slot must pay over its duration
	MaxCollateral  uint256.Int // most collateral to lock for one slot

	Workers       int           // slots downloaded at once
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
	Resumed   int            // sales resumed at open where the market says they stand
	Requeued  int            // reservations found at open whose slot went back to the queue: the download goes on from the bytes stored
	Orphans   int            // reservations deleted at open: their slot was no longer the host's
	Reclaimed int            // reservations deleted by ReclaimExpired
	Filled    int            // sales that filled their slot
	Ended     map[string]int // ended sales by final state
	Ignored   map[string]int // slots not served, by reason
	ErroredIn map[string]int // errored sales by the state they failed in
	Failures  int            // errors the host could not hand to a sale (a failed cleanup, a failed process call), each logged

	Downloaded uint64      // bytes stored
	Collected  uint256.Int // paid out by the market
}

// slotKey names a slot: its request and index.
type slotKey struct {
	request stowage.RequestID
	index   uint64
}

func keyOf(s stowage.Slot) slotKey { return slotKey{s.RequestID, s.Index} }

// Host is a storage host: it watches the market, queues the slots worth
// serving, and drives each sale through its states, with the reservations
// store accounting for every byte.
//
// The queue has one worker, which reserves a slot and starts its sale; the
// sale downloads on its own, and the queue is paused while Workers sales
// download, so that no more slots are reserved than can be downloaded.
// No goroutine of the host waits for the network: each batch is stored on
// the network's callback, and an event moves the sale on once its slot is
// complete. So WaitIdle can tell when the host has nothing left to do but
// wait for the outside world, which is when a simulation moves its clock.
type Host struct {
	cfg     Config
	log     *slog.Logger
	clock   Clock
	market  market.Market
	network market.Network
	repo    *repo.Repo
	store   *reservations.Store
	queue   *slotqueue.Queue

	// activity counts the calls that give the queue or a sale work (push,
	// resume, start, schedule); WaitIdle compares it before and after.
	activity atomic.Uint64

	mu          sync.Mutex
	sales       map[slotKey]*sale
	touched     map[*sale]struct{}  // sales given work since WaitIdle last looked
	downloading int                 // sales downloading, at most cfg.Workers
	backlog     []market.Event      // events that came while opening
	starting    bool                // events wait in backlog
	closed      bool                // no more work
	stats       Stats               // see Stats
	stopReclaim func() bool         // cancels the next reclaim
	wg          sync.WaitGroup      // a reclaim under way and one per sale
	unsubscribe func()              // from the market's events
	onMachine   statemachine.Option // the OnError every sale shares
}

// OpenHost opens (or creates) the repo in cfg.Dir, creates the
// availabilities if there are none, resumes the sales of a previous run and
// starts serving the market's requests.
func OpenHost(ctx context.Context, cfg Config, m market.Market, n market.Network) (*Host, error) {
	if cfg.Capacity == 0 || cfg.Availabilities < 1 || cfg.Capacity < uint64(cfg.Availabilities) || cfg.Batch == 0 ||
		cfg.Workers < 1 || cfg.MarketTimeout <= 0 || cfg.ReclaimEvery <= 0 {
		return nil, fmt.Errorf("open host: bad config: capacity %d in %d availabilities, %d workers, batch %d, market timeout %v, reclaim every %v",
			cfg.Capacity, cfg.Availabilities, cfg.Workers, cfg.Batch, cfg.MarketTimeout, cfg.ReclaimEvery)
	}
	h := &Host{cfg: cfg, log: cfg.Logger, clock: cfg.Clock, market: m, network: n,
		sales: make(map[slotKey]*sale), touched: make(map[*sale]struct{}), starting: true}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.clock == nil {
		h.clock = systemClock{}
	}
	h.stats.Ended, h.stats.Ignored, h.stats.ErroredIn = map[string]int{}, map[string]int{}, map[string]int{}
	// Written once for every state of every sale: a state that fails
	// ends its sale in errored, which gives the bytes back.
	h.onMachine = statemachine.WithOnError(func(_ *saleMachine, st saleState, err error) saleState {
		return &errored{err: err, in: fmt.Sprint(st)}
	})
	q, err := slotqueue.New(h.process, append([]slotqueue.Option{
		slotqueue.WithMaxSize(cfg.QueueSize), slotqueue.WithLogger(h.log), slotqueue.WithClock(h.clock.Now),
		slotqueue.WithOnError(h.failed),
	}, append(cfg.QueueOptions, slotqueue.WithMaxWorkers(1))...)...)
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
		reservations.WithOnAvailabilityAdded(func(context.Context, reservations.Availability) { h.wakeQueue() }))
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
	h.mu.Lock()
	h.starting = false
	for _, ev := range h.backlog {
		h.handleLocked(ev)
	}
	h.backlog = nil
	h.stopReclaim = h.clock.AfterFunc(h.cfg.ReclaimEvery, h.reclaim)
	h.mu.Unlock()
	h.wakeQueue()
	return nil
}

// resume picks up a reservation left by a previous run, and counts it in
// exactly one of Resumed, Requeued and Orphans: a slot the host holds
// resumes its sale where the market says it stands, a slot still open goes
// back to the queue (its download goes on from the bytes stored), and any
// other reservation is deleted, which gives its bytes back.
func (h *Host) resume(ctx context.Context, res reservations.Reservation) error {
	mctx, cancel := context.WithTimeout(ctx, h.cfg.MarketTimeout)
	st, err := h.market.SlotStatus(mctx, res.RequestID, res.SlotIndex)
	cancel()
	if err != nil && !errors.Is(err, market.ErrUnknownRequest) {
		return err
	}
	if next := resumeState(st, err); next != nil {
		h.mu.Lock()
		defer h.mu.Unlock()
		s := h.newSale(st.Slot, res)
		s.mine = true
		h.stats.Resumed++
		h.startLocked(s, next)
		return nil
	}
	if err == nil && st.Request == market.RequestNew && st.Free {
		// ReserveSlot will answer ErrSlotReserved, and process carries on
		// with this reservation.
		if perr := h.push(slotqueue.Item{Slot: st.Slot}); perr == nil {
			h.mu.Lock()
			h.stats.Requeued++
			h.mu.Unlock()
			return nil
		}
	}
	h.mu.Lock()
	h.stats.Orphans++
	h.mu.Unlock()
	return h.store.DeleteReservation(ctx, res.ID)
}

// reclaim deletes the reservations whose contract is over, even if their
// sale never got to clean up, and arms the next reclaim.
func (h *Host) reclaim() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.wg.Add(1)
	h.mu.Unlock()
	defer h.wg.Done()
	n, err := h.store.ReclaimExpired(context.Background(), h.clock.Now())
	if err != nil {
		h.log.Warn("reclaim expired reservations", "reclaimed", n, "err", err)
	}
	h.mu.Lock()
	h.stats.Reclaimed += n
	if !h.closed {
		h.stopReclaim = h.clock.AfterFunc(h.cfg.ReclaimEvery, h.reclaim)
	}
	h.mu.Unlock()
	if n > 0 {
		h.wakeQueue()
	}
}

// process is the slot queue's ProcessFunc: it reserves the slot's bytes and
// starts a sale that downloads it. While Workers sales download, the queue
// is paused, so no slot is reserved before it can be downloaded.
func (h *Host) process(ctx context.Context, it slotqueue.Item) error {
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
		if res, ok, err = h.store.ReservationForSlot(ctx, it.RequestID, it.Index); err == nil && !ok {
			err = fmt.Errorf("reservation of %s/%d vanished", it.RequestID, it.Index)
		}
	}
	if err != nil {
		return err // to h.failed
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.sales[keyOf(it.Slot)] != nil {
		return nil
	}
	s := h.newSale(it.Slot, res)
	s.downloading = true
	if h.downloading++; h.downloading >= h.cfg.Workers {
		h.queue.Pause()
	}
	h.startLocked(s, &downloading{})
	return nil
}

// failed is the queue's OnError: a process call failed, and no sale took
// the error.
func (h *Host) failed(it slotqueue.Item, err error) {
	h.log.Error("slot not served", "slot", slotName(it.Slot), "err", err)
	h.mu.Lock()
	h.stats.Failures++
	h.mu.Unlock()
}

// doneDownloading is called when a sale leaves its download, filled or
// not: another slot may be reserved.
func (h *Host) doneDownloading(s *sale) {
	h.mu.Lock()
	if !s.downloading {
		h.mu.Unlock()
		return
	}
	s.downloading = false
	h.downloading--
	h.mu.Unlock()
	h.wakeQueue()
}

// wakeQueue lets the queue take slots again, and gives slots set aside for
// want of space another try, unless Workers sales are downloading (the
// queue is woken again when one is done).
func (h *Host) wakeQueue() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.downloading < h.cfg.Workers && !h.closed {
		h.activity.Add(1)
		h.queue.Resume()
	}
}

// push queues items.
func (h *Host) push(items ...slotqueue.Item) error {
	h.activity.Add(1)
	return h.queue.Push(items...)
}

// newSale makes the machine of a sale, not started.
func (h *Host) newSale(slot stowage.Slot, res reservations.Reservation) *sale {
	s := &sale{h: h, slot: slot, res: res}
	s.m = statemachine.New(s, h.onMachine, statemachine.WithLogger(h.log.With("slot", slotName(slot))))
	return s
}

// startLocked starts a sale and the goroutine that accounts for it once its
// machine has ended.
func (h *Host) startLocked(s *sale, first saleState) {
	h.sales[keyOf(s.slot)] = s
	h.touchLocked(s)
	s.m.Start(first)
	h.wg.Go(func() {
		<-s.m.Done()
		h.ended(s)
	})
}

// ended accounts for a sale whose machine has ended. A sale that reached a
// Final state has given its bytes back and been counted already (see
// sale.end); one stopped by Close keeps its reservation for the next start;
// one whose cleanup failed leaves its reservation to ReclaimExpired or the
// next start.
func (h *Host) ended(s *sale) {
	if err := s.m.Err(); err != nil {
		h.log.Error("sale ended with an error", "slot", slotName(s.slot), "err", err)
		h.mu.Lock()
		h.stats.Failures++
		h.mu.Unlock()
	}
	h.doneDownloading(s)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recordLocked(s, nil)
	if h.sales[keyOf(s.slot)] == s {
		delete(h.sales, keyOf(s.slot))
	}
}

// recordLocked adds a sale to the stats, once: how it ended (final: the
// Final state it ended in, nil if stopped), and what it downloaded and
// collected.
func (h *Host) recordLocked(s *sale, final saleState) {
	if s.recorded {
		return
	}
	s.recorded = true
	if final != nil {
		h.stats.Ended[fmt.Sprint(final)]++
		switch st := final.(type) {
		case *errored:
			h.stats.ErroredIn[st.in]++
		case *ignored:
			h.stats.Ignored[st.reason]++
		}
	}
	s.mu.Lock()
	h.stats.Downloaded += s.downloaded
	s.mu.Unlock()
	h.stats.Collected.Add(&h.stats.Collected, &s.collected)
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
// concerns. The slots go to the queue as the market describes them.
func (h *Host) handleLocked(ev market.Event) {
	id := ev.Slot.RequestID
	switch ev.Kind {
	case market.EventRequested:
		h.stats.Requests++
		items, err := slotqueue.ItemsForRequest(id, ev.Slot.Ask, ev.Slot.Expiry)
		if err == nil {
			err = h.push(items...)
		}
		if err != nil {
			h.log.Warn("request not queued", "request", id, "err", err)
		}
	case market.EventSlotFilled:
		if !ev.Mine {
			h.queue.Delete(id, ev.Slot.Index)
			h.scheduleLocked(ev.Slot, onFilledByOther)
		}
	case market.EventRequestStarted:
		h.queue.DeleteRequest(id)
	case market.EventRequestCancelled:
		h.queue.DeleteRequest(id)
		h.scheduleRequestLocked(id, onCancelled)
	case market.EventRequestFailed:
		h.queue.DeleteRequest(id)
		h.scheduleRequestLocked(id, onFailed)
	case market.EventRequestFinished:
		h.scheduleRequestLocked(id, onFinished)
	case market.EventSlotFreed:
		if ev.Mine {
			h.scheduleLocked(ev.Slot, onSlotLost)
		} else if err := h.push(slotqueue.Item{Slot: ev.Slot}); err != nil { // open again
			h.log.Debug("freed slot not queued", "slot", slotName(ev.Slot), "err", err)
		}
	}
}

func (h *Host) scheduleLocked(slot stowage.Slot, ev saleEvent) {
	if s := h.sales[keyOf(slot)]; s != nil {
		h.touchLocked(s)
		s.m.Schedule(ev)
	}
}

func (h *Host) scheduleRequestLocked(id stowage.RequestID, ev saleEvent) {
	for key, s := range h.sales {
		if key.request == id {
			h.touchLocked(s)
			s.m.Schedule(ev)
		}
	}
}

// WaitIdle returns once the host has nothing to do until the market, the
// network or its clock moves: the queue takes no slot (none waits that it
// may take) and no sale has a Run under way or an event to apply. A
// simulation moves its clock then; a real host has no need of it.
//
// Each part is waited for in turn; the activity count shows whether any of
// them was given work meanwhile, in which case it waits again. A machine
// only gets work from Start and Schedule, so only the sales given work
// since the last look are waited for.
func (h *Host) WaitIdle(ctx context.Context) error {
	for {
		before := h.activity.Load()
		if err := h.queue.WaitIdle(ctx); err != nil {
			return err
		}
		h.mu.Lock()
		touched := h.touched
		h.touched = make(map[*sale]struct{}, len(touched))
		h.mu.Unlock()
		for s := range touched {
			if err := s.m.WaitIdle(ctx); err != nil {
				h.mu.Lock()
				maps.Copy(h.touched, touched) // still to look at
				h.mu.Unlock()
				return err
			}
		}
		if h.activity.Load() == before {
			return nil
		}
	}
}

// touchLocked notes that s is given work, for WaitIdle.
func (h *Host) touchLocked(s *sale) {
	h.activity.Add(1)
	h.touched[s] = struct{}{}
}

// Close stops the host: no more market events, the queue and every sale
// stopped, the repo closed. Sales that were running resume at the next
// OpenHost on the same directory.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	if h.stopReclaim != nil {
		h.stopReclaim()
	}
	h.mu.Unlock()
	if h.unsubscribe != nil {
		h.unsubscribe()
	}
	h.queue.Stop()
	h.mu.Lock()
	for _, s := range h.sales {
		s.m.Stop() // returns at once; h.wg waits
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

// slotName names a slot in logs: "0x…/3".
func slotName(s stowage.Slot) string { return fmt.Sprintf("%s/%d", s.RequestID, s.Index) }

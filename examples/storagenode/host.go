package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
	"github.com/stowage/stowage/slotqueue"
	"github.com/stowage/stowage/statemachine"
)

// ErrAccounts means the host's byte accounting does not add up (see
// Host.Verify and Host.CheckAccounts).
var ErrAccounts = errors.New("host: accounts do not add up")

// HostConfig is what the operator decides.
type HostConfig struct {
	Dir  string // where the repo lives (embedded LevelDB)
	Sync bool   // fsync every write; off is fine for a simulation

	// Capacity is the repo quota, split evenly into Availabilities
	// availabilities when the repo has none yet.
	Capacity       uint64
	Availabilities int
	MaxDuration    uint64      // longest request to serve, seconds
	MinPrice       uint256.Int // least a slot must pay over its duration
	MaxCollateral  uint256.Int // most collateral to lock for one slot

	Workers   int    // slots downloaded at once (slot queue workers)
	QueueSize int    // slots waiting at most
	Batch     uint64 // bytes per download batch and per stored block

	// MarketTimeout bounds every market call; a call that takes longer
	// errors the sale.
	MarketTimeout time.Duration

	Logger *slog.Logger // nil: discard

	// QueueOptions are passed to the slot queue after the ones the host
	// derives from Workers and QueueSize.
	QueueOptions []slotqueue.Option

	// OnFilled and OnEnded, when set, see each sale as it reaches filled
	// and once it has ended and cleaned up, with the host it belongs to.
	// They run on the sale's goroutines and must not block for long.
	OnFilled func(*Host, SaleInfo)
	OnEnded  func(*Host, SaleInfo)
}

func (c HostConfig) validate() error {
	switch {
	case c.Dir == "":
		return errors.New("host: no directory")
	case c.Capacity == 0 || c.Availabilities < 1 || c.Capacity < uint64(c.Availabilities):
		return fmt.Errorf("host: capacity %d in %d availabilities", c.Capacity, c.Availabilities)
	case c.Batch == 0:
		return errors.New("host: zero batch size")
	case c.MarketTimeout <= 0:
		return errors.New("host: market timeout must be positive")
	}
	return nil
}

// HostStats counts what the host did since it started.
type HostStats struct {
	Requests int // requests the market announced
	Queued   int // slots pushed to the slot queue
	Sales    int // sales started (resumed ones included)
	Resumed  int // sales resumed after a restart
	Orphans  int // reservations deleted at start: their slot was no longer the host's
	Active   int // sales running now
	Filled   int // sales that reached filled

	Finished, Cancelled, Failed, Errored, Ignored int

	IgnoredReasons map[string]int // ignored sales by reason
	ErroredIn      map[string]int // errored sales by the state they failed in

	Downloaded uint64      // bytes stored
	Collected  uint256.Int // paid out by the market: rewards and collateral back
}

// Host is a storage host: it watches the market, queues the slots worth
// serving, and drives each sale through its states with the reservations
// and the repo accounting every byte.
type Host struct {
	cfg     HostConfig
	log     *slog.Logger
	market  Market
	network Network

	repo  *repo.Repo
	store *reservations.Store
	queue *slotqueue.Queue

	// totals is each availability's size when nothing draws on it.
	totals map[reservations.AvailabilityID]uint64

	mu          sync.Mutex
	sales       map[SlotRef]*Sale
	closed      bool
	holding     bool    // market events wait in backlog until the start is done
	backlog     []Event // see holding
	unsubscribe func()
	changed     chan struct{} // closed, and replaced, when busy or processing changes
	busy        int           // sales that are busy (see Sale.busy)
	processing  int           // workers held by a sale (see Sale.holdsWorker)
	stats       HostStats

	supervisors sync.WaitGroup
}

// OpenHost opens (or creates) the repo in cfg.Dir, creates the
// availabilities if there are none, resumes the sales of a previous run and
// starts serving the market's requests.
//
// On a restart, every reservation whose slot the market no longer counts as
// the host's is deleted, and the slots the market says are the host's resume
// from the unknown state, which asks the market where they stand.
func OpenHost(ctx context.Context, cfg HostConfig, market Market, network Network) (*Host, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := []repo.Option{repo.WithQuotaMaxBytes(cfg.Capacity), repo.WithLogger(log)}
	if !cfg.Sync {
		opts = append(opts, repo.WithNoSync())
	}
	r, err := repo.Open(ctx, cfg.Dir, opts...)
	if err != nil {
		return nil, fmt.Errorf("open host: %w", err)
	}
	h := &Host{
		cfg:     cfg,
		log:     log,
		market:  market,
		network: network,
		repo:    r,
		store:   reservations.New(r, reservations.WithLogger(log)),
		totals:  make(map[reservations.AvailabilityID]uint64),
		sales:   make(map[SlotRef]*Sale),
		changed: make(chan struct{}),
		holding: true,
	}
	h.stats.IgnoredReasons = make(map[string]int)
	h.stats.ErroredIn = make(map[string]int)
	h.queue, err = slotqueue.New(h.process, append([]slotqueue.Option{
		slotqueue.WithMaxWorkers(cfg.Workers), slotqueue.WithMaxSize(cfg.QueueSize), slotqueue.WithLogger(log),
		// Expiry is market time, not wall time, and the host already drops
		// the slots of a request the market cancels: the queue's own expiry
		// check (a clock at the epoch never passes an Expiry) stays off.
		slotqueue.WithClock(func() time.Time { return time.Unix(0, 0) }),
	}, cfg.QueueOptions...)...)
	if err == nil {
		err = h.start(ctx)
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open host: %w", err), h.Close())
	}
	return h, nil
}

// start creates or loads the availabilities, resumes, and starts serving.
func (h *Host) start(ctx context.Context) error {
	// Subscribe first so nothing is missed; events wait in the backlog
	// until the sales they may concern exist.
	unsubscribe := h.market.Subscribe(h.onEvent)
	h.mu.Lock()
	h.unsubscribe = unsubscribe
	h.mu.Unlock()

	as, err := h.store.Availabilities(ctx)
	if err != nil {
		return err
	}
	if len(as) == 0 {
		size := h.cfg.Capacity / uint64(h.cfg.Availabilities)
		for range h.cfg.Availabilities {
			if _, err := h.store.CreateAvailability(ctx, size, h.cfg.MaxDuration, h.cfg.MinPrice, h.cfg.MaxCollateral); err != nil {
				return err
			}
		}
	}
	// Resume: the market says which slots are still ours. Reservations of
	// any other slot are orphans, left by sales the last run stopped before
	// they filled or after they ended but before they cleaned up.
	mine, err := h.market.MySlots(ctx)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	held := make(map[SlotRef]bool, len(mine))
	for _, ref := range mine {
		held[ref] = true
	}
	rs, err := h.store.Reservations(ctx)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	var resume []*Sale
	var orphans []SlotRef
	for _, res := range rs {
		ref := SlotRef{Request: res.RequestID, Slot: res.SlotIndex}
		if !held[ref] {
			h.log.Info("deleting orphan reservation", "slot", ref, "reservation", res.ID)
			if err := h.reclaim(ctx, ref, &res); err != nil {
				return fmt.Errorf("resume: %w", err)
			}
			h.stats.Orphans++
			orphans = append(orphans, ref)
			continue
		}
		delete(held, ref)
		written, err := h.walkBlocks(ctx, ref, nil)
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		s := h.newSale(ref)
		s.res, s.hasRes, s.written = res, true, written
		resume = append(resume, s)
	}

	// Each availability's whole size: what it has free now, the orphans
	// given back, plus what the resumed sales hold.
	if as, err = h.store.Availabilities(ctx); err != nil {
		return err
	}
	for _, a := range as {
		h.totals[a.ID] = a.Size
	}
	for _, s := range resume {
		h.totals[s.res.AvailabilityID] += s.res.Size + s.written
	}
	// Slots the market counts as ours without a reservation (the records
	// were lost): resume them too, to collect what they earn.
	for _, ref := range mine {
		if held[ref] {
			resume = append(resume, h.newSale(ref))
		}
	}

	h.mu.Lock()
	for _, s := range resume {
		h.registerLocked(s)
		s.m.Start(&unknown{})
		h.stats.Resumed++
	}
	h.mu.Unlock()

	h.queue.Start()
	requeue := h.stillOpen(ctx, orphans)
	h.mu.Lock()
	h.pushLocked(requeue...)
	backlog := h.backlog
	h.backlog, h.holding = nil, false
	for _, ev := range backlog {
		h.handleLocked(ev)
	}
	h.mu.Unlock()
	return nil
}

// stillOpen returns queue items for the slots, among refs, whose request
// still waits for hosts: the host was working on them when it stopped, and
// may still win them.
func (h *Host) stillOpen(ctx context.Context, refs []SlotRef) []slotqueue.Item {
	var items []slotqueue.Item
	for _, ref := range refs {
		mctx, cancel := h.marketContext(ctx)
		st, err := h.market.SlotStatus(mctx, ref.Request, ref.Slot)
		cancel()
		if err != nil {
			h.log.Warn("slot not queued again", "slot", ref, "err", err)
			continue
		}
		if st.Request == RequestNew && !st.Mine && ref.Slot <= 0xffff {
			items = append(items, slotqueue.NewItem(ref.Request, uint16(ref.Slot), st.Ask, st.Expiry))
		}
	}
	return items
}

// Close stops the host: no more market events, the queue's workers and every
// sale's machine stopped (a sale in a final state finishes its cleanup
// first), the repo closed. Sales that were running resume at the next
// OpenHost on the same directory.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	unsubscribe := h.unsubscribe
	h.mu.Unlock()
	if unsubscribe != nil {
		unsubscribe()
	}
	if h.queue != nil {
		h.queue.Stop()
	}
	h.mu.Lock()
	sales := make([]*Sale, 0, len(h.sales))
	for _, s := range h.sales {
		sales = append(sales, s)
	}
	h.mu.Unlock()
	for _, s := range sales {
		s.m.Stop()
	}
	h.supervisors.Wait()
	return h.repo.Close()
}

// newSale makes a sale for ref, not yet registered or started.
func (h *Host) newSale(ref SlotRef) *Sale {
	s := &Sale{host: h, ref: ref, released: make(chan struct{})}
	s.m = statemachine.New(s, statemachine.WithLogger(h.log.With("slot", ref)))
	return s
}

// registerLocked makes s live and busy (its first state is about to start),
// and starts the goroutine that retires it when its machine ends.
func (h *Host) registerLocked(s *Sale) {
	h.sales[s.ref] = s
	s.live, s.inflight = true, true
	h.updateLocked(s)
	h.stats.Sales++
	h.stats.Active++
	h.supervisors.Add(1)
	go func() {
		defer h.supervisors.Done()
		<-s.m.Done()
		h.retire(s)
	}()
}

// retire is called once a sale's machine has ended: normally by a final
// state, else by an error no state handled, or by Close.
func (h *Host) retire(s *Sale) {
	s.mu.Lock()
	outcome := s.outcome
	s.mu.Unlock()
	if err := s.m.Err(); err != nil && outcome == OutcomeNone {
		// Every state but the final ones handles its errors, so this is a
		// bug; still, leave nothing behind.
		h.log.Error("sale ended by an unhandled error", "slot", s.ref, "err", err)
		s.mu.Lock()
		s.outcome, s.err = OutcomeErrored, err
		s.mu.Unlock()
		h.reclaimSale(context.Background(), s)
		outcome = OutcomeErrored
	}
	s.release()

	h.mu.Lock()
	if h.sales[s.ref] == s {
		delete(h.sales, s.ref)
	}
	s.live = false
	h.updateLocked(s)
	h.stats.Active--
	switch outcome {
	case OutcomeFinished:
		h.stats.Finished++
	case OutcomeCancelled:
		h.stats.Cancelled++
	case OutcomeFailed:
		h.stats.Failed++
	case OutcomeErrored:
		h.stats.Errored++
		h.stats.ErroredIn[s.Info().Reason]++
	case OutcomeIgnored:
		h.stats.Ignored++
		h.stats.IgnoredReasons[s.Info().Reason]++
	}
	h.mu.Unlock()
	if outcome != OutcomeNone && h.cfg.OnEnded != nil {
		h.cfg.OnEnded(h, s.Info())
	}
}

// process is the slot queue's ProcessFunc: it starts a sale for the item and
// keeps the worker busy until the sale is filled or has ended, so that the
// number of workers bounds how many slots download at once.
func (h *Host) process(ctx context.Context, it slotqueue.Item) error {
	ref := SlotRef{Request: it.RequestID, Slot: uint64(it.SlotIndex)}
	h.mu.Lock()
	if h.closed || h.sales[ref] != nil {
		h.notifyLocked() // WaitIdle may be waiting for this item to be taken
		h.mu.Unlock()
		return nil
	}
	// Counting the call and registering its sale (busy from the start) in
	// one critical section leaves WaitIdle no gap to see an idle host in.
	h.processing++
	s := h.newSale(ref)
	s.holdsWorker = true
	s.ask.SlotSize, s.ask.Duration = it.SlotSize, it.Duration
	s.ask.Reward, s.ask.Collateral = it.Reward, it.Collateral
	s.expiry = it.Expiry
	h.registerLocked(s)
	// Started under the lock: an event scheduled before Start would be
	// dropped, and counted as pending forever.
	s.m.Start(&preparing{})
	h.notifyLocked()
	h.mu.Unlock()

	select {
	case <-s.released:
	case <-ctx.Done():
		s.release()
	}
	return nil
}

// onEvent receives the market's events.
func (h *Host) onEvent(ev Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if h.holding {
		h.backlog = append(h.backlog, ev)
		return
	}
	h.handleLocked(ev)
}

// handleLocked routes a market event to the queue and to the sales it
// concerns. It never blocks: queue operations and Schedule return at once.
func (h *Host) handleLocked(ev Event) {
	h.log.Debug("market event", "kind", ev.Kind, "request", ev.Request, "slot", ev.Slot, "mine", ev.Mine)
	switch ev.Kind {
	case EventRequested:
		h.stats.Requests++
		items, err := slotqueue.ItemsForRequest(ev.Request, ev.Ask, ev.Expiry)
		if err != nil {
			h.log.Warn("request not queued", "request", ev.Request, "err", err)
			return
		}
		h.pushLocked(items...)
	case EventSlotFilled:
		if ev.Mine || ev.Slot > 0xffff {
			return
		}
		h.queue.Delete(ev.Request, uint16(ev.Slot))
		h.scheduleLocked(SlotRef{ev.Request, ev.Slot}, onFilledByOther)
	case EventRequestStarted:
		h.queue.DeleteRequest(ev.Request)
	case EventRequestCancelled:
		h.queue.DeleteRequest(ev.Request)
		h.scheduleRequestLocked(ev, onCancelled)
	case EventRequestFailed:
		h.queue.DeleteRequest(ev.Request)
		h.scheduleRequestLocked(ev, onFailed)
	case EventRequestFinished:
		h.scheduleRequestLocked(ev, onFinished)
	case EventSlotFreed:
		if ev.Mine {
			h.scheduleLocked(SlotRef{ev.Request, ev.Slot}, onSlotLost)
			return
		}
		if ev.Slot > 0xffff {
			return
		}
		// The slot is open again: queue it, with the terms of a sibling
		// still waiting if there is one, else those the event carries.
		it, ok := h.queue.Populate(ev.Request, uint16(ev.Slot))
		if !ok {
			it = slotqueue.NewItem(ev.Request, uint16(ev.Slot), ev.Ask, ev.Expiry)
		}
		h.pushLocked(it)
	}
}

func (h *Host) pushLocked(items ...slotqueue.Item) {
	err := h.queue.Push(items...)
	switch {
	case err == nil:
		h.stats.Queued += len(items)
	case errors.Is(err, slotqueue.ErrNotRunning), errors.Is(err, slotqueue.ErrItemExists):
		h.log.Debug("slots not queued", "err", err)
	default:
		h.log.Warn("slots not queued", "err", err)
	}
}

func (h *Host) scheduleLocked(ref SlotRef, ev func(saleState) saleState) {
	if s := h.sales[ref]; s != nil {
		h.scheduleSaleLocked(s, ev)
	}
}

func (h *Host) scheduleRequestLocked(e Event, ev func(saleState) saleState) {
	for ref, s := range h.sales {
		if ref.Request == e.Request {
			h.scheduleSaleLocked(s, ev)
		}
	}
}

// schedule hands ev to the sale's machine, counting it as pending until it
// is applied (see Host.WaitIdle).
func (h *Host) schedule(s *Sale, ev func(saleState) saleState) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || !s.live {
		return
	}
	h.scheduleSaleLocked(s, ev)
}

func (h *Host) scheduleSaleLocked(s *Sale, ev func(saleState) saleState) {
	s.pending++
	h.updateLocked(s)
	s.m.Schedule(func(cur saleState) saleState {
		next := ev(cur)
		h.track(s, func() {
			s.pending--
			if next != nil {
				s.inflight = true
			}
		})
		return next
	})
}

// track changes a sale's activity under the host's lock.
func (h *Host) track(s *Sale, change func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	change()
	h.updateLocked(s)
}

func (h *Host) updateLocked(s *Sale) {
	busy := s.live && (s.running > 0 || s.inflight || s.pending > 0 || s.ending)
	if busy == s.busy {
		return
	}
	s.busy = busy
	if busy {
		h.busy++
	} else {
		h.busy--
	}
	h.notifyLocked()
}

func (h *Host) notifyLocked() {
	close(h.changed)
	h.changed = make(chan struct{})
}

// WaitIdle returns once the host has nothing left to do until the clock
// moves or the market speaks: no state running, no event or transition
// pending, and no slot waiting while a worker is free. Workers waiting for a
// sale that waits for the clock do not count. A simulation steps its clock
// only then, which makes a run depend on the seed rather than on how the
// goroutines happen to be scheduled.
//
// It relies on nothing pushing to the queue meanwhile, which holds in the
// simulation: pushes come from the market's clock-driven events.
func (h *Host) WaitIdle(ctx context.Context) error {
	for {
		h.mu.Lock()
		busy, processing, closed, changed := h.busy, h.processing, h.closed, h.changed
		h.mu.Unlock()
		if closed {
			return nil
		}
		waiting, active := h.queue.Len(), h.queue.ActiveWorkers()
		h.mu.Lock()
		stable := h.changed == changed
		h.mu.Unlock()
		if !stable {
			continue // the host moved while the queue was read: look again
		}
		if busy == 0 {
			if active != processing {
				// A worker is between taking an item and calling
				// process, or between process returning and counting
				// itself idle: a matter of instructions.
				runtime.Gosched()
				continue
			}
			if waiting == 0 || processing >= h.cfg.Workers {
				return nil
			}
			// Items wait and a worker is free: it is about to take one,
			// and its process call will signal.
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// saleFilled is called by the filled state.
func (h *Host) saleFilled(s *Sale) {
	s.mu.Lock()
	first := !s.filled
	s.filled = true
	s.mu.Unlock()
	s.release()
	if !first {
		return
	}
	h.mu.Lock()
	h.stats.Filled++
	h.mu.Unlock()
	if h.cfg.OnFilled != nil {
		h.cfg.OnFilled(h, s.Info())
	}
}

func (h *Host) addCollected(paid uint256.Int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stats.Collected.Add(&h.stats.Collected, &paid)
}

// marketContext bounds a market call.
func (h *Host) marketContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, h.cfg.MarketTimeout)
}

// blockKey names the block of a slot's data that starts at offset.
func blockKey(ref SlotRef, offset uint64) datastore.Key {
	return datastore.KeyWithNamespaces([]string{
		ref.Request.String(), strconv.FormatUint(ref.Slot, 10), strconv.FormatUint(offset, 10),
	})
}

// storeBatch writes one batch of a slot: it first releases the batch's bytes
// from the reservation, then stores the block that uses them, so Used +
// Reserved never exceeds the quota. The pair runs to the end even if the
// sale is cancelled meanwhile, so no released byte goes unwritten.
func (h *Host) storeBatch(ctx context.Context, s *Sale, offset uint64, data []byte) error {
	ctx = context.WithoutCancel(ctx)
	res, ok := s.reservation()
	if !ok {
		return fmt.Errorf("store %s at %d: no reservation", s.ref, offset)
	}
	n := uint64(len(data))
	if err := h.store.Release(ctx, res.ID, res.AvailabilityID, n); err != nil {
		return fmt.Errorf("store %s at %d: %w", s.ref, offset, err)
	}
	if err := h.repo.PutBlock(ctx, blockKey(s.ref, offset), data); err != nil {
		return fmt.Errorf("store %s at %d: %w", s.ref, offset, err)
	}
	s.mu.Lock()
	s.res.Size -= n
	s.written += n
	s.mu.Unlock()
	h.mu.Lock()
	h.stats.Downloaded += n
	h.mu.Unlock()
	return nil
}

// walkBlocks calls fn (if not nil) with every block of a slot in order and
// returns the bytes stored. Each block starts where the one before ended, so
// the walk needs no index and survives a change of batch size.
func (h *Host) walkBlocks(ctx context.Context, ref SlotRef, fn func(offset uint64, data []byte) error) (uint64, error) {
	var offset uint64
	for {
		data, err := h.repo.GetBlock(ctx, blockKey(ref, offset))
		if errors.Is(err, datastore.ErrNotFound) {
			return offset, nil
		}
		if err != nil {
			return offset, fmt.Errorf("read %s at %d: %w", ref, offset, err)
		}
		if len(data) == 0 {
			return offset, fmt.Errorf("read %s at %d: empty block", ref, offset)
		}
		if fn != nil {
			if err := fn(offset, data); err != nil {
				return offset, err
			}
		}
		offset += uint64(len(data))
	}
}

// reclaimSale cleans up after a sale that ended.
func (h *Host) reclaimSale(ctx context.Context, s *Sale) {
	res, ok := s.reservation()
	var resp *reservations.Reservation
	if ok {
		resp = &res
	}
	if err := h.reclaim(ctx, s.ref, resp); err != nil {
		// What is left is found again, as an orphan, at the next start.
		h.log.Error("cleanup failed", "slot", s.ref, "err", err)
		return
	}
	s.mu.Lock()
	s.hasRes = false
	s.written = 0
	s.mu.Unlock()
}

// reclaim gives back everything a slot holds: the reservation is deleted
// (what it still holds returns to its availability), the slot's blocks are
// deleted, and the availability grows by the bytes they took, so the
// operator's offer is whole again once the slot's sale is over.
func (h *Host) reclaim(ctx context.Context, ref SlotRef, res *reservations.Reservation) error {
	if res != nil {
		if err := h.store.DeleteReservation(ctx, res.ID, res.AvailabilityID); err != nil {
			return fmt.Errorf("reclaim %s: %w", ref, err)
		}
	}
	freed, err := h.walkBlocks(ctx, ref, func(offset uint64, _ []byte) error {
		return h.repo.DeleteBlock(ctx, blockKey(ref, offset))
	})
	if err != nil {
		return fmt.Errorf("reclaim %s: %w", ref, err)
	}
	if res == nil || freed == 0 {
		return nil
	}
	// Grow the availability relative to its current size: reservations may
	// be carving bytes out of it at this very moment.
	_, err = h.store.ModifyAvailability(ctx, res.AvailabilityID, func(a *reservations.Availability) error {
		a.Size += freed
		return nil
	})
	if errors.Is(err, reservations.ErrNotFound) {
		return nil // the operator deleted it: the bytes stay free in the quota
	}
	if err != nil {
		return fmt.Errorf("reclaim %s: give back %d bytes: %w", ref, freed, err)
	}
	return nil
}

// Stats returns what the host did so far.
func (h *Host) Stats() HostStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.stats
	st.IgnoredReasons = maps.Clone(h.stats.IgnoredReasons)
	st.ErroredIn = maps.Clone(h.stats.ErroredIn)
	return st
}

// Quota returns the repo's byte accounting.
func (h *Host) Quota() repo.Quota { return h.repo.Quota() }

// QueueLen returns how many slots wait in the slot queue.
func (h *Host) QueueLen() int { return h.queue.Len() }

// Store returns the host's availabilities and reservations.
func (h *Host) Store() *reservations.Store { return h.store }

// Sales returns a snapshot of the sales running now.
func (h *Host) Sales() []SaleInfo {
	h.mu.Lock()
	sales := make([]*Sale, 0, len(h.sales))
	for _, s := range h.sales {
		sales = append(sales, s)
	}
	h.mu.Unlock()
	out := make([]SaleInfo, len(sales))
	for i, s := range sales {
		out[i] = s.Info()
	}
	return out
}

// Verify checks what must hold at every instant: the reservations
// invariant (repo.Reserved == Σ availability sizes + Σ reservation sizes)
// and Used + Reserved within the quota. It is safe to call at any time.
func (h *Host) Verify(ctx context.Context) error {
	var errs []error
	if err := h.store.Verify(ctx); err != nil {
		errs = append(errs, err)
	}
	if q := h.repo.Quota(); q.Used > q.Max || q.Reserved > q.Max-q.Used {
		errs = append(errs, fmt.Errorf("%w: used %d + reserved %d exceed max %d", ErrAccounts, q.Used, q.Reserved, q.Max))
	}
	return errors.Join(errs...)
}

// CheckAccounts checks, on top of Verify, that no availability is
// overcommitted or has lost bytes: for each one, its free size plus what its
// reservations hold plus what their sales have stored equals its size when
// nothing draws on it. Call it only while the host is idle (WaitIdle), when
// no byte is on its way from one account to another.
func (h *Host) CheckAccounts(ctx context.Context) error {
	errs := []error{h.Verify(ctx)}
	as, err := h.store.Availabilities(ctx)
	if err != nil {
		return err
	}
	rs, err := h.store.Reservations(ctx)
	if err != nil {
		return err
	}
	h.mu.Lock()
	written := make(map[reservations.ReservationID]uint64, len(h.sales))
	for _, s := range h.sales {
		s.mu.Lock()
		if s.hasRes {
			written[s.res.ID] = s.written
		}
		s.mu.Unlock()
	}
	h.mu.Unlock()
	held := make(map[reservations.AvailabilityID]uint64, len(as))
	for _, r := range rs {
		held[r.AvailabilityID] += r.Size + written[r.ID]
	}
	for _, a := range as {
		want, ok := h.totals[a.ID]
		if !ok {
			continue // created behind the host's back
		}
		if got := a.Size + held[a.ID]; got != want {
			errs = append(errs, fmt.Errorf("%w: availability %s: %d free + %d in its sales = %d, want %d",
				ErrAccounts, a.ID, a.Size, held[a.ID], got, want))
		}
	}
	return errors.Join(errs...)
}

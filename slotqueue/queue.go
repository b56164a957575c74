package slotqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/stowage/stowage"
)

// Defaults for the options of New.
const (
	DefaultMaxWorkers = 3
	DefaultMaxSize    = 128
)

// ProcessFunc serves one slot. The worker that called it is busy until it
// returns. ctx is cancelled when the queue stops; a ProcessFunc should then
// return promptly, since Stop waits for it.
//
// An error wrapping [ErrRequeue] puts the item back, marked Seen (unless
// its slot was deleted while it was being processed). Any other error goes,
// with its item, to the function set with [WithOnError] and to the logger
// (level Error), and the worker moves on to the next item; a panic is
// recovered and reported the same way, as an error. A ProcessFunc must not
// call Stop (Stop would wait for it).
type ProcessFunc func(ctx context.Context, item Item) error

// Option configures a Queue made by New.
type Option func(*options)

type options struct {
	maxWorkers int
	maxSize    int
	logger     *slog.Logger
	tieSeed    uint64
	seeded     bool
	onDrop     func(Item, error)
	onError    func(Item, error)
	now        func() time.Time
}

// WithMaxWorkers sets how many items are processed at once: between 1 and
// the queue's MaxSize. The default is DefaultMaxWorkers.
func WithMaxWorkers(n int) Option { return func(o *options) { o.maxWorkers = n } }

// WithMaxSize sets how many items can wait in the queue: between 1 and
// 65535. The default is DefaultMaxSize.
func WithMaxSize(n int) Option { return func(o *options) { o.maxSize = n } }

// WithTieSeed fixes the order in which the queue serves slots that tie
// under [Item.Less] (such as the slots of one request): queues given the same
// seed serve ties in the same order. By default each queue draws its own at
// random, which is what a host wants, so that hosts do not all race for the
// same slot; a fixed seed is for simulations and tests that must repeat.
func WithTieSeed(seed uint64) Option {
	return func(o *options) { o.tieSeed, o.seeded = seed, true }
}

// WithLogger sets where the queue reports failed and panicking process
// calls (level Error), and requeued and dropped items (level Debug). The
// default, and a nil logger, discard everything; set [WithOnError] (or a
// logger) so that a failed item is not only a count in Stats.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithOnDrop sets a function called with every item the queue drops without
// handing it to a worker, and why: [ErrEvicted] (a full queue kept better
// items) or [ErrExpired] (its Expiry passed). Items removed by Delete or
// DeleteRequest are not reported: the caller knows of them.
//
// fn is called after the queue's lock is released, from whichever goroutine
// caused the drop (a Push, a worker, any call that noticed an expiry), so it
// may call the queue (but not WaitIdle, which waits for it); calls from
// different goroutines may interleave. It should return quickly, since
// that goroutine waits for it.
func WithOnDrop(fn func(item Item, reason error)) Option {
	return func(o *options) { o.onDrop = fn }
}

// WithOnError sets a function called with every item whose process call
// failed and the error it returned: any error that does not wrap
// [ErrRequeue], a panic (as an error) included, and the context errors of
// calls cancelled by Stop (tell those apart with errors.Is(err,
// context.Canceled)). The failure is logged as well (see [WithLogger]).
//
// fn is called on the worker's goroutine, after the process call returned
// and before the worker counts as idle (so WaitIdle waits for it), without
// the queue's lock held: it may call the queue, but not Stop. Calls from
// different workers may run at once.
func WithOnError(fn func(item Item, err error)) Option {
	return func(o *options) { o.onError = fn }
}

// WithClock sets the clock that Item.Expiry is checked against; the
// default, and nil, is time.Now. A simulation passes its own clock so that
// expiry follows simulated time. now is called with the queue locked and
// must not call the queue.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

// Queue is a bounded priority queue of slots served by a pool of workers.
//
// Items wait in priority order ([Item.Less]); whenever a worker is free it
// takes the highest-priority waiting item and calls the process function
// with it. When a push would make more than MaxSize items wait, the
// lowest-priority item is dropped, even if that is the one just pushed. An
// item whose Expiry has passed is dropped, never handed to a worker. Once
// taken by a worker an item is no longer waiting; it comes back only if the
// process function returns [ErrRequeue].
//
// A Queue is safe for concurrent use by multiple goroutines.
type Queue struct {
	process    ProcessFunc
	maxWorkers int
	log        *slog.Logger
	onDrop     func(Item, error)
	onError    func(Item, error)
	now        func() time.Time

	lifecycle sync.Mutex     // serialises Start and Stop
	workers   sync.WaitGroup // the workers of the current run

	mu       sync.Mutex
	ready    sync.Cond     // on mu: an item may be takeable, or the queue stopped
	idle     chan struct{} // closed when the queue may have become idle; nil until WaitIdle needs it
	core     *core
	running  bool
	paused   bool
	inFlight []*flight // the items being processed
	drops    []drop    // to report once mu is released
	// reporting counts the goroutines reporting drops to onDrop: WaitIdle
	// waits for them, so that every drop made before the queue went idle
	// has been reported when it returns.
	reporting int
	stats     Stats // the counters; Waiting and Busy are filled in by Stats
	cancel    context.CancelFunc
}

// flight is an item being processed.
type flight struct {
	key     slotKey
	deleted bool // Delete or DeleteRequest named it: do not requeue
}

// drop is an item dropped unprocessed and why.
type drop struct {
	item   Item
	reason error
}

// Stats are a queue's gauges and counters, for metrics and tests. The
// counters count from New and never go back; none counts items removed by
// Delete or DeleteRequest.
type Stats struct {
	Waiting int // items waiting now, as Len reports
	Busy    int // process calls running now, as ActiveWorkers reports

	// Pushed counts the items Push accepted, including any it dropped at
	// once (evicted or expired). Requeued items are not pushed again.
	Pushed uint64
	// Processed counts the process calls that have returned (or panicked),
	// whatever the outcome. Those that succeeded are Processed − Failed −
	// Requeued.
	Processed uint64
	// Failed counts the process calls that returned an error not wrapping
	// ErrRequeue (a cancellation by Stop included) or panicked: the items
	// passed to WithOnError.
	Failed uint64
	// Requeued counts the process calls that returned an error wrapping
	// ErrRequeue, whether or not the item went back: not if its slot was
	// deleted meanwhile or is waiting again already, and it may be evicted
	// or expired at once (then also counted there).
	Requeued uint64
	// Evicted counts the items dropped because the queue was full, as
	// reported to WithOnDrop with ErrEvicted.
	Evicted uint64
	// Expired counts the items dropped because their Expiry passed, as
	// reported to WithOnDrop with ErrExpired.
	Expired uint64
}

// New returns a stopped queue that will call process for each item. Options
// out of range, or a nil process, give an error wrapping ErrInvalidConfig.
func New(process ProcessFunc, opts ...Option) (*Queue, error) {
	o := options{maxWorkers: DefaultMaxWorkers, maxSize: DefaultMaxSize}
	for _, opt := range opts {
		opt(&o)
	}
	switch {
	case process == nil:
		return nil, fmt.Errorf("new queue: nil process function: %w", ErrInvalidConfig)
	case o.maxSize < 1 || o.maxSize > math.MaxUint16:
		return nil, fmt.Errorf("new queue: max size %d, want 1 to %d: %w", o.maxSize, math.MaxUint16, ErrInvalidConfig)
	case o.maxWorkers < 1 || o.maxWorkers > o.maxSize:
		return nil, fmt.Errorf("new queue: max workers %d, want 1 to max size %d: %w", o.maxWorkers, o.maxSize, ErrInvalidConfig)
	}
	if !o.seeded {
		o.tieSeed = rand.Uint64()
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	q := &Queue{
		process:    process,
		maxWorkers: o.maxWorkers,
		log:        o.logger,
		onDrop:     o.onDrop,
		onError:    o.onError,
		now:        o.now,
		core:       newCore(o.maxSize, o.tieSeed),
	}
	q.ready.L = &q.mu
	return q, nil
}

// lock locks the queue and drops the items that have expired, so that no
// caller ever sees one waiting. It returns the time it checked.
func (q *Queue) lock() time.Time {
	q.mu.Lock()
	return q.expireLocked()
}

// unlock unlocks the queue and then reports the items dropped while it was
// locked.
func (q *Queue) unlock() {
	drops := q.drops
	q.drops = nil
	if len(drops) > 0 {
		q.reporting++
	}
	q.mu.Unlock()
	if len(drops) == 0 {
		return
	}
	defer func() { // even should onDrop panic
		q.mu.Lock()
		q.reporting--
		q.notifyIdleLocked()
		q.mu.Unlock()
	}()
	for _, d := range drops {
		q.log.Debug("slotqueue: dropped item", "request", d.item.RequestID, "slot", d.item.Index, "reason", d.reason)
		if q.onDrop != nil {
			q.onDrop(d.item, d.reason)
		}
	}
}

func (q *Queue) expireLocked() time.Time {
	now := q.now()
	for _, it := range q.core.expire(now) {
		q.dropLocked(it, ErrExpired)
	}
	return now
}

func (q *Queue) dropLocked(it Item, reason error) {
	if errors.Is(reason, ErrExpired) {
		q.stats.Expired++
	} else {
		q.stats.Evicted++
	}
	q.notifyIdleLocked()
	// Not collected when nobody would see it: pushing to a full queue
	// drops an item every time.
	if q.onDrop != nil || q.log.Enabled(context.Background(), slog.LevelDebug) {
		q.drops = append(q.drops, drop{it, reason})
	}
}

// notifyIdleLocked wakes WaitIdle to check again.
func (q *Queue) notifyIdleLocked() {
	if q.idle != nil {
		close(q.idle)
		q.idle = nil
	}
}

// takeableLocked reports whether a worker may take an item now.
func (q *Queue) takeableLocked() bool { return q.running && !q.paused && q.core.ready() }

// Start starts the workers. Items already waiting (pushed before an earlier
// Stop) are served. A queue paused before Start starts paused. Starting a
// running queue does nothing.
func (q *Queue) Start() {
	q.lifecycle.Lock()
	defer q.lifecycle.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.running {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	q.running, q.cancel = true, cancel
	q.workers.Add(q.maxWorkers)
	for range q.maxWorkers {
		go q.work(ctx)
	}
}

// Stop cancels the context of every item being processed and returns once
// all workers have exited. Waiting items stay queued for the next Start, as
// do items whose process function returns ErrRequeue after the
// cancellation. Stopping a stopped queue does nothing; concurrent calls all
// wait.
func (q *Queue) Stop() {
	q.lifecycle.Lock()
	defer q.lifecycle.Unlock()
	q.mu.Lock()
	if !q.running {
		q.mu.Unlock()
		return
	}
	q.running = false
	q.cancel()
	q.ready.Broadcast()
	q.notifyIdleLocked()
	q.mu.Unlock()
	q.workers.Wait()
}

// Running reports whether the queue has been started and not stopped since.
func (q *Queue) Running() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running
}

// Pause stops workers from taking items until Resume; items being processed
// go on, and Push still queues items. It works whether or not the queue
// runs: a queue paused before Start starts paused, so a restarting host can
// queue its backlog before anything is served, then Resume.
func (q *Queue) Pause() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.paused = true
	q.notifyIdleLocked()
}

// Resume clears the Seen flag of every waiting item and lets workers take
// items again. Call it when the host can serve more than before (an
// availability was added or grew), so that requeued items get another try.
func (q *Queue) Resume() {
	q.lock()
	defer q.unlock()
	q.paused = false
	q.core.clearSeen()
	q.ready.Broadcast()
}

// Paused reports whether Pause was called and Resume not since. A queue
// that is not paused still takes nothing while only Seen items wait.
func (q *Queue) Paused() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.paused
}

// Push queues items. It is all or nothing: if the queue is stopped
// (ErrNotRunning), or any item's slot is already waiting or appears twice
// among items (an error wrapping ErrItemExists for each such slot, joined),
// nothing is pushed.
//
// Otherwise every item is accepted. Those whose Expiry has passed are
// dropped at once, and if more than MaxSize items would then wait, the
// lowest-priority ones are dropped until MaxSize remain; they may be among
// the ones just pushed. Which items are kept does not depend on their order
// in the call. Each drop is reported to WithOnDrop; Push still returns nil.
// An item pushed with Seen set waits like a requeued one, until Resume.
func (q *Queue) Push(items ...Item) error {
	now := q.lock()
	defer q.unlock()
	if !q.running {
		return ErrNotRunning
	}
	if err := q.checkNew(items); err != nil {
		return err
	}
	for _, it := range items {
		q.stats.Pushed++
		if expired(it.Expiry, now) {
			q.dropLocked(it, ErrExpired)
			continue
		}
		// checkNew ruled out ErrItemExists.
		if dropped, ok, _ := q.core.push(it); ok {
			q.dropLocked(dropped, ErrEvicted)
		}
	}
	if len(items) > 0 {
		q.ready.Broadcast()
	}
	return nil
}

// checkNew reports the items whose slot is already queued or repeated.
func (q *Queue) checkNew(items []Item) error {
	var seen map[slotKey]struct{}
	if len(items) > 1 {
		seen = make(map[slotKey]struct{}, len(items))
	}
	var errs []error
	for _, it := range items {
		key := slotKey{it.RequestID, it.Index}
		_, repeated := seen[key]
		if repeated || q.core.contains(it.RequestID, it.Index) {
			errs = append(errs, fmt.Errorf("push request %s slot %d: %w", it.RequestID, it.Index, ErrItemExists))
		}
		if seen != nil {
			seen[key] = struct{}{}
		}
	}
	return errors.Join(errs...)
}

// Delete removes a waiting slot. A slot that is not waiting (never pushed,
// dropped, or already taken by a worker) is ignored, except that a slot
// being processed will not be put back if its process function returns
// ErrRequeue.
func (q *Queue) Delete(requestID stowage.RequestID, index uint64) {
	q.lock()
	defer q.unlock()
	q.core.delete(requestID, index)
	for _, f := range q.inFlight {
		if f.key == (slotKey{requestID, index}) {
			f.deleted = true
		}
	}
	q.notifyIdleLocked()
}

// DeleteRequest removes every waiting slot of a request, and keeps its slots
// being processed from being put back, like Delete.
func (q *Queue) DeleteRequest(requestID stowage.RequestID) {
	q.lock()
	defer q.unlock()
	q.core.deleteRequest(requestID)
	for _, f := range q.inFlight {
		if f.key.request == requestID {
			f.deleted = true
		}
	}
	q.notifyIdleLocked()
}

// Contains reports whether a slot is waiting in the queue.
func (q *Queue) Contains(requestID stowage.RequestID, index uint64) bool {
	q.lock()
	defer q.unlock()
	return q.core.contains(requestID, index)
}

// Item returns the item for slot index of a request: the waiting item
// itself when that slot waits, else one made from the terms (Ask and
// Expiry) of any of the request's slots still waiting, not Seen, for
// instance to queue again a slot that a host freed. It returns false when
// none of the request's slots is waiting. Use Contains to tell the two
// cases apart; Push refuses a slot that is waiting already.
func (q *Queue) Item(requestID stowage.RequestID, index uint64) (Item, bool) {
	q.lock()
	defer q.unlock()
	if e, ok := q.core.slots[slotKey{requestID, index}]; ok {
		return e.item, true
	}
	it, ok := q.core.sibling(requestID)
	if !ok {
		return Item{}, false
	}
	it.Index, it.Seen = index, false
	return it, true
}

// Len returns how many items are waiting (not counting those being
// processed).
func (q *Queue) Len() int {
	q.lock()
	defer q.unlock()
	return q.core.len()
}

// Cap returns the queue's capacity (WithMaxSize): the most items that can
// wait at once.
func (q *Queue) Cap() int { return q.core.maxSize }

// MaxWorkers returns the most items processed at once.
func (q *Queue) MaxWorkers() int { return q.maxWorkers }

// ActiveWorkers returns how many process functions are running.
func (q *Queue) ActiveWorkers() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.inFlight)
}

// Items returns a copy of the waiting items, highest priority first (the
// order workers take them in). It changes nothing: an operator's view of
// the queue (GET /sales/queue) lists it. Items being processed are not
// waiting and not listed; Stats counts them as Busy.
func (q *Queue) Items() []Item {
	q.lock()
	defer q.unlock()
	return q.core.items()
}

// Stats returns the queue's gauges and counters.
func (q *Queue) Stats() Stats {
	q.lock()
	defer q.unlock()
	s := q.stats
	s.Waiting, s.Busy = q.core.len(), len(q.inFlight)
	return s
}

// WaitIdle returns nil once no process function is running and no worker
// may take an item: none is waiting, the queue is paused or stopped, or only
// Seen items wait; and every item dropped before then has been reported to
// the OnDrop function (which therefore must not call WaitIdle). It returns
// ctx.Err() if ctx ends first. An idle queue stays idle until something is
// pushed or it is resumed or started.
func (q *Queue) WaitIdle(ctx context.Context) error {
	for {
		q.lock()
		idle := len(q.inFlight) == 0 && !q.takeableLocked() && q.reporting == 0
		if idle {
			q.unlock()
			return nil
		}
		if q.idle == nil {
			q.idle = make(chan struct{})
		}
		ch := q.idle
		q.unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// work serves items until the queue stops.
func (q *Queue) work(ctx context.Context) {
	defer q.workers.Done()
	for {
		it, f, ok := q.take()
		if !ok {
			return
		}
		q.finish(it, f, q.run(ctx, it))
	}
}

// take waits until a worker may take an item and takes it; false once the
// queue stops.
func (q *Queue) take() (Item, *flight, bool) {
	q.lock()
	defer q.unlock()
	for !q.takeableLocked() {
		if !q.running {
			return Item{}, nil, false
		}
		if len(q.drops) > 0 {
			// Report expired items now, not whenever this worker wakes.
			q.unlock()
			q.lock()
			continue
		}
		q.ready.Wait()
		q.expireLocked()
	}
	it, _ := q.core.pop()
	f := &flight{key: slotKey{it.RequestID, it.Index}}
	q.inFlight = append(q.inFlight, f)
	return it, f, true
}

// finish accounts for a process call that returned err, and puts its item
// back if it asked to be requeued and was not deleted meanwhile.
func (q *Queue) finish(it Item, f *flight, err error) {
	now := q.lock()
	defer q.unlock()
	q.inFlight = slices.DeleteFunc(q.inFlight, func(g *flight) bool { return g == f })
	q.stats.Processed++
	q.notifyIdleLocked()
	switch {
	case errors.Is(err, ErrRequeue):
		q.stats.Requeued++
		if f.deleted {
			return
		}
		it.Seen = true
		if expired(it.Expiry, now) {
			q.dropLocked(it, ErrExpired)
			return
		}
		// ErrItemExists: the slot was pushed again meanwhile; that fresh,
		// unseen copy waits instead.
		if dropped, ok, err := q.core.push(it); err == nil && ok {
			q.dropLocked(dropped, ErrEvicted)
		}
	case err != nil:
		q.stats.Failed++
	}
}

// run calls the process function and reports its error or panic (which it
// returns as an error) to the logger and the OnError function.
func (q *Queue) run(ctx context.Context, it Item) error {
	err := q.call(ctx, it)
	switch {
	case errors.Is(err, ErrRequeue):
		q.log.Debug("slotqueue: requeue", "request", it.RequestID, "slot", it.Index, "err", err)
	case err != nil:
		q.log.Error("slotqueue: process failed", "request", it.RequestID, "slot", it.Index, "err", err)
		if q.onError != nil {
			q.onError(it, err)
		}
	}
	return err
}

// call calls the process function and turns a panic into an error.
func (q *Queue) call(ctx context.Context, it Item) (err error) {
	defer func() {
		if r := recover(); r != nil {
			q.log.Error("slotqueue: process panicked",
				"request", it.RequestID, "slot", it.Index, "panic", r, "stack", string(debug.Stack()))
			err = fmt.Errorf("process request %s slot %d: panic: %v", it.RequestID, it.Index, r)
		}
	}()
	return q.process(ctx, it)
}

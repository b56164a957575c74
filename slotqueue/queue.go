package slotqueue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"runtime/debug"
	"sync"

	"github.com/stowage/stowage"
)

// Defaults for the options of New.
const (
	DefaultMaxWorkers = 3
	DefaultMaxSize    = 128
)

// ProcessFunc serves one slot. The worker that called it is busy until it
// returns. ctx is cancelled when the queue stops; a ProcessFunc should then
// return promptly, since Stop waits for it. An error it returns is logged and
// the worker moves on to the next item; a panic is recovered and logged the
// same way. A ProcessFunc must not call Stop (Stop would wait for it).
type ProcessFunc func(ctx context.Context, item Item) error

// Option configures a Queue made by New.
type Option func(*options)

type options struct {
	maxWorkers int
	maxSize    int
	logger     *slog.Logger
	tieSeed    uint64
	seeded     bool
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
// calls (level Error) and dropped items (level Debug). The default, and a nil
// logger, discard everything.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// Queue is a bounded priority queue of slots served by a pool of workers.
//
// Items wait in priority order ([Item.Less]); whenever a worker is free it
// takes the highest-priority waiting item and calls the process function
// with it. When a push would make more than MaxSize items wait, the
// lowest-priority item is dropped, even if that is the one just pushed. Each
// pushed item is handed to the process function at most once: once taken by
// a worker it is no longer waiting, and it is not put back, not even when
// Stop cancels its processing.
//
// A Queue is safe for concurrent use by multiple goroutines.
type Queue struct {
	process    ProcessFunc
	maxWorkers int
	log        *slog.Logger

	lifecycle sync.Mutex     // serialises Start and Stop
	workers   sync.WaitGroup // the workers of the current run

	mu      sync.Mutex
	ready   sync.Cond // on mu: an item arrived, or the queue stopped
	core    *core
	running bool
	active  int
	cancel  context.CancelFunc
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
	q := &Queue{
		process:    process,
		maxWorkers: o.maxWorkers,
		log:        o.logger,
		core:       newCore(o.maxSize, o.tieSeed),
	}
	q.ready.L = &q.mu
	return q, nil
}

// Start starts the workers. Items already waiting (pushed before an earlier
// Stop) are served. Starting a running queue does nothing.
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
// all workers have exited. Waiting items stay queued for the next Start.
// Stopping a stopped queue does nothing; concurrent calls all wait.
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
	q.mu.Unlock()
	q.workers.Wait()
}

// Running reports whether the queue has been started and not stopped since.
func (q *Queue) Running() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.running
}

// Push queues items. It is all or nothing: if the queue is stopped
// (ErrNotRunning), or any item's slot is already waiting or appears twice
// among items (an error wrapping ErrItemExists for each such slot, joined),
// nothing is pushed.
//
// Otherwise every item is pushed, and if more than MaxSize items would then
// wait, the lowest-priority ones are dropped until MaxSize remain; they may be
// among the ones just pushed. Which items are kept does not depend on their
// order in the call.
func (q *Queue) Push(items ...Item) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.running {
		return ErrNotRunning
	}
	if err := q.checkNew(items); err != nil {
		return err
	}
	for _, it := range items {
		// checkNew ruled out ErrItemExists. Checking the level first spares
		// boxing the log arguments on every drop.
		dropped, ok, _ := q.core.push(it)
		if ok && q.log.Enabled(context.Background(), slog.LevelDebug) {
			q.log.Debug("slotqueue: queue full, dropped lowest-priority item",
				"request", dropped.RequestID, "slot", dropped.SlotIndex)
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
		key := slotKey{it.RequestID, it.SlotIndex}
		_, repeated := seen[key]
		if repeated || q.core.contains(it.RequestID, it.SlotIndex) {
			errs = append(errs, fmt.Errorf("push request %s slot %d: %w", it.RequestID, it.SlotIndex, ErrItemExists))
		}
		if seen != nil {
			seen[key] = struct{}{}
		}
	}
	return errors.Join(errs...)
}

// Delete removes a waiting slot. A slot that is not waiting (never pushed,
// dropped, or already taken by a worker) is ignored.
func (q *Queue) Delete(requestID stowage.RequestID, slotIndex uint16) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.core.delete(requestID, slotIndex)
}

// DeleteRequest removes every waiting slot of a request.
func (q *Queue) DeleteRequest(requestID stowage.RequestID) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.core.deleteRequest(requestID)
}

// Contains reports whether a slot is waiting in the queue.
func (q *Queue) Contains(requestID stowage.RequestID, slotIndex uint16) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.core.contains(requestID, slotIndex)
}

// Populate rebuilds the item for slot slotIndex of a request from the terms
// of any of the request's slots still waiting in the queue, for instance to
// queue again a slot that a host freed. It returns false when none of the
// request's slots is waiting. It does not check whether slotIndex itself is
// waiting: Push will refuse it if so.
func (q *Queue) Populate(requestID stowage.RequestID, slotIndex uint16) (Item, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	it, ok := q.core.sibling(requestID)
	it.SlotIndex = slotIndex
	return it, ok
}

// Len returns how many items are waiting (not counting those being
// processed).
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.core.len()
}

// Size returns MaxSize, the most items that can wait at once.
func (q *Queue) Size() int { return q.core.maxSize }

// MaxWorkers returns the most items processed at once.
func (q *Queue) MaxWorkers() int { return q.maxWorkers }

// ActiveWorkers returns how many process functions are running.
func (q *Queue) ActiveWorkers() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.active
}

// Items returns a copy of the waiting items, highest priority first.
func (q *Queue) Items() []Item {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.core.items()
}

// work serves items until the queue stops.
func (q *Queue) work(ctx context.Context) {
	defer q.workers.Done()
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		for q.running && q.core.len() == 0 {
			q.ready.Wait()
		}
		if !q.running {
			return
		}
		it, _ := q.core.pop()
		q.active++
		q.mu.Unlock()
		q.run(ctx, it)
		q.mu.Lock()
		q.active--
	}
}

// run calls the process function, logging its error or panic.
func (q *Queue) run(ctx context.Context, it Item) {
	defer func() {
		if r := recover(); r != nil {
			q.log.Error("slotqueue: process panicked",
				"request", it.RequestID, "slot", it.SlotIndex, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	if err := q.process(ctx, it); err != nil {
		q.log.Error("slotqueue: process failed",
			"request", it.RequestID, "slot", it.SlotIndex, "err", err)
	}
}

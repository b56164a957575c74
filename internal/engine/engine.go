// Package engine is the write path shared by package repo and package
// reservations: the quota counters, a read-your-pipelined-writes overlay,
// grouped commits that share one fsync, and fail-stop after a write whose
// outcome is unknown.
//
// Every change runs as a function on a Tx under one staging lock: it reads
// what it changes (through the overlay of changes queued or being written,
// so it sees every change staged before it), checks it, and stages writes in
// its own order. The change then joins the commit queue, so the next change
// is staged while this one is being written. Whoever holds the staging lock
// stages every change submitted meanwhile (flat combining). One caller at a
// time leads: it takes the whole queue, writes it as one batch (one fsync),
// and hands the lead to the first caller still waiting (or, with many
// queued, writes the next group itself). A change is acknowledged only
// once its group is durable. The queue (the commit side)
// has its own lock, held only briefly, so the leader never waits for
// staging.
//
// The overlay keeps a durable group's writes one group longer (dropped at
// the next staging, so a leader never takes the staging lock between two
// groups), and nothing once the engine is idle.
//
// A failed group fails every change in it and every change queued behind
// it (they were checked against it). When the outcome of the failed write is
// unknown (the commit itself failed), the engine refuses every later write
// with ErrWriteFailed until it is reopened, or reopens its own embedded
// database and reloads; see package repo for why.
//
// In shared mode (several processes on one transactional datastore, see
// shared.go) none of that memory is kept: every change is one transaction
// of the datastore, retried when it conflicts with another process's.
//
// Where each part lives: engine.go (Config, New, the lock order, the
// modes), pipeline.go (staging, the leader, fail-stop), queue.go (the
// commit queue), overlay.go (the pipelined writes), writer.go (the writer
// interface; batches or transactions of any datastore, blocks in a store
// of their own around their metadata), ldbwriter.go (the embedded
// LevelDB: its batch writer, snapshots and ordered scans, the only file
// that knows the type), recover.go (the reopen after a write of unknown
// outcome), shared.go (shared mode; shared_chain.go, the hand-over of the
// counters' locks between a host's changes; shared_group.go, its group
// commit), tx.go and scan.go (a change's reads
// and writes), view.go and reads.go (reads outside a change).
package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
)

// Errors, re-exported by package repo.
var (
	ErrClosed      = errors.New("repo: closed")
	ErrWriteFailed = errors.New("repo: write failed, outcome unknown")
	ErrCorrupt     = errors.New("repo: corrupt quota record")
	ErrInvalid     = errors.New("repo: invalid option")
)

// Keys of the quota counters in the metadata datastore, 8-byte big-endian.
var (
	UsedKey     = datastore.NewKey("/meta/quota/used")
	ReservedKey = datastore.NewKey("/meta/quota/reserved")
)

// BlocksPrefix namespaces blocks that share the metadata datastore.
var BlocksPrefix = datastore.NewKey("/blocks")

// Config configures New.
type Config struct {
	Max    uint64
	Meta   datastore.Batching // nil when Open is set
	Blocks datastore.Batching // nil: blocks share Meta under BlocksPrefix
	Txn    bool               // write groups as transactions instead of batches
	// Shared: several processes change the datastore; every change is one
	// of its transactions, retried on conflict, and nothing in memory is
	// authoritative.
	Shared bool
	// Grace bounds, in shared mode, a round trip that cannot use the
	// caller's ctx (the discard of a transaction). Zero: DefaultGrace.
	Grace time.Duration
	// Open opens the embedded metadata datastore; the engine calls it again
	// to recover after a write whose outcome is unknown, and closes what it
	// returned on Close.
	Open func() (datastore.Batching, io.Closer, error)
	// OpenReadOnly opens the embedded datastore for reading only (nothing
	// written, so it opens on a full disk): reads go on while Open fails.
	OpenReadOnly func() (datastore.Batching, io.Closer, error)
	// Now is the clock that spaces the retries of a failed reopen
	// (default time.Now); ReopenEvery is their interval (default
	// DefaultReopenEvery).
	Now         func() time.Time
	ReopenEvery time.Duration
	Log         *slog.Logger
}

// DefaultReopenEvery is how often, at most, a change retries the reopen of
// the embedded database after one failed.
const DefaultReopenEvery = time.Second

// Engine is the write path of one repo. It is safe for concurrent use.
//
// Locks, in the order they are taken: a path that holds one of them takes
// only those below it, never one above.
//
//  1. gate (RW): held shared by every change from staging until it is
//     durable, and exclusively by View, which so sees no change in flight.
//  2. stageMu: serialises staging (the Tx of a change, the overlay, the
//     staged counters, e.failed); never held across a write.
//  3. queue.mu (queueMu): the commit queue and the durable counters; held
//     only briefly, never across staging or a write.
//  4. dbMu (RW): held shared around datastore I/O (a Tx's reads, the
//     leader's write through e.w, the reads outside a change), and
//     exclusively while a reopen replaces the datastore and its writer.
//  5. Leaves, under any of the above, taking nothing while held: subMu
//     (changes submitted for staging), watches.mu, extMu, stats.mu,
//     life.mu.
//
// Shared mode (shared.go) takes none of 1-3: its semaphore (sem)
// serialises its changes and is taken first; then dbMu, shared, around a
// Tx's reads (nothing replaces its datastore), and the leaves (stats.mu,
// its counters' mu, life.mu). The lock hand-over's chain.mu is taken
// briefly, before or under sem, and holds nothing while held but a
// non-blocking try or release of sem itself (a waiter whose ctx ended
// ending locks handed over that no one will take; the holder freeing
// sem once no locks are left handed over without a waiter).
//
// A change may read again from inside a scan's callback (a second read
// lock of dbMu): safe, because the only writer of dbMu under way while a
// change runs would be a reopen, which needs stageMu, held by the change
// (Close takes dbMu only once every call has left).
type Engine struct {
	max      uint64
	txn      bool
	shared   bool
	separate bool // blocks live in their own datastore
	open     func() (datastore.Batching, io.Closer, error)
	openRO   func() (datastore.Batching, io.Closer, error)
	now      func() time.Time
	every    time.Duration
	log      *slog.Logger

	life lifetime
	gate sync.RWMutex

	dbMu   sync.RWMutex
	meta   datastore.Batching
	blocks datastore.Batching
	closer io.Closer
	w      writer // writes groups to meta and blocks

	subMu sync.Mutex
	sub   []*change // submitted, waiting for whoever holds stageMu

	stageMu  sync.Mutex
	staged   Counters // after every queued change
	overlay  overlay
	seq      uint64
	last     *change // the last change queued (maybe durable since)
	failed   error   // set by a write of unknown outcome
	gen      uint64
	reopened time.Time // when a write of unknown outcome last reopened the database

	queue commitQueue

	// m runs changes and views: the pipeline (local), or shared mode.
	m  mode
	sh *sharedMode // shared mode, or nil

	watches watches
	stats   stats // see stats.go

	// Test hooks, nil outside tests: combine found nothing more to stage
	// (still holding the staging lock); combine left a submitted change to
	// the lock's holder; a leader acknowledged a group and is about to
	// retire it from the overlay.
	testDrained, testBusy, testRetire func()
}

// New loads the counters and returns an engine.
func New(ctx context.Context, c Config) (*Engine, error) {
	e := &Engine{max: c.Max, txn: c.Txn, shared: c.Shared, open: c.Open, openRO: c.OpenReadOnly,
		now: c.Now, every: c.ReopenEvery, log: c.Log, meta: c.Meta, blocks: c.Blocks, overlay: newOverlay()}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.every <= 0 {
		e.every = DefaultReopenEvery
	}
	e.life.init()
	e.separate = e.blocks != nil
	var closer io.Closer
	if e.open != nil {
		m, cl, err := e.open()
		if err != nil {
			return nil, err
		}
		e.meta, closer = m, cl
	}
	if e.meta == nil {
		return nil, fmt.Errorf("%w: nil metadata datastore", ErrInvalid)
	}
	e.setStores(e.meta, closer)
	fail := func(err error) (*Engine, error) {
		if e.closer != nil {
			err = errors.Join(err, e.closer.Close())
		}
		return nil, err
	}
	if e.txn || e.shared {
		if err := probeTxn(ctx, e.meta); err != nil {
			return fail(err)
		}
	}
	e.m = (*local)(e)
	if e.shared {
		e.sh = newSharedMode(e, c.Grace)
		e.m = e.sh
	}
	cs, err := readCounters(ctx, e.meta)
	if err != nil {
		return fail(err)
	}
	e.staged, e.queue.durable = cs, cs
	if e.sh != nil {
		e.sh.counts = cs
	}
	if Available(e.max, cs) == 0 && cs.Used+cs.Reserved > e.max {
		e.log.Warn("repo holds more than its quota", "max", e.max, "used", cs.Used, "reserved", cs.Reserved)
	}
	return e, nil
}

// probeTxn checks that ds's transactions work, not only that it has the
// method: wrappers such as keytransform have it and fail at first use.
func probeTxn(ctx context.Context, ds datastore.Batching) error {
	tds, ok := ds.(datastore.TxnDatastore)
	if !ok {
		return fmt.Errorf("%w: transactions on %T, which has none", ErrInvalid, ds)
	}
	txn, err := tds.NewTransaction(ctx, false)
	if err != nil {
		return fmt.Errorf("%w: transactions on %T: %w", ErrInvalid, ds, err)
	}
	defer txn.Discard(ctx)
	if _, err := txn.Get(ctx, UsedKey); err != nil && !errors.Is(err, datastore.ErrNotFound) {
		return fmt.Errorf("%w: transactions on %T: %w", ErrInvalid, ds, err)
	}
	return nil
}

func readCounters(ctx context.Context, ds datastore.Read) (Counters, error) {
	used, err := readCounter(ctx, ds, UsedKey)
	if err != nil {
		return Counters{}, err
	}
	reserved, err := readCounter(ctx, ds, ReservedKey)
	return Counters{Used: used, Reserved: reserved}, err
}

func readCounter(ctx context.Context, ds datastore.Read, key datastore.Key) (uint64, error) {
	b, err := ds.Get(ctx, key)
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("repo: read %s: %w", key, err)
	case len(b) != 8:
		return 0, fmt.Errorf("%w: %s holds %d bytes, want 8", ErrCorrupt, key, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

func encodeCounter(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// Max is the configured quota.
func (e *Engine) Max() uint64 { return e.max }

// Meta is the metadata datastore as the engine was given or opened it.
func (e *Engine) Meta() datastore.Batching {
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	return e.meta
}

// Counters returns the durable counters (in shared mode, those the last
// transaction read or left). It takes only a brief lock (the queue's, or
// shared mode's counters'), never held across staging or a write.
func (e *Engine) Counters() Counters { return e.m.counters() }

// mode runs an engine's changes and views: the commit pipeline (local) or
// shared mode (sharedMode), each with its own state and locks.
type mode interface {
	update(ctx context.Context, fn func(tx *Tx) error) error
	view(ctx context.Context, fn func(tx *Tx) error) error
	counters() Counters
}

// local is the commit pipeline as a mode: the engine's own staging, queue
// and overlay.
type local Engine

func (l *local) update(ctx context.Context, fn func(tx *Tx) error) error {
	return (*Engine)(l).update(ctx, fn)
}
func (l *local) view(ctx context.Context, fn func(tx *Tx) error) error {
	return (*Engine)(l).view(ctx, fn)
}
func (l *local) counters() Counters { return l.queue.counters() }

// Conflicts counts the transactions shared mode had to retry.
func (e *Engine) Conflicts() uint64 {
	if e.sh == nil {
		return 0
	}
	return e.sh.conflicts.Load()
}

// Close waits for calls in flight, refuses every later one with ErrClosed
// and closes the embedded database, if any.
func (e *Engine) Close() error {
	if !e.life.close() {
		return nil
	}
	e.dbMu.Lock()
	defer e.dbMu.Unlock()
	if e.closer != nil {
		if err := e.closer.Close(); err != nil {
			return fmt.Errorf("repo: close: %w", err)
		}
	}
	return nil
}

// Update stages fn's change and waits until it is durable. fn runs under
// the staging lock; it reads through tx and stages writes on it, and
// returns an error to abandon the change (nothing is written). ctx is
// honoured until the change joins the commit queue; after that Update
// waits for the group's write, whose outcome it returns.
func (e *Engine) Update(ctx context.Context, fn func(tx *Tx) error) error {
	if !e.life.enter() {
		return ErrClosed
	}
	defer e.life.leave()
	return e.m.update(ctx, fn)
}

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
// The overlay keeps a durable group's writes until the next group is
// durable, and nothing once the engine is idle: a caller's next change
// reads what its last one wrote from memory.
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
package engine

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/syndtr/goleveldb/leveldb"

	"github.com/stowage/stowage/internal/ldb"
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
type Engine struct {
	max      uint64
	txn      bool
	shared   bool
	separate bool // blocks live in their own datastore
	ordered  bool // the embedded LevelDB: the queue's batch is built as changes queue
	open     func() (datastore.Batching, io.Closer, error)
	openRO   func() (datastore.Batching, io.Closer, error)
	now      func() time.Time
	every    time.Duration
	log      *slog.Logger

	life lifetime

	// gate is held shared by every change from staging until it is
	// durable, and exclusively by View, which so sees no change in flight.
	gate sync.RWMutex

	// dbMu is held shared around datastore I/O and exclusively while the
	// embedded database is reopened.
	dbMu   sync.RWMutex
	meta   datastore.Batching
	blocks datastore.Batching
	closer io.Closer

	subMu sync.Mutex
	sub   []*change // submitted, waiting for whoever holds stageMu

	stageMu sync.Mutex // serialises staging; never held across a write
	staged  Counters   // after every queued change
	overlay map[okey]pending
	// overlayKeys are the metadata keys of the overlay, sorted, for Scan.
	overlayKeys []string
	retired     [][]*change // durable groups still in the overlay
	seq         uint64
	last        *change // the last change queued (maybe durable since)
	failed      error   // set by a write of unknown outcome
	gen         uint64
	// reopened is when the embedded database was last reopened after a
	// write of unknown outcome; a change retries a failed reopen once
	// every has passed since.
	reopened time.Time

	// queueMu guards the commit queue; it is held only briefly, never
	// across staging or a write. Lock order: stageMu, then queueMu.
	queueMu sync.Mutex
	queue   []*change
	pending *leveldb.Batch // the queue's writes, when ordered
	spare   *leveldb.Batch // a written batch, reset for the next group
	leading bool           // a caller is writing groups
	durable Counters       // after the last durable group (in shared mode: the last change)

	watchMu sync.Mutex
	watches map[*Watch]struct{}

	conflicts atomic.Uint64
	stats     stats // see stats.go

	// sharedMu serialises the changes of shared mode instead of stageMu:
	// a semaphore, so that waiting for it honours ctx.
	sharedMu chan struct{}
	grace    time.Duration // shared mode: bound of a discard

	// Test hooks, nil outside tests: combine found nothing more to stage
	// (still holding the staging lock); combine left a submitted change to
	// the lock's holder.
	testDrained, testBusy func()
}

// okey names a key in the metadata store or the block store.
type okey struct {
	blocks bool
	key    string
}

type pending struct {
	value []byte
	del   bool
	seq   uint64
}

type op struct {
	okey
	value []byte
	del   bool
}

type change struct {
	ctx      context.Context
	fn       func(tx *Tx) error
	ops      []op
	counters Counters
	seq      uint64
	done     chan struct{}
	lead     chan struct{}
	err      error
	// after: for a change that writes nothing, the last change staged
	// before it, whose outcome is its own (what it read may be that one's
	// or an earlier one's writes, not yet durable).
	after *change
}

// result is the outcome of c once c.done is closed: a change that wrote
// nothing succeeds only once every change staged before it is durable.
func (c *change) result() error {
	if c.err != nil || c.after == nil {
		return c.err
	}
	<-c.after.done
	if c.after.err != nil {
		return fmt.Errorf("repo: a change staged before this one failed: %w", c.after.err)
	}
	return nil
}

// New loads the counters and returns an engine.
func New(ctx context.Context, c Config) (*Engine, error) {
	e := &Engine{max: c.Max, txn: c.Txn, shared: c.Shared, open: c.Open, openRO: c.OpenReadOnly,
		now: c.Now, every: c.ReopenEvery, log: c.Log, meta: c.Meta, blocks: c.Blocks, overlay: map[okey]pending{}}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.every <= 0 {
		e.every = DefaultReopenEvery
	}
	e.sharedMu, e.grace = make(chan struct{}, 1), c.Grace
	if e.grace <= 0 {
		e.grace = DefaultGrace
	}
	e.life.init()
	if e.open != nil {
		m, cl, err := e.open()
		if err != nil {
			return nil, err
		}
		e.meta, e.closer = m, cl
	}
	if e.meta == nil {
		return nil, fmt.Errorf("%w: nil metadata datastore", ErrInvalid)
	}
	e.separate = e.blocks != nil
	_, isLDB := e.meta.(*ldb.DS)
	e.ordered = isLDB && !e.separate && !e.txn && !e.shared
	if !e.separate {
		e.blocks = e.meta
	}
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
	cs, err := readCounters(ctx, e.meta)
	if err != nil {
		return fail(err)
	}
	e.staged, e.durable = cs, cs
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

// Counters returns the durable counters. It takes only the queue's lock,
// which is never held across staging or a write.
func (e *Engine) Counters() Counters {
	e.queueMu.Lock()
	defer e.queueMu.Unlock()
	return e.durable
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
	if e.shared {
		return e.updateShared(ctx, fn, false)
	}
	e.gate.RLock()
	defer e.gate.RUnlock()

	c := &change{ctx: ctx, fn: fn, done: make(chan struct{}), lead: make(chan struct{})}
	e.subMu.Lock()
	e.sub = append(e.sub, c)
	e.subMu.Unlock()
	e.combine()

	select {
	case <-c.done:
		return c.result()
	case <-c.lead:
	}
	e.writeGroups()
	<-c.done
	return c.err
}

// combine stages every submitted change, unless another goroutine holds
// the staging lock: that one stages them (flat combining). Callers woken
// together by a durable group so do not hand the lock to each other one
// by one, and each sleeps once, until its change is durable. Whoever
// releases the staging lock combines what was submitted meanwhile
// (unlockStage), so no change is left behind.
func (e *Engine) combine() {
	for e.stageMu.TryLock() {
		for {
			e.subMu.Lock()
			batch := e.sub
			e.sub = nil
			e.subMu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, c := range batch {
				e.stageOne(c)
			}
		}
		if e.testDrained != nil {
			e.testDrained()
		}
		e.stageMu.Unlock()
		e.subMu.Lock()
		n := len(e.sub)
		e.subMu.Unlock()
		if n == 0 {
			return
		}
	}
	if e.testBusy != nil {
		e.testBusy()
	}
}

// unlockStage releases the staging lock and stages what was submitted
// while it was held.
func (e *Engine) unlockStage() {
	e.stageMu.Unlock()
	e.combine()
}

// stageOne stages c and queues it, or ends it if it failed or has nothing
// to write. The first change queued while nobody leads is told to lead.
// Called with stageMu held.
func (e *Engine) stageOne(c *change) {
	queued, after, err := e.stage(c)
	if err != nil || !queued {
		c.err = err
		close(c.done)
		runAfter(after)
		return
	}
	e.queueMu.Lock()
	e.queue = append(e.queue, c)
	if e.ordered {
		if e.pending == nil {
			e.pending, e.spare = e.spare, nil
			if e.pending == nil {
				e.pending = new(leveldb.Batch)
			}
		}
		for _, o := range c.ops {
			if o.del {
				e.pending.Delete(e.keyOf(o).Bytes())
			} else {
				e.pending.Put(e.keyOf(o).Bytes(), o.value)
			}
		}
	}
	lead := !e.leading
	e.leading = true
	e.queueMu.Unlock()
	// AfterStage's functions run once the change is in the queue (still
	// under the staging lock): whoever they signal may count on the next
	// group's holding it.
	runAfter(after)
	if lead {
		close(c.lead)
	}
}

func runAfter(fs []func()) {
	for _, f := range fs {
		f()
	}
}

// stage runs c's function on a Tx and records what it writes in c and the
// overlay; queued is false when there is nothing to write. after are the
// change's AfterStage functions, for the caller to run once the change is
// queued (or ended, if it writes nothing). Called with stageMu held.
func (e *Engine) stage(c *change) (queued bool, after []func(), err error) {
	ctx, fn := c.ctx, c.fn
	c.ctx, c.fn = nil, nil // the change lives until durable; these need not
	if err := ctx.Err(); err != nil {
		return false, nil, err
	}
	if e.failed != nil && e.open != nil && e.now().Sub(e.reopened) >= e.every {
		// A reopen failed (a full disk): try again, at most once every
		// e.every. Nothing is queued or being written while e.failed is
		// set, so the reopen takes nothing from anyone.
		e.queueMu.Lock()
		e.recover()
		e.queueMu.Unlock()
	}
	tx := &Tx{e: e, ctx: ctx, c: e.staged, base: e.staged}
	if err := run(fn, tx); err != nil {
		return false, nil, err
	}
	if err := ctx.Err(); err != nil {
		return false, nil, err
	}
	if tx.Dirty() && e.failed != nil {
		return false, nil, e.failed
	}
	if !tx.Dirty() {
		c.after = e.last
		return false, tx.after, nil
	}
	e.seq++
	e.last = c
	c.ops, c.counters, c.seq = tx.ops, tx.c, e.seq
	for _, o := range c.ops {
		if i, found := slices.BinarySearch(e.overlayKeys, o.key); !found && !o.blocks {
			e.overlayKeys = slices.Insert(e.overlayKeys, i, o.key)
		}
		e.overlay[o.okey] = pending{value: o.value, del: o.del, seq: c.seq}
	}
	e.staged = tx.c
	e.notifyWatches(c.ops)
	return true, tx.after, nil
}

// ErrPanic wraps a panic in a change's function: the change is abandoned
// and the staging lock released.
var ErrPanic = errors.New("repo: change panicked")

func run(fn func(tx *Tx) error, tx *Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", ErrPanic, p)
		}
	}()
	return fn(tx)
}

// keepLead is how many queued changes make a leader write the next group
// itself rather than hand the lead on: its own caller's next change then
// matters little to the group, and the hand-off (a goroutine woken between
// two writes) is saved. With fewer changes queued the leader's caller
// counts, and the lead moves on.
const keepLead = 8

// writeGroups writes the queue as one group, and the next while at least
// keepLead changes are queued; then it hands the lead to the first change
// still queued (or gives it up).
func (e *Engine) writeGroups() {
	for {
		e.queueMu.Lock()
		group, batch := e.queue, e.pending
		e.queue, e.pending = nil, nil
		base := e.durable
		e.queueMu.Unlock()

		last := group[len(group)-1]
		var err error
		var unknown bool
		t := e.stats.begin()
		if batch != nil {
			err, unknown = e.writeOrdered(batch, base, last.counters)
		} else {
			err, unknown = e.write(group, base, last.counters)
		}
		e.stats.end(t, len(group), err)
		if err != nil {
			e.fail(group, err, unknown)
			return
		}
		e.queueMu.Lock()
		e.durable = last.counters
		more := len(e.queue) >= keepLead
		var next *change
		switch {
		case more:
		case len(e.queue) > 0:
			next = e.queue[0]
		default:
			e.leading = false
		}
		e.queueMu.Unlock()
		if next != nil {
			close(next.lead)
		}
		for _, c := range group {
			close(c.done)
		}
		e.retire(group, !more && next == nil)
		if !more {
			return
		}
	}
}

// retire drops from the overlay what a durable group wrote, one group
// late: a caller's next change, staged while the following group is being
// written, then reads what its last change wrote from memory rather than
// from the datastore (the values are the same). When the engine goes idle
// (no change queued) the overlay is emptied, so it never holds more than
// the last two groups' writes.
func (e *Engine) retire(group []*change, idle bool) {
	e.stageMu.Lock()
	defer e.unlockStage()
	e.retired = append(e.retired, group)
	keep := 1
	if idle {
		keep = 0
	}
	for len(e.retired) > keep {
		for _, c := range e.retired[0] {
			for _, o := range c.ops {
				if p, ok := e.overlay[o.okey]; ok && p.seq <= c.seq {
					delete(e.overlay, o.okey)
				}
			}
		}
		e.retired[0] = nil
		e.retired = e.retired[1:]
	}
	e.overlayKeys = slices.DeleteFunc(e.overlayKeys, func(k string) bool {
		_, ok := e.overlay[okey{key: k}]
		return !ok
	})
}

// fail ends a group whose write failed: its changes fail, and so does every
// change queued behind it (they were checked against it), unwritten.
func (e *Engine) fail(group []*change, err error, unknown bool) {
	e.stageMu.Lock()
	e.queueMu.Lock()
	if _, ok := err.(*blocksAfterMeta); ok {
		// The counters on disk are the group's: memory follows them,
		// so that Quota and Verify tell what a reopened repo will read.
		e.durable = group[len(group)-1].counters
	}
	cause := err
	if unknown {
		e.failed = e.writeFailed(err)
		err = e.failed
	}
	failed := e.queue
	e.queue, e.pending = nil, nil
	e.leading = false
	clear(e.overlay)
	e.overlayKeys = e.overlayKeys[:0]
	e.retired = nil
	e.last = nil // it failed; what is staged from now on reads the datastore
	e.staged = e.durable
	e.gen++
	if unknown && e.open != nil {
		e.recover()
		if r, ok := e.failed.(*reopenError); ok {
			// The reopen failed too: the group learns that, not that
			// the repo goes on, and still the write's own cause.
			withWrite := *r
			withWrite.write = cause
			err = &withWrite
		}
	}
	for _, c := range group {
		c.err = err
	}
	for _, c := range failed {
		c.err = fmt.Errorf("repo: an earlier change in the commit queue failed: %w", err)
	}
	e.queueMu.Unlock()
	e.unlockStage()
	for _, c := range group {
		close(c.done)
	}
	for _, c := range failed {
		close(c.done)
	}
}

// recover reopens the embedded database after a write of unknown outcome
// and reloads the counters, so that memory matches whatever the journal
// replays. When the reopen fails (a full disk: replaying the journal
// writes a table), writes stay refused with an error that names the
// cause, the database is opened read-only so that reads go on, and the
// next change after e.every tries again. Called with stageMu and queueMu
// held, nothing queued.
func (e *Engine) recover() {
	e.dbMu.Lock()
	defer e.dbMu.Unlock()
	e.reopened = e.now()
	e.log.Warn("write of unknown outcome; reopening the database", "err", e.failed)
	if err := e.closer.Close(); err != nil {
		e.log.Error("close after failed write", "err", err)
	}
	m, cl, err := e.open()
	if err == nil {
		cs, err := readCounters(context.Background(), m)
		if err != nil {
			// A corrupt counter: reads go on, writes stay refused.
			e.failed = &reopenError{cause: err, every: e.every, reads: true}
			e.log.Error("reload counters after failed write; writes stay refused", "err", err)
			e.meta, e.closer = m, cl
			if !e.separate {
				e.blocks = m
			}
			return
		}
		e.use(m, cl, cs)
		e.failed = nil
		e.log.Info("database reopened", "used", cs.Used, "reserved", cs.Reserved)
		return
	}
	cause := err
	failed := &reopenError{cause: cause, every: e.every}
	e.failed = failed
	e.log.Error("reopen after failed write; writes stay refused until a reopen succeeds", "err", cause, "retry", e.every)
	e.meta, e.closer = closedStore{e.failed}, io.NopCloser(nil)
	if !e.separate {
		e.blocks = e.meta
	}
	if e.openRO == nil {
		return
	}
	m, cl, err = e.openRO()
	if err != nil {
		e.log.Error("open read-only after a failed reopen; reads fail too", "err", err)
		return
	}
	cs, err := readCounters(context.Background(), m)
	if err != nil {
		e.log.Error("reload counters read-only; reads fail too", "err", err)
		_ = cl.Close()
		return
	}
	e.use(m, cl, cs)
	failed.reads = true
}

// use makes m the metadata datastore (and the block store, if blocks share
// it) with counters cs. Called with stageMu, queueMu and dbMu held.
func (e *Engine) use(m datastore.Batching, cl io.Closer, cs Counters) {
	e.meta, e.closer = m, cl
	if !e.separate {
		e.blocks = m
	}
	e.staged, e.durable = cs, cs
	e.gen++
}

// write makes a group durable. unknown reports a failure after which the
// datastore may or may not hold the group.
func (e *Engine) write(group []*change, base, final Counters) (err error, unknown bool) {
	ctx := context.Background() // one caller's ctx must not fail the others
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()

	var ops [][]op
	for _, c := range group {
		ops = append(ops, c.ops)
	}
	meta, blockPuts, blockDels := e.plan(ops, base, final)
	// With a separate block store the two stores cannot change atomically
	// together: blocks are deleted before and written after the metadata
	// that counts them, so a crash in between over-counts Used, never
	// under-counts it.
	if err, unknown := e.commit(ctx, e.blocks, blockDels, false); err != nil {
		return err, unknown
	}
	if err, unknown := e.commit(ctx, e.meta, meta, e.txn); err != nil {
		return err, unknown || len(blockDels) > 0
	}
	if err, _ := e.commit(ctx, e.blocks, blockPuts, false); err != nil {
		return &blocksAfterMeta{err}, true
	}
	return nil, false
}

// writeOrdered writes a group whose LevelDB batch was built as its changes
// queued (in order, so the last write of a key wins as in plan), adding
// the counters once.
func (e *Engine) writeOrdered(b *leveldb.Batch, base, final Counters) (err error, unknown bool) {
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	d, ok := e.meta.(*ldb.DS)
	if !ok {
		// Only a reopen that failed replaces the database (with
		// closedStore), and then every change is refused before it queues.
		return fmt.Errorf("repo: commit: %w", ErrWriteFailed), false
	}
	if final.Used != base.Used {
		b.Put(UsedKey.Bytes(), encodeCounter(final.Used))
	}
	if final.Reserved != base.Reserved {
		b.Put(ReservedKey.Bytes(), encodeCounter(final.Reserved))
	}
	if err := d.Write(b); err != nil {
		return fmt.Errorf("repo: commit: %w", err), true
	}
	b.Reset() // goleveldb keeps no reference to a written batch
	e.queueMu.Lock()
	e.spare = b
	e.queueMu.Unlock()
	return nil, false
}

// plan sorts the writes of one or more changes, in order, into what goes
// to the metadata store (the counters too, if they moved) and what to the
// block store. The last write of each key wins, as if the changes ran one
// by one; so a datastore whose batches do not keep their order (a map of
// keys, as go-datastore's basic batch is) gets the same result.
func (e *Engine) plan(changes [][]op, base, final Counters) (meta, blockPuts, blockDels []op) {
	var ops []op
	if len(changes) == 1 {
		ops = changes[0] // a Tx writes each key once
	} else {
		last := map[okey]int{}
		for _, c := range changes {
			for _, o := range c {
				if i, seen := last[o.okey]; seen {
					ops[i] = o
				} else {
					last[o.okey] = len(ops)
					ops = append(ops, o)
				}
			}
		}
	}
	meta = make([]op, 0, len(ops)+2)
	for _, o := range ops {
		switch {
		case !o.blocks || !e.separate:
			meta = append(meta, o)
		case o.del:
			blockDels = append(blockDels, o)
		default:
			blockPuts = append(blockPuts, o)
		}
	}
	if final.Used != base.Used {
		meta = append(meta, op{okey: okey{key: UsedKey.String()}, value: encodeCounter(final.Used)})
	}
	if final.Reserved != base.Reserved {
		meta = append(meta, op{okey: okey{key: ReservedKey.String()}, value: encodeCounter(final.Reserved)})
	}
	return meta, blockPuts, blockDels
}

// stageOps stages ops on w.
func (e *Engine) stageOps(ctx context.Context, w datastore.Write, ops []op) error {
	for _, o := range ops {
		k := e.keyOf(o)
		var err error
		if o.del {
			err = w.Delete(ctx, k)
		} else {
			err = w.Put(ctx, k, o.value)
		}
		if err != nil {
			return fmt.Errorf("repo: stage %s: %w", k, err)
		}
	}
	return nil
}

// keyOf is the key o writes in its datastore.
func (e *Engine) keyOf(o op) datastore.Key {
	k := datastore.RawKey(o.key)
	if o.blocks {
		k = e.blockKey(k)
	}
	return k
}

// blocksAfterMeta is a failed write of blocks whose metadata (and counters)
// were committed: the counters on disk are the group's.
type blocksAfterMeta struct{ err error }

func (b *blocksAfterMeta) Error() string { return b.err.Error() }
func (b *blocksAfterMeta) Unwrap() error { return b.err }

// commit writes ops to ds in one batch or transaction.
func (e *Engine) commit(ctx context.Context, ds datastore.Batching, ops []op, txn bool) (err error, unknown bool) {
	if len(ops) == 0 {
		return nil, false
	}
	var w datastore.Write
	var commit func(context.Context) error
	var discard func()
	if txn {
		t, err := ds.(datastore.TxnDatastore).NewTransaction(ctx, false)
		if err != nil {
			return fmt.Errorf("repo: begin transaction: %w", err), false
		}
		w, commit, discard = t, t.Commit, func() { t.Discard(ctx) }
	} else {
		b, err := ds.Batch(ctx)
		if err != nil {
			return fmt.Errorf("repo: begin batch: %w", err), false
		}
		w, commit, discard = b, b.Commit, func() { discardBatch(ctx, b) }
	}
	if err := e.stageOps(ctx, w, ops); err != nil {
		discard()
		return err, false
	}
	if err := commit(ctx); err != nil {
		if txn {
			discard()
		} else {
			discardBatch(ctx, w)
		}
		return fmt.Errorf("repo: commit: %w", err), true
	}
	return nil, false
}

// discardBatch releases an uncommitted batch through the store's own
// cancel or discard, where it has one (flatfs leaves temporary files and
// badger logs a warning otherwise).
func discardBatch(ctx context.Context, b any) {
	switch b := b.(type) {
	case interface{ Discard(context.Context) }:
		b.Discard(ctx)
	case interface{ Discard(context.Context) error }:
		_ = b.Discard(ctx)
	case interface{ Cancel() error }:
		_ = b.Cancel()
	case interface{ Discard() }:
		b.Discard()
	}
}

// View runs fn with no change in flight: every staged change is durable
// and none starts until fn returns. The Tx it gets reads the datastore and
// must not write.
func (e *Engine) View(ctx context.Context, fn func(tx *Tx) error) error {
	if !e.life.enter() {
		return ErrClosed
	}
	defer e.life.leave()
	if e.shared {
		// One read-only transaction: a consistent snapshot of the database
		// (retried like any other, should the database roll it back).
		return e.updateShared(ctx, fn, true)
	}
	e.gate.Lock()
	defer e.gate.Unlock()
	e.stageMu.Lock()
	defer e.stageMu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	tx := &Tx{e: e, ctx: ctx, c: e.staged, base: e.staged, readOnly: true}
	return fn(tx)
}

// DiskCounters reads the counters from the datastore. Call it from View.
func (tx *Tx) DiskCounters() (Counters, error) {
	tx.e.dbMu.RLock()
	defer tx.e.dbMu.RUnlock()
	return readCounters(tx.ctx, tx.metaStore())
}

// Get reads a metadata record outside any change (what is durable).
func (e *Engine) Get(ctx context.Context, key datastore.Key) ([]byte, error) {
	if !e.life.enter() {
		return nil, ErrClosed
	}
	defer e.life.leave()
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	return e.meta.Get(ctx, key)
}

// GetBlock reads a block outside any change.
func (e *Engine) GetBlock(ctx context.Context, key datastore.Key) ([]byte, error) {
	if !e.life.enter() {
		return nil, ErrClosed
	}
	defer e.life.leave()
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	return e.blocks.Get(ctx, e.blockKey(key))
}

// HasBlock reports whether a block is durable.
func (e *Engine) HasBlock(ctx context.Context, key datastore.Key) (bool, error) {
	if !e.life.enter() {
		return false, ErrClosed
	}
	defer e.life.leave()
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	return e.blocks.Has(ctx, e.blockKey(key))
}

// Scan calls fn for every durable metadata record under prefix, in key
// order. A read error ends the scan with that error.
func (e *Engine) Scan(ctx context.Context, prefix datastore.Key, keysOnly bool, fn func(key string, value []byte) error) error {
	if !e.life.enter() {
		return ErrClosed
	}
	defer e.life.leave()
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	return scan(ctx, e.meta, prefix, keysOnly, byKey, func(en query.Entry) error { return fn(en.Key, en.Value) })
}

// byKey asks a scan for key order.
var byKey = []query.Order{query.OrderByKey{}}

// scan calls fn for every entry under prefix, in the given orders (none:
// the store's).
func scan(ctx context.Context, ds datastore.Read, prefix datastore.Key, keysOnly bool, orders []query.Order, fn func(query.Entry) error) error {
	q := query.Query{Prefix: prefix.String(), KeysOnly: keysOnly, ReturnsSizes: keysOnly, Orders: orders}
	for en, err := range datastore.QueryIter(ctx, ds, q) {
		if err != nil {
			return fmt.Errorf("repo: scan %s: %w", prefix, err)
		}
		if err := fn(en); err != nil {
			return err
		}
	}
	return nil
}

func (e *Engine) blockKey(key datastore.Key) datastore.Key {
	if e.separate {
		return key
	}
	return BlocksPrefix.Child(key)
}

// ScanBlocks calls fn with the key (as the caller named it) and size of
// every stored block. Call it from View.
func (tx *Tx) ScanBlocks(fn func(key datastore.Key, size uint64) error) error {
	e := tx.e
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	prefix := datastore.NewKey("/")
	if !e.separate {
		prefix = BlocksPrefix
	}
	blocks := tx.blockStore()
	return scan(tx.ctx, blocks, prefix, true, nil, func(en query.Entry) error {
		size := en.Size
		if size < 0 {
			n, err := blocks.GetSize(tx.ctx, datastore.RawKey(en.Key))
			if err != nil {
				return fmt.Errorf("repo: size of block %s: %w", en.Key, err)
			}
			size = n
		}
		k := en.Key
		if !e.separate {
			k = strings.TrimPrefix(k, BlocksPrefix.String())
		}
		return fn(datastore.RawKey(k), uint64(size))
	})
}

// closedStore stands in for a database that could not be reopened; every
// call fails with why.
type closedStore struct{ err error }

var _ datastore.Batching = closedStore{}

func (c closedStore) Get(context.Context, datastore.Key) ([]byte, error) { return nil, c.err }
func (c closedStore) Has(context.Context, datastore.Key) (bool, error)   { return false, c.err }
func (c closedStore) GetSize(context.Context, datastore.Key) (int, error) {
	return 0, c.err
}
func (c closedStore) Query(context.Context, query.Query) (query.Results, error) {
	return nil, c.err
}
func (c closedStore) Put(context.Context, datastore.Key, []byte) error { return c.err }
func (c closedStore) Delete(context.Context, datastore.Key) error      { return c.err }
func (c closedStore) Sync(context.Context, datastore.Key) error        { return c.err }
func (c closedStore) Close() error                                     { return nil }
func (c closedStore) Batch(context.Context) (datastore.Batch, error)   { return nil, c.err }

// Watch notes whether a change staged since it was made put a metadata
// record under its prefix: a caller that works through the records under a
// prefix in several changes, from where the last one stopped (a big
// reservation's blocks), learns whether one was added behind it.
type Watch struct {
	e      *Engine
	prefix string
	hit    atomic.Bool
}

// Watch starts a watch of the puts under prefix. In shared mode, where
// other processes change the datastore unseen, the watch is hit from the
// start. Stop it when done.
func (e *Engine) Watch(prefix datastore.Key) *Watch {
	w := &Watch{e: e, prefix: prefix.String() + "/"}
	if e.shared {
		w.hit.Store(true)
		return w
	}
	e.watchMu.Lock()
	defer e.watchMu.Unlock()
	if e.watches == nil {
		e.watches = map[*Watch]struct{}{}
	}
	e.watches[w] = struct{}{}
	return w
}

// Hit reports whether a change staged since the watch started put a
// record under its prefix (a change that failed since may count too).
// Called from a change, it accounts for every change staged before.
func (w *Watch) Hit() bool { return w.hit.Load() }

// Stop ends the watch.
func (w *Watch) Stop() {
	w.e.watchMu.Lock()
	defer w.e.watchMu.Unlock()
	delete(w.e.watches, w)
}

// notifyWatches marks the watches whose prefix ops put a record under.
// Called with stageMu held.
func (e *Engine) notifyWatches(ops []op) {
	e.watchMu.Lock()
	defer e.watchMu.Unlock()
	for w := range e.watches {
		if w.hit.Load() {
			continue
		}
		for _, o := range ops {
			if !o.blocks && !o.del && strings.HasPrefix(o.key, w.prefix) {
				w.hit.Store(true)
				break
			}
		}
	}
}

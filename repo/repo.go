package repo

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/ipfs/go-datastore"
	leveldb "github.com/ipfs/go-ds-leveldb"
)

// Keys of the quota counters in the metadata datastore. Each holds an 8-byte
// big-endian number.
var (
	UsedKey     = datastore.NewKey("/meta/quota/used")
	ReservedKey = datastore.NewKey("/meta/quota/reserved")
)

// blocksPrefix namespaces blocks when they share the metadata datastore, so a
// block key can never overwrite a metadata record.
var blocksPrefix = datastore.NewKey("/blocks")

// Repo is a byte quota and a block store over a go-datastore.
//
// Every change to the counters is persisted before it becomes visible in
// memory, and a failed write leaves both memory and the datastore as they
// were. A Repo is safe for concurrent use: writers are serialised (so the
// counters on disk are written in the order they change), readers of the
// quota never wait for a write in flight.
type Repo struct {
	meta   datastore.Batching
	blocks datastore.Batching
	shared bool // blocks live in meta, under blocksPrefix
	closer io.Closer
	opts   options
	log    *slog.Logger

	writeMu sync.Mutex // serialises writers; held across datastore I/O
	closed  bool       // guarded by writeMu

	queueMu sync.Mutex       // guards queue
	queue   []*pendingChange // changes waiting for the next writer (see Commit)

	quotaMu sync.RWMutex // guards quota; held only to copy it
	quota   Quota
}

// New opens a repo over meta, which holds the quota counters (and the
// records of packages such as reservations). It loads the counters, so a repo
// reopened on the same datastore carries on where it left off. The caller
// keeps ownership of meta: Close does not close it.
func New(ctx context.Context, meta datastore.Batching, opts ...Option) (*Repo, error) {
	if meta == nil {
		return nil, fmt.Errorf("%w: nil metadata datastore", ErrInvalidOption)
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.transactions {
		if _, ok := meta.(datastore.TxnDatastore); !ok {
			return nil, fmt.Errorf("%w: WithTransactions on %T, which has no transactions", ErrInvalidOption, meta)
		}
	}
	r := &Repo{meta: meta, blocks: o.blocks, opts: o, log: o.logger}
	if r.blocks == nil {
		r.blocks, r.shared = meta, true
	}
	used, err := readCounter(ctx, meta, UsedKey)
	if err != nil {
		return nil, err
	}
	reserved, err := readCounter(ctx, meta, ReservedKey)
	if err != nil {
		return nil, err
	}
	r.quota = Quota{Max: o.max, Used: used, Reserved: reserved}
	if r.quota.Available() == 0 && used+reserved > o.max {
		r.log.Warn("repo holds more than its quota", "max", o.max, "used", used, "reserved", reserved)
	}
	return r, nil
}

// Open opens (creating if needed) a repo on the embedded LevelDB in dir.
// Writes are fsynced unless WithNoSync is given. Close closes the database.
func Open(ctx context.Context, dir string, opts ...Option) (*Repo, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: empty directory", ErrInvalidOption)
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	db, err := leveldb.NewDatastore(dir, &leveldb.Options{NoSync: o.noSync})
	if err != nil {
		return nil, fmt.Errorf("repo: open leveldb in %s: %w", dir, err)
	}
	r, err := New(ctx, db, opts...)
	if err != nil {
		return nil, errors.Join(err, db.Close())
	}
	r.closer = db
	return r, nil
}

// Close waits for writes in flight and closes the embedded database if Open
// created it. Every later operation fails with ErrClosed. Close is idempotent.
func (r *Repo) Close() error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	if r.closer != nil {
		if err := r.closer.Close(); err != nil {
			return fmt.Errorf("repo: close: %w", err)
		}
	}
	return nil
}

// Datastore returns the metadata datastore. Writing the quota keys through it
// behind the repo's back breaks the accounting; other keys are free to use.
func (r *Repo) Datastore() datastore.Batching { return r.meta }

// Quota returns a snapshot of the counters.
func (r *Repo) Quota() Quota {
	r.quotaMu.RLock()
	defer r.quotaMu.RUnlock()
	return r.quota
}

// Available returns Max - Used - Reserved (zero when over quota).
func (r *Repo) Available() uint64 { return r.Quota().Available() }

// HasAvailable reports whether n more bytes fit: exactly when Reserve(n)
// would succeed, were nothing else to change in between.
func (r *Repo) HasAvailable(n uint64) bool { return r.Quota().fits(n) }

// Reserve adds n to Reserved, failing with ErrQuotaNotEnough when
// Used+Reserved+n would exceed Max.
func (r *Repo) Reserve(ctx context.Context, n uint64) error {
	if err := r.Commit(ctx, Change{Reserve: n}); err != nil {
		return fmt.Errorf("reserve %d bytes: %w", n, err)
	}
	return nil
}

// Release subtracts n from Reserved, failing with ErrReleaseExceedsReserved
// when n > Reserved.
func (r *Repo) Release(ctx context.Context, n uint64) error {
	if err := r.Commit(ctx, Change{Release: n}); err != nil {
		return fmt.Errorf("release %d bytes: %w", n, err)
	}
	return nil
}

// Record is one key and value to put in the metadata datastore.
type Record struct {
	Key   datastore.Key
	Value []byte
}

// Change is a set of metadata writes committed atomically together with a
// change of Reserved. Packages that keep their own records of promised bytes
// (reservations) use it so that their records and the counter can never
// disagree, even across a crash.
type Change struct {
	Reserve uint64          // bytes added to Reserved
	Release uint64          // bytes taken from Reserved (applied first)
	Put     []Record        // records to write
	Delete  []datastore.Key // keys to delete
}

// Commit checks c against the quota and writes its records and the new
// Reserved counter in one atomic batch (or transaction, see
// WithTransactions). Memory changes only after the write succeeded; on any
// error neither memory nor the datastore has changed.
//
// Concurrent commits are grouped: while one batch is being written (and
// fsynced), the changes that arrive queue up and the next writer validates
// them one by one, in arrival order, and writes all that pass in a single
// batch. Each change is still accepted or refused exactly as if it ran
// alone after the ones before it, but many callers share one fsync. If a
// group's write fails, every change in it fails and none is applied.
//
// Commit must not be used to write the quota keys themselves.
func (r *Repo) Commit(ctx context.Context, c Change) error {
	// Fast path: nobody is writing or waiting, so commit c alone without
	// queueing it.
	if r.writeMu.TryLock() {
		r.queueMu.Lock()
		idle := len(r.queue) == 0
		r.queueMu.Unlock()
		if idle {
			p := pendingChange{change: c}
			r.commitGroup(ctx, []*pendingChange{&p})
			r.writeMu.Unlock()
			return p.err
		}
		r.writeMu.Unlock()
	}

	p := &pendingChange{change: c, done: make(chan struct{})}
	r.queueMu.Lock()
	r.queue = append(r.queue, p)
	r.queueMu.Unlock()

	r.writeMu.Lock()
	select {
	case <-p.done: // an earlier writer committed our change
	default:
		r.queueMu.Lock()
		group := r.queue
		r.queue = nil
		r.queueMu.Unlock()
		r.commitGroup(ctx, group)
	}
	r.writeMu.Unlock()
	return p.err
}

// pendingChange is a Change waiting for a writer, and then its outcome.
type pendingChange struct {
	change   Change
	accepted bool          // it fits the quota: it is in the group's batch
	err      error         // the outcome, set before done is closed
	done     chan struct{} // closed once err is set; nil when nobody waits
}

// commitGroup validates a group of changes in order and writes those that
// fit in one batch, setting each change's outcome. Called with writeMu held.
func (r *Repo) commitGroup(ctx context.Context, group []*pendingChange) {
	r.decide(ctx, group)
	for _, p := range group {
		if p.done != nil {
			close(p.done)
		}
	}
}

// decide sets the outcome of every change of a group; see commitGroup.
func (r *Repo) decide(ctx context.Context, group []*pendingChange) {
	if r.closed {
		for _, p := range group {
			p.err = ErrClosed
		}
		return
	}
	start := r.Quota()
	q := start
	accepted := 0
	for _, p := range group {
		next, err := q.apply(p.change.Reserve, p.change.Release)
		if err != nil {
			p.err = err
			continue
		}
		q, p.accepted = next, true
		accepted++
	}
	if accepted == 0 {
		return
	}
	puts, deletes := merge(group)
	if q.Reserved != start.Reserved {
		puts = append(puts, Record{ReservedKey, encodeCounter(q.Reserved)})
	}
	if len(group) > 1 {
		// One caller's cancelled context must not fail the others' changes.
		ctx = context.WithoutCancel(ctx)
	}
	err := r.write(ctx, puts, deletes)
	if err == nil {
		r.setQuota(q)
	}
	for _, p := range group {
		if p.accepted {
			p.err = err
		}
	}
}

// merge returns the records of the accepted changes of a group. The result's
// capacity is exactly its length, so appending to it never writes into a
// caller's slice.
func merge(group []*pendingChange) ([]Record, []datastore.Key) {
	if len(group) == 1 {
		c := group[0].change
		return c.Put[:len(c.Put):len(c.Put)], c.Delete
	}
	var puts []Record
	var deletes []datastore.Key
	for _, p := range group {
		if p.accepted {
			puts = append(puts, p.change.Put...)
			deletes = append(deletes, p.change.Delete...)
		}
	}
	return puts[:len(puts):len(puts)], deletes
}

func (r *Repo) setQuota(q Quota) {
	r.quotaMu.Lock()
	r.quota = q
	r.quotaMu.Unlock()
}

// write applies puts and deletes to the metadata datastore atomically.
func (r *Repo) write(ctx context.Context, puts []Record, deletes []datastore.Key) error {
	if r.opts.transactions {
		txn, err := r.meta.(datastore.TxnDatastore).NewTransaction(ctx, false)
		if err != nil {
			return fmt.Errorf("repo: begin transaction: %w", err)
		}
		defer txn.Discard(ctx)
		if err := stage(ctx, txn, puts, deletes); err != nil {
			return err
		}
		if err := txn.Commit(ctx); err != nil {
			return fmt.Errorf("repo: commit transaction: %w", err)
		}
		return nil
	}
	b, err := r.meta.Batch(ctx)
	if err != nil {
		return fmt.Errorf("repo: begin batch: %w", err)
	}
	if err := stage(ctx, b, puts, deletes); err != nil {
		return err
	}
	if err := b.Commit(ctx); err != nil {
		return fmt.Errorf("repo: commit batch: %w", err)
	}
	return nil
}

func stage(ctx context.Context, w datastore.Write, puts []Record, deletes []datastore.Key) error {
	for _, p := range puts {
		if err := w.Put(ctx, p.Key, p.Value); err != nil {
			return fmt.Errorf("repo: stage put %s: %w", p.Key, err)
		}
	}
	for _, k := range deletes {
		if err := w.Delete(ctx, k); err != nil {
			return fmt.Errorf("repo: stage delete %s: %w", k, err)
		}
	}
	return nil
}

func encodeCounter(n uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), n)
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

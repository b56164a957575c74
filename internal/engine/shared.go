package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
)

// ErrConflict is re-exported by package repo.
var ErrConflict = errors.New("repo: too many conflicting transactions; nothing was changed")

// Shared mode: several processes change one datastore (PostgreSQL through
// pgds, say). Nothing in memory is authoritative: every change is one
// transaction of the datastore that reads the counters and records it
// changes, writes, and commits. A transaction the datastore rolls back for
// a conflict (its error has a Retryable method reporting true) is run again
// from the start, after a jittered backoff, up to maxAttempts times.
const (
	maxAttempts = 30
	minBackoff  = time.Millisecond
	maxBackoff  = 100 * time.Millisecond
)

// retryable reports whether err asks for the transaction to be retried.
func retryable(err error) bool {
	var r interface{ Retryable() bool }
	return errors.As(err, &r) && r.Retryable()
}

// DefaultGrace bounds a round trip of shared mode that cannot use the
// caller's ctx (the discard of a transaction that did not commit), unless
// Config.Grace sets another bound.
const DefaultGrace = 3 * time.Second

// sharedMode runs an engine's changes in shared mode: none of the
// pipeline's memory (staging, queue, overlay) is kept or used. It is safe
// for concurrent use.
type sharedMode struct {
	e      *Engine // the quota, the stats, the wording of ErrWriteFailed
	meta   datastore.TxnDatastore
	blocks datastore.Batching
	ds     *dsWriter // writes blocks and plans changes
	// sem serialises the changes of one process (they would only
	// conflict with each other): a semaphore, so that waiting for it
	// honours ctx.
	sem       chan struct{}
	grace     time.Duration // bound of a discard
	conflicts atomic.Uint64

	mu     sync.Mutex // a leaf
	counts Counters   // what the last transaction read or left
}

func newSharedMode(e *Engine, grace time.Duration) *sharedMode {
	if grace <= 0 {
		grace = DefaultGrace
	}
	return &sharedMode{e: e, meta: e.meta.(datastore.TxnDatastore), blocks: e.blocks,
		ds: &dsWriter{meta: e.meta, blocks: e.blocks, separate: e.separate}, sem: make(chan struct{}, 1), grace: grace}
}

// update runs fn's change as one transaction.
func (s *sharedMode) update(ctx context.Context, fn func(tx *Tx) error) error {
	return s.transact(ctx, fn, false)
}

// view runs fn in one read-only transaction: a consistent snapshot of the
// database (retried like any other, should the database roll it back).
func (s *sharedMode) view(ctx context.Context, fn func(tx *Tx) error) error {
	return s.transact(ctx, fn, true)
}

// transact runs fn in a transaction of the datastore, retrying
// conflicts. Changes of one process are run one at a time: they would only
// conflict with each other. The wait for the earlier ones honours ctx, and
// so does every round trip but the discard of a transaction, which has the
// grace: a call returns at most the grace after its ctx ends.
func (s *sharedMode) transact(ctx context.Context, fn func(tx *Tx) error, readOnly bool) error {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-s.sem }()
	// gone: blocks of a separate block store that an attempt deleted (or
	// may have) and no committed metadata has accounted for yet.
	gone := map[string]bool{}
	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		err := ctx.Err()
		if err == nil {
			err = s.tryOnce(ctx, fn, readOnly, gone)
		}
		if !retryable(err) {
			return s.orphaned(err, gone)
		}
		s.conflicts.Add(1)
		if attempt == maxAttempts && len(gone) > 0 {
			return s.orphaned(fmt.Errorf("a conflict on each of %d attempts, the last: %w", attempt, err), gone)
		}
		if attempt == maxAttempts {
			return fmt.Errorf("%w: %d attempts, the last: %w", ErrConflict, attempt, err)
		}
		sleep := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-ctx.Done():
			return s.orphaned(ctx.Err(), gone)
		case <-time.After(sleep):
		}
	}
}

// orphaned turns the outcome of a change into ErrWriteFailed when an attempt
// deleted blocks from a separate block store that no committed metadata
// accounts for: the metadata still counts them (Used over-counts, and a
// reservation may name blocks that are gone), so "nothing was written"
// would be false. Repeating the change (a delete) repairs the books.
func (s *sharedMode) orphaned(err error, gone map[string]bool) error {
	if len(gone) == 0 || errors.Is(err, ErrWriteFailed) {
		return err
	}
	const msg = "%d blocks deleted from the block store, the metadata that counts them not committed; repeat the change"
	if err == nil {
		return s.e.writeFailed(fmt.Errorf(msg+": the attempt that committed did not delete them", len(gone)))
	}
	return s.e.writeFailed(fmt.Errorf(msg+": %w", len(gone), err))
}

// discard ends a transaction that did not commit, within the grace: it also
// runs after the caller's ctx has ended, when that ctx cannot be used.
func (s *sharedMode) discard(ctx context.Context, txn datastore.Txn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.grace)
	defer cancel()
	txn.Discard(ctx)
}

// tryOnce runs fn once in a new transaction and commits it. It adds
// to gone the blocks it deleted from a separate block store, and takes
// from it those its committed metadata accounts for.
func (s *sharedMode) tryOnce(ctx context.Context, fn func(tx *Tx) error, readOnly bool, gone map[string]bool) error {
	// The datastore is never replaced in shared mode (no self-recovery):
	// no dbMu.
	txn, err := s.meta.NewTransaction(ctx, readOnly)
	if err != nil {
		return fmt.Errorf("repo: begin transaction: %w", err)
	}
	defer s.discard(ctx, txn)
	cs, err := readCounters(ctx, txn)
	if err != nil {
		return err
	}
	tx := &Tx{e: s.e, ctx: ctx, c: cs, base: cs, txn: txn, readOnly: readOnly}
	if err := run(fn, tx); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !tx.Dirty() {
		if len(gone) > 0 {
			return nil // orphaned reports them
		}
		s.setCounts(cs)
		for _, f := range tx.after {
			f()
		}
		return nil
	}
	meta, blockPuts, blockDels := s.ds.plan(tx.ops, cs, tx.c)
	// As in the single-process path: blocks in a store of their own are
	// deleted before and written after the metadata that counts them, so
	// Used over-counts in between, never under-counts. Should the metadata
	// then not commit, the call fails with ErrWriteFailed (orphaned).
	if err, unknown := s.ds.commit(ctx, s.blocks, blockDels, false); err != nil || len(blockDels) > 0 {
		if err == nil || unknown {
			for _, o := range blockDels {
				gone[o.key] = true
			}
		}
		if err != nil {
			return err
		}
	}
	if err := s.ds.stage(ctx, txn, meta); err != nil {
		return err
	}
	t := s.e.stats.begin()
	err = txn.Commit(ctx)
	s.e.stats.endShared(t, err)
	if err != nil {
		if retryable(err) {
			return err
		}
		return s.e.writeFailed(fmt.Errorf("commit: %w", err))
	}
	for _, o := range tx.ops {
		if o.blocks {
			delete(gone, o.key)
		}
	}
	if err, _ := s.ds.commit(ctx, s.blocks, blockPuts, false); err != nil {
		return s.e.writeFailed(fmt.Errorf("blocks after their metadata: %w", err))
	}
	s.setCounts(tx.c)
	for _, f := range tx.after {
		f()
	}
	return nil
}

// setCounts records the counters a transaction read or left, for Counters.
func (s *sharedMode) setCounts(c Counters) {
	s.mu.Lock()
	s.counts = c
	s.mu.Unlock()
}

// counters returns what the last transaction read or left.
func (s *sharedMode) counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts
}

// Shared reports whether the engine runs in shared mode.
func (tx *Tx) Shared() bool { return tx.e.shared }

package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
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
// from the start, after a jittered backoff, up to maxAttempts times and
// while the call has run less than maxRetryTime.
//
// On a datastore whose transactions can lock keys before they begin
// (lockingTxnDatastore: pgds), a change that may write locks the counters
// first, which every change that moves bytes writes: the changes of a
// fleet then queue for them, each seeing the last one's commit, instead of
// failing each other. A lock per record beyond them (an availability's)
// would add nothing while every change writes the counters.
const (
	maxAttempts  = 30
	maxRetryTime = 10 * time.Second
	minBackoff   = time.Millisecond
	maxBackoff   = 100 * time.Millisecond
)

// lockingTxnDatastore is pgds.LockingTxnDatastore: a datastore whose
// transactions lock keys before they begin (so that their snapshot sees
// the commit of the last holder) and read keys known in advance in the
// same round trip.
type lockingTxnDatastore interface {
	NewLockedTransaction(ctx context.Context, readOnly bool, lock, prefetch []datastore.Key) (datastore.Txn, error)
}

// counterKeys are the records every change reads, and every change that
// moves bytes writes, in the order they are locked.
var counterKeys = []datastore.Key{UsedKey, ReservedKey}

// conflictKeys returns the keys err says conflicted, if it says.
func conflictKeys(err error) []string {
	var c interface{ ConflictKeys() []string }
	if errors.As(err, &c) {
		return c.ConflictKeys()
	}
	return nil
}

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
	chain     sharedChain // locks handed from one change to the next
	group     int         // most changes in one transaction: maxGroup (tests: 1, no groups)

	mu      sync.Mutex // a leaf
	counts  Counters   // what the last transaction read or left
	retries [maxAttempts]uint64
}

func newSharedMode(e *Engine, grace time.Duration) *sharedMode {
	if grace <= 0 {
		grace = DefaultGrace
	}
	return &sharedMode{e: e, meta: e.meta.(datastore.TxnDatastore), blocks: e.blocks,
		ds: &dsWriter{meta: e.meta, blocks: e.blocks, separate: e.separate}, sem: make(chan struct{}, 1), grace: grace, group: maxGroup}
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

// newTxn begins the transaction of one attempt of a change: on a
// datastore that locks keys, a change that may write locks the counters
// first.
func (s *sharedMode) newTxn(ctx context.Context, readOnly bool) (datastore.Txn, error) {
	if l, ok := s.meta.(lockingTxnDatastore); ok {
		var lock []datastore.Key
		if !readOnly {
			lock = counterKeys
		}
		return l.NewLockedTransaction(ctx, readOnly, lock, counterKeys)
	}
	return s.meta.NewTransaction(ctx, readOnly)
}

// transact runs fn in a transaction of the datastore, retrying
// conflicts. Changes of one process are run one at a time: they would only
// conflict with each other. The wait for the earlier ones honours ctx, and
// so does every round trip but the discard of a transaction, which has the
// grace: a call returns at most the grace after its ctx ends.
func (s *sharedMode) transact(ctx context.Context, fn func(tx *Tx) error, readOnly bool) error {
	group := !readOnly && !s.e.separate && s.group > 1
	if group {
		req := &joinReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
		err, joined := s.acquireOrJoin(ctx, req)
		switch {
		case joined && errors.Is(err, errRunAlone):
			group = false
			if err := s.acquire(ctx); err != nil {
				return err
			}
		case joined || err != nil:
			return err
		}
	} else if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release(ctx)
	// gone: blocks of a separate block store that an attempt deleted (or
	// may have) and no committed metadata has accounted for yet.
	gone := map[string]bool{}
	backoff := minBackoff
	start := time.Now()
	keys := map[string]bool{}
	for attempt := 1; ; attempt++ {
		err := ctx.Err()
		if err == nil {
			err = s.tryOnce(ctx, fn, readOnly, gone, group)
		}
		if errors.Is(err, errRunAlone) {
			// The group failed before its commit: nothing was
			// written; run this change alone, at once.
			group = false
			attempt--
			continue
		}
		if !retryable(err) {
			s.countRetries(attempt)
			return s.orphaned(err, gone)
		}
		s.conflicts.Add(1)
		for _, k := range conflictKeys(err) {
			keys[k] = true
		}
		took := time.Since(start)
		if attempt < maxAttempts && took < maxRetryTime {
			sleep := backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, maxBackoff)
			select {
			case <-ctx.Done():
				return s.orphaned(ctx.Err(), gone)
			case <-time.After(sleep):
			}
			continue
		}
		s.countRetries(attempt)
		named := "keys the datastore did not name"
		if len(keys) > 0 {
			named = "keys " + strings.Join(slices.Sorted(maps.Keys(keys)), ", ")
		}
		if len(gone) > 0 {
			return s.orphaned(fmt.Errorf("a conflict on each of %d attempts in %v, on %s, the last: %w",
				attempt, took.Round(time.Millisecond), named, err), gone)
		}
		return fmt.Errorf("%w: %d attempts in %v, conflicting on %s; the last: %w",
			ErrConflict, attempt, took.Round(time.Millisecond), named, err)
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

// tryOnce runs fn once in a transaction (the one the last change handed
// over, or a new one) and commits it. It adds to gone the blocks it
// deleted from a separate block store, and takes from it those its
// committed metadata accounts for. Called with sem held.
func (s *sharedMode) tryOnce(ctx context.Context, fn func(tx *Tx) error, readOnly bool, gone map[string]bool, group bool) error {
	// The datastore is never replaced in shared mode (no self-recovery):
	// no dbMu.
	txn := s.chain.take()
	if txn == nil {
		var err error
		if txn, err = s.newTxn(ctx, readOnly); err != nil {
			return fmt.Errorf("repo: begin transaction: %w", err)
		}
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
	var joined []joined
	if group && s.group > 1 && len(blockDels) == 0 && len(blockPuts) == 0 {
		var err error
		if joined, err = s.join(txn, tx.c); err != nil {
			return err
		}
	}
	commitCtx := ctx
	if len(joined) > 0 {
		var stop func()
		commitCtx, stop = s.groupCtx(ctx, joined)
		defer stop()
	}
	t := s.e.stats.begin()
	err = s.chain.commit(commitCtx, txn)
	s.e.stats.endShared(t, err)
	if err != nil {
		if retryable(err) {
			for _, j := range joined {
				j.req.done <- errRunAlone
			}
			return err
		}
		err = s.e.writeFailed(fmt.Errorf("commit: %w", err))
		for _, j := range joined {
			s.countRetries(1)
			j.req.done <- err
		}
		return err
	}
	defer func() {
		for _, j := range joined {
			s.setCounts(j.tx.c)
			for _, f := range j.tx.after {
				f()
			}
			s.countRetries(1)
			j.req.done <- nil
		}
	}()
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

package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
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

// updateShared runs fn in a transaction of the datastore, retrying
// conflicts. Changes of one process are run one at a time: they would only
// conflict with each other. The wait for the earlier ones honours ctx, and
// so does every round trip but the discard of a transaction, which has the
// grace: a call returns at most the grace after its ctx ends.
func (e *Engine) updateShared(ctx context.Context, fn func(tx *Tx) error, readOnly bool) error {
	select {
	case e.sharedMu <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-e.sharedMu }()
	// gone: blocks of a separate block store that an attempt deleted (or
	// may have) and no committed metadata has accounted for yet.
	gone := map[string]bool{}
	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		err := ctx.Err()
		if err == nil {
			err = e.trySharedOnce(ctx, fn, readOnly, gone)
		}
		if !retryable(err) {
			return e.orphaned(err, gone)
		}
		e.conflicts.Add(1)
		if attempt == maxAttempts && len(gone) > 0 {
			return e.orphaned(fmt.Errorf("a conflict on each of %d attempts, the last: %w", attempt, err), gone)
		}
		if attempt == maxAttempts {
			return fmt.Errorf("%w: %d attempts, the last: %w", ErrConflict, attempt, err)
		}
		sleep := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-ctx.Done():
			return e.orphaned(ctx.Err(), gone)
		case <-time.After(sleep):
		}
	}
}

// orphaned turns the outcome of a change into ErrWriteFailed when an attempt
// deleted blocks from a separate block store that no committed metadata
// accounts for: the metadata still counts them (Used over-counts, and a
// reservation may name blocks that are gone), so "nothing was written"
// would be false. Repeating the change (a delete) repairs the books.
func (e *Engine) orphaned(err error, gone map[string]bool) error {
	if len(gone) == 0 || errors.Is(err, ErrWriteFailed) {
		return err
	}
	const msg = "%d blocks deleted from the block store, the metadata that counts them not committed; repeat the change"
	if err == nil {
		return e.writeFailed(fmt.Errorf(msg+": the attempt that committed did not delete them", len(gone)))
	}
	return e.writeFailed(fmt.Errorf(msg+": %w", len(gone), err))
}

// discard ends a transaction that did not commit, within the grace: it also
// runs after the caller's ctx has ended, when that ctx cannot be used.
func (e *Engine) discard(ctx context.Context, txn datastore.Txn) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.grace)
	defer cancel()
	txn.Discard(ctx)
}

// trySharedOnce runs fn once in a new transaction and commits it. It adds
// to gone the blocks it deleted from a separate block store, and takes
// from it those its committed metadata accounts for.
func (e *Engine) trySharedOnce(ctx context.Context, fn func(tx *Tx) error, readOnly bool, gone map[string]bool) error {
	// e.meta is never replaced in shared mode (no self-recovery): no dbMu.
	txn, err := e.meta.(datastore.TxnDatastore).NewTransaction(ctx, readOnly)
	if err != nil {
		return fmt.Errorf("repo: begin transaction: %w", err)
	}
	defer e.discard(ctx, txn)
	cs, err := readCounters(ctx, txn)
	if err != nil {
		return err
	}
	tx := &Tx{e: e, ctx: ctx, c: cs, base: cs, txn: txn, readOnly: readOnly}
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
		e.setCounts(cs)
		for _, f := range tx.after {
			f()
		}
		return nil
	}
	meta, blockPuts, blockDels := e.ds.plan(tx.ops, cs, tx.c)
	// As in the single-process path: blocks in a store of their own are
	// deleted before and written after the metadata that counts them, so
	// Used over-counts in between, never under-counts. Should the metadata
	// then not commit, the call fails with ErrWriteFailed (orphaned).
	if err, unknown := e.ds.commit(ctx, e.blocks, blockDels, false); err != nil || len(blockDels) > 0 {
		if err == nil || unknown {
			for _, o := range blockDels {
				gone[o.key] = true
			}
		}
		if err != nil {
			return err
		}
	}
	if err := e.ds.stage(ctx, txn, meta); err != nil {
		return err
	}
	t := e.stats.begin()
	err = txn.Commit(ctx)
	e.stats.endShared(t, err)
	if err != nil {
		if retryable(err) {
			return err
		}
		return e.writeFailed(fmt.Errorf("commit: %w", err))
	}
	for _, o := range tx.ops {
		if o.blocks {
			delete(gone, o.key)
		}
	}
	if err, _ := e.ds.commit(ctx, e.blocks, blockPuts, false); err != nil {
		return e.writeFailed(fmt.Errorf("blocks after their metadata: %w", err))
	}
	e.setCounts(tx.c)
	for _, f := range tx.after {
		f()
	}
	return nil
}

// setCounts records the counters a transaction read or left, for Counters.
func (e *Engine) setCounts(c Counters) {
	e.queue.setDurable(c)
}

// Conflicts counts the transactions shared mode had to retry.
func (e *Engine) Conflicts() uint64 { return e.conflicts.Load() }

// Shared reports whether the engine runs in shared mode.
func (tx *Tx) Shared() bool { return tx.e.shared }

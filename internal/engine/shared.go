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

// updateShared runs fn in a transaction of the datastore, retrying
// conflicts. Changes of one process are run one at a time: they would only
// conflict with each other.
func (e *Engine) updateShared(ctx context.Context, fn func(tx *Tx) error, readOnly bool) error {
	e.stageMu.Lock()
	defer e.stageMu.Unlock()
	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := e.trySharedOnce(ctx, fn, readOnly)
		if !retryable(err) {
			return err
		}
		e.conflicts.Add(1)
		if attempt == maxAttempts {
			return fmt.Errorf("%w: %d attempts, the last: %w", ErrConflict, attempt, err)
		}
		sleep := backoff/2 + rand.N(backoff/2+1)
		backoff = min(2*backoff, maxBackoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(sleep):
		}
	}
}

// trySharedOnce runs fn once in a new transaction and commits it.
func (e *Engine) trySharedOnce(ctx context.Context, fn func(tx *Tx) error, readOnly bool) error {
	// e.meta is never replaced in shared mode (no self-recovery): no dbMu.
	txn, err := e.meta.(datastore.TxnDatastore).NewTransaction(ctx, readOnly)
	if err != nil {
		return fmt.Errorf("repo: begin transaction: %w", err)
	}
	defer txn.Discard(context.WithoutCancel(ctx))
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
		e.setCounts(cs)
		for _, f := range tx.after {
			f()
		}
		return nil
	}
	meta, blockPuts, blockDels := e.plan([][]op{tx.ops}, cs, tx.c)
	// As in the single-process path: blocks in a store of their own are
	// deleted before and written after the metadata that counts them.
	if err, _ := e.commit(ctx, e.blocks, blockDels, false); err != nil {
		return err
	}
	if err := e.stageOps(ctx, txn, meta); err != nil {
		return err
	}
	t := e.stats.begin()
	err = txn.Commit(ctx)
	e.stats.endShared(t, err)
	if err != nil {
		if retryable(err) {
			return err
		}
		return fmt.Errorf("%w: commit: %w", ErrWriteFailed, err)
	}
	if err, _ := e.commit(ctx, e.blocks, blockPuts, false); err != nil {
		return fmt.Errorf("%w: blocks after their metadata: %w", ErrWriteFailed, err)
	}
	e.setCounts(tx.c)
	for _, f := range tx.after {
		f()
	}
	return nil
}

// setCounts records the counters a transaction read or left, for Counters.
func (e *Engine) setCounts(c Counters) {
	e.queueMu.Lock()
	e.durable = c
	e.queueMu.Unlock()
}

// Conflicts counts the transactions shared mode had to retry.
func (e *Engine) Conflicts() uint64 { return e.conflicts.Load() }

// Shared reports whether the engine runs in shared mode.
func (tx *Tx) Shared() bool { return tx.e.shared }

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

// countRetries counts a call that took attempt attempts.
func (s *sharedMode) countRetries(attempt int) {
	s.mu.Lock()
	s.retries[attempt-1]++
	s.mu.Unlock()
}

// retriesPerCall returns, for each n, how many calls took n retries.
func (s *sharedMode) retriesPerCall() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.retries[:]...)
}

// RetriesPerCall returns, for each n, how many calls of shared mode took
// n retries (attempts after the first), conflicts or not; all zero
// outside shared mode.
func (e *Engine) RetriesPerCall() []uint64 {
	if e.sh == nil {
		return make([]uint64, maxAttempts)
	}
	return e.sh.retriesPerCall()
}

// acquire takes sem, counting the call among the chain's waiters while it
// waits, so that locks handed over are taken or ended.
func (s *sharedMode) acquire(ctx context.Context) error {
	ch := &s.chain
	ch.mu.Lock()
	ch.waiters++
	ch.mu.Unlock()
	select {
	case s.sem <- struct{}{}:
		ch.mu.Lock()
		ch.waiters--
		ch.mu.Unlock()
		return nil
	case <-ctx.Done():
		ch.mu.Lock()
		ch.waiters--
		if ch.waiters == 0 && ch.next != nil {
			// Handed locks no one will take: end them, unless a
			// holder of sem will (release).
			select {
			case s.sem <- struct{}{}:
				ch.mu.Unlock()
				s.release(ctx)
				return ctx.Err()
			default:
			}
		}
		ch.mu.Unlock()
		return ctx.Err()
	}
}

// release frees sem, first ending the locks handed over if no call waits
// to take them.
func (s *sharedMode) release(ctx context.Context) {
	ch := &s.chain
	for {
		ch.mu.Lock()
		if ch.waiters > 0 || ch.next == nil {
			<-s.sem
			ch.mu.Unlock()
			return
		}
		n := ch.next
		ch.next = nil
		ch.mu.Unlock()
		s.discard(ctx, n)
	}
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

// A host whose changes queue behind each other hands the counters' locks
// from one change to the next without releasing them (chainTxn: pgds),
// at most maxChain changes in a row, so that another host's changes, queued
// on the server for the same locks, get their turn. This saves each
// handed-on change a round trip, and the fleet the wake-up of another
// process for each change.
const maxChain = 8

// chainTxn is a transaction that commits and begins the next one on the
// same locks in one round trip (pgds's CommitAndBegin).
type chainTxn interface {
	CommitAndBegin(ctx context.Context, prefetch []datastore.Key) (datastore.Txn, error)
}

// sharedChain is the hand-over of locks between the changes of a host.
// Invariant: sem is free only while next is nil or waiters is not zero,
// so that locks handed over are always taken or ended.
type sharedChain struct {
	mu      sync.Mutex    // see the lock order on Engine
	waiters int           // calls waiting for sem
	next    datastore.Txn // begun, locks held, for the next change
	run     int           // changes in a row on the same locks
	// joinable: changes waiting for sem that a group may take (each
	// also counted in waiters until taken).
	joinable []*joinReq
}

// take returns the transaction the last change handed over, if any.
// Called with sem held.
func (ch *sharedChain) take() datastore.Txn {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	n := ch.next
	ch.next = nil
	if n == nil {
		ch.run = 0
	}
	return n
}

// commit commits txn, handing its locks to the next change when one waits
// and the run is not too long. Called with sem held.
func (ch *sharedChain) commit(ctx context.Context, txn datastore.Txn) error {
	c, ok := txn.(chainTxn)
	ch.mu.Lock()
	chain := ok && ch.waiters > 0 && ch.run < maxChain-1
	ch.mu.Unlock()
	if !chain {
		return txn.Commit(ctx)
	}
	next, err := c.CommitAndBegin(ctx, counterKeys)
	if next != nil {
		ch.mu.Lock()
		ch.next = next
		ch.run++
		ch.mu.Unlock()
	}
	return err
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

// Group commit: while a host's change holds the counters' locks, the
// changes of the host queued behind it (up to maxGroup) join its
// transaction, each run in turn on it and seeing the earlier ones' writes,
// and all commit with one COMMIT: one round trip and one flush of the
// server's log for the group, and each joined change's writes ride on its
// next one's first read. Each change keeps its own outcome: should a
// joined change fail (its own error, its ctx ending, a conflict), the
// transaction is ended before anything is written and every change of the
// group runs again alone (errRunAlone), where the failing one meets its
// error again and the others do not. A group whose COMMIT is refused for a
// conflict runs alone too; a COMMIT of unknown outcome fails every change
// of the group with ErrWriteFailed, as it fails a change alone. Only
// changes that write no separate block store group (the order of a block
// store's writes around the metadata's commit is a change's own).
const maxGroup = 8

// errRunAlone tells a change to run in a transaction of its own.
var errRunAlone = errors.New("engine: run the change alone")

// joinReq is a change waiting to join another's transaction.
type joinReq struct {
	ctx     context.Context
	fn      func(tx *Tx) error
	done    chan error // its outcome, once claimed: nil, an error, or errRunAlone
	claimed bool       // taken by a group; under chain.mu
}

// joined is a change run in another's transaction, not yet committed.
type joined struct {
	req *joinReq
	tx  *Tx
}

// acquireOrJoin waits for sem, as acquire does, offering req to the holder
// of sem meanwhile. joined reports that a group took req: err is then its
// outcome (errRunAlone to run it alone, sem not held).
func (s *sharedMode) acquireOrJoin(ctx context.Context, req *joinReq) (err error, joined bool) {
	ch := &s.chain
	ch.mu.Lock()
	ch.waiters++
	ch.joinable = append(ch.joinable, req)
	ch.mu.Unlock()
	select {
	case s.sem <- struct{}{}:
		ch.mu.Lock()
		if req.claimed {
			// The group ended and released sem: its outcome is in.
			ch.mu.Unlock()
			s.release(ctx)
			return <-req.done, true
		}
		ch.unjoin(req)
		ch.waiters--
		ch.mu.Unlock()
		return nil, false
	case err := <-req.done:
		return err, true
	case <-ctx.Done():
		ch.mu.Lock()
		if req.claimed {
			// The group runs req's fn under ctx, which has ended:
			// its outcome comes soon.
			ch.mu.Unlock()
			return <-req.done, true
		}
		ch.unjoin(req)
		ch.waiters--
		if ch.waiters == 0 && ch.next != nil {
			select {
			case s.sem <- struct{}{}:
				ch.mu.Unlock()
				s.release(ctx)
				return ctx.Err(), false
			default:
			}
		}
		ch.mu.Unlock()
		return ctx.Err(), false
	}
}

// unjoin takes req off the list of changes that may join. Called with mu
// held.
func (ch *sharedChain) unjoin(req *joinReq) {
	if i := slices.Index(ch.joinable, req); i >= 0 {
		ch.joinable = slices.Delete(ch.joinable, i, i+1)
	}
}

// join runs the changes waiting to join, up to maxGroup-1, on txn, whose
// counters stand at c, staging their writes. Should one fail, every
// change claimed is told to run alone and join returns errRunAlone: the
// caller's change runs alone too. Called with sem held.
func (s *sharedMode) join(txn datastore.Txn, c Counters) ([]joined, error) {
	ch := &s.chain
	ch.mu.Lock()
	n := min(len(ch.joinable), s.group-1)
	reqs := slices.Clone(ch.joinable[:n])
	ch.joinable = slices.Delete(ch.joinable, 0, n)
	for _, r := range reqs {
		r.claimed = true
		ch.waiters--
	}
	ch.mu.Unlock()
	var out []joined
	for _, r := range reqs {
		err := r.ctx.Err()
		var tx *Tx
		if err == nil {
			tx = &Tx{e: s.e, ctx: r.ctx, c: c, base: c, txn: txn}
			err = run(r.fn, tx)
		}
		if err == nil {
			err = r.ctx.Err()
		}
		if err == nil && tx.Dirty() {
			meta, _, _ := s.ds.plan(tx.ops, c, tx.c)
			err = s.ds.stage(r.ctx, txn, meta)
		}
		if err != nil {
			for _, r := range reqs {
				r.done <- errRunAlone
			}
			return nil, errRunAlone
		}
		c = tx.c
		out = append(out, joined{req: r, tx: tx})
	}
	return out, nil
}

// groupCtx returns the ctx of a group's COMMIT, which is every member's:
// it ends the grace after the first of their ctxs ends (so that no call
// returns later than the grace after its own ctx ends, and one call's end
// does not cut the others' COMMIT short), or when stop is called.
func (s *sharedMode) groupCtx(ctx context.Context, joined []joined) (_ context.Context, stop func()) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var mu sync.Mutex
	var timer *time.Timer
	stopped := false
	ended := func() {
		mu.Lock()
		defer mu.Unlock()
		if !stopped && timer == nil {
			timer = time.AfterFunc(s.grace, cancel)
		}
	}
	stops := []func() bool{context.AfterFunc(ctx, ended)}
	for _, j := range joined {
		stops = append(stops, context.AfterFunc(j.req.ctx, ended))
	}
	return gctx, func() {
		for _, f := range stops {
			f()
		}
		mu.Lock()
		stopped = true
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}

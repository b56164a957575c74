package engine

import (
	"context"
	"errors"
	"fmt"
)

// The commit pipeline: staging (flat-combined, under stageMu), the commit
// queue (queue.go) and its leader, who writes groups through a writer
// (writer.go, ldbwriter.go) and acknowledges each change once its group is
// durable; a failed group fails what was staged on it (fail-stop).

// op is one write of a change.
type op struct {
	okey
	value []byte
	del   bool
}

// okey names a key in the metadata store or the block store.
type okey struct {
	blocks bool
	key    string
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

// update stages fn's change and waits until it is durable, leading the
// queue when told to.
func (e *Engine) update(ctx context.Context, fn func(tx *Tx) error) error {
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
			e.retireDurable(nil)
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
	lead := e.queue.join(c)
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
		e.queue.mu.Lock()
		e.recover()
		e.queue.mu.Unlock()
	}
	tx := &Tx{e: e, ctx: ctx, c: e.staged, base: e.staged}
	if err := run(fn, tx); err != nil {
		return false, nil, err
	}
	if err := ctx.Err(); err != nil {
		return false, nil, err
	}
	if !tx.Dirty() {
		c.after = e.last
		return false, tx.after, nil
	}
	if e.failed != nil {
		return false, nil, e.failed
	}
	e.seq++
	e.last = c
	c.ops, c.counters, c.seq = tx.ops, tx.c, e.seq
	e.overlay.add(c.ops, c.seq)
	e.staged = tx.c
	e.watches.notify(c.ops)
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

// writeGroups writes the queue as one group, and the next while at least
// keepLead changes are queued; then it hands the lead to the first change
// still queued (or gives it up).
func (e *Engine) writeGroups() {
	for {
		group, base := e.queue.take()
		final := group[len(group)-1].counters
		t := e.stats.begin()
		e.dbMu.RLock()
		err, unknown := e.w.write(group, base, final)
		e.dbMu.RUnlock()
		e.stats.end(t, len(group), err)
		if err != nil {
			e.fail(group, err, unknown)
			return
		}
		more, next := e.queue.written(final)
		if next != nil {
			close(next.lead)
		}
		for _, c := range group {
			close(c.done)
		}
		// Only now is the leader done with the group's slice.
		if more {
			// The overlay retires this group when changes are staged
			// next: the next write does not wait for the staging lock.
			e.queue.addDurable(group)
			continue
		}
		if e.testRetire != nil {
			e.testRetire()
		}
		e.stageMu.Lock()
		e.retireDurable(group)
		e.unlockStage()
		return
	}
}

// retireDurable drops from the overlay what durable groups wrote (see
// overlay.retire): those the queue holds, and group (nil: none). Idle is
// judged under the staging lock, not when a group was written: a leader
// that gave up the lead may get the lock after the next leader's, and the
// last to retire must see the engine idle. Called with stageMu held.
func (e *Engine) retireDurable(group []*change) {
	groups, idle := e.queue.takeDurable()
	if group != nil {
		groups = append(groups, group)
	}
	if len(groups) > 0 || idle {
		free := e.overlay.retire(groups, idle)
		e.queue.recycle(free, groups)
	}
}

// fail ends a group whose write failed: its changes fail, and so does every
// change queued behind it (they were checked against it), unwritten.
func (e *Engine) fail(group []*change, err error, unknown bool) {
	e.stageMu.Lock()
	e.queue.mu.Lock()
	if _, ok := err.(*blocksAfterMeta); ok {
		// The counters on disk are the group's: memory follows them,
		// so that Quota and Verify tell what a reopened repo will read.
		e.queue.durable = group[len(group)-1].counters
	}
	cause := err
	if unknown {
		e.failed = e.writeFailed(err)
		err = e.failed
	}
	failed := e.queue.drop()
	e.overlay.reset()
	e.last = nil // it failed; what is staged from now on reads the datastore
	e.staged = e.queue.durable
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
	e.queue.mu.Unlock()
	e.unlockStage()
	for _, c := range group {
		close(c.done)
	}
	for _, c := range failed {
		close(c.done)
	}
}

package engine

import (
	"context"
)

// Read views: a read of more than one key sees one state.
//
// A change is staged against the overlay of changes not yet durable, and
// a group of changes reaches the datastore as one atomic batch (with the
// counters it moved). So the datastore itself only ever holds states
// between two groups, each of which is a state between two changes; what
// a reader must not do is mix two of them (read an index, let a group
// land, read the records it names). Three ways to read one state:
//
//   - the embedded LevelDB (repo.Open, or a repo.New on an *ldb.DS): a
//     LevelDB snapshot. Taking it costs microseconds and holds nothing
//     off; LevelDB keeps the versions it sees until it is released.
//   - shared mode: one read-only transaction of the datastore, as View.
//   - any other datastore.Batching: the read runs as a change that writes
//     nothing, under the staging lock (the same rule as a change): it sees
//     every change staged before it, and succeeds only once they are
//     durable. Changes wait while it reads: that is the fallback's cost,
//     which grows with what the read reads.

// Read runs fn on a read-only Tx that sees one consistent state of the
// metadata datastore (see above for how, per datastore). Its Counters are
// that state's. Blocks in a separate block store (repo.WithBlockstore) are
// read as they are when read. fn must not write.
func (e *Engine) Read(ctx context.Context, fn func(tx *Tx) error) error {
	if e.shared {
		return e.View(ctx, fn)
	}
	if !e.life.enter() {
		return ErrClosed
	}
	defer e.life.leave()
	snap, err := e.snapshot()
	if err != nil {
		return err
	}
	if snap == nil {
		return e.Update(ctx, func(tx *Tx) error {
			tx.readOnly = true
			return fn(tx)
		})
	}
	defer snap.Release()
	if err := ctx.Err(); err != nil {
		return err
	}
	tx := &Tx{e: e, ctx: ctx, readOnly: true, snap: snap}
	cs, err := readCounters(ctx, snap)
	if err != nil {
		return err
	}
	tx.c, tx.base = cs, cs
	return fn(tx)
}

// Snapshot runs fn on a read-only Tx that sees a state between two
// committed changes, with the counters memory held for it: what Verify
// needs to compare the datastore with memory and the records with each
// other.
//
// On the embedded LevelDB with blocks in it, Snapshot holds new changes
// off only until those in flight are durable (one group write: the
// staged counters are then the durable ones), takes a LevelDB snapshot
// and the counters, and lets changes go on while fn reads the snapshot.
// Elsewhere (a separate block store, which no snapshot of the metadata
// covers, or another datastore) it is View: changes wait until fn
// returns. In shared mode it is one read-only transaction.
func (e *Engine) Snapshot(ctx context.Context, fn func(tx *Tx) error) error {
	if e.shared {
		return e.View(ctx, fn)
	}
	if !e.life.enter() {
		return ErrClosed
	}
	defer e.life.leave()
	if e.separate {
		return e.View(ctx, fn)
	}
	e.gate.Lock()
	snap, err := e.snapshot()
	cs := e.Counters()
	e.gate.Unlock()
	if err != nil {
		return err
	}
	if snap == nil {
		return e.View(ctx, fn)
	}
	defer snap.Release()
	if err := ctx.Err(); err != nil {
		return err
	}
	return fn(&Tx{e: e, ctx: ctx, c: cs, base: cs, readOnly: true, snap: snap})
}

// snapshot takes a snapshot of the metadata datastore, or returns nil when
// it has none.
func (e *Engine) snapshot() (snapshot, error) {
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	return snapshotOf(e.meta)
}

// View runs fn with no change in flight: every staged change is durable
// and none starts until fn returns. The Tx it gets reads the datastore and
// must not write.
func (e *Engine) View(ctx context.Context, fn func(tx *Tx) error) error {
	if !e.life.enter() {
		return ErrClosed
	}
	defer e.life.leave()
	return e.m.view(ctx, fn)
}

// view is View in the commit pipeline.
func (e *Engine) view(ctx context.Context, fn func(tx *Tx) error) error {
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

package engine

import (
	"context"
	"io"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

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
			e.setStores(m, cl)
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
	e.setStores(closedStore{e.failed}, io.NopCloser(nil))
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
	e.setStores(m, cl)
	e.staged, e.queue.durable = cs, cs
	e.gen++
}

// setStores makes m the metadata datastore (and the block store, if blocks
// share it), closed on Close by cl, with a writer for them. Called from New
// or with dbMu held.
func (e *Engine) setStores(m datastore.Batching, cl io.Closer) {
	e.meta, e.closer = m, cl
	if !e.separate {
		e.blocks = m
	}
	e.w = e.newWriter()
}

// newWriter returns the writer of groups for the datastores: the LevelDB
// batch writer on the embedded LevelDB holding the blocks, else batches
// (or transactions) of the datastores.
func (e *Engine) newWriter() writer {
	if !e.separate && !e.txn && !e.shared {
		if w := ldbWriterFor(e.meta); w != nil {
			return w
		}
	}
	return &dsWriter{meta: e.meta, blocks: e.blocks, separate: e.separate, txn: e.txn}
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

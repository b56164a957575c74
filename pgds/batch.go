package pgds

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Batch returns a batch whose Commit writes all its puts and deletes, in the
// order they were made, in one transaction: all or nothing.
func (d *Datastore) Batch(ctx context.Context) (datastore.Batch, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	return &batch{d: d}, nil
}

type batchOp struct {
	key    string
	value  []byte
	delete bool
}

type batch struct {
	d   *Datastore
	mu  sync.Mutex
	ops []batchOp
}

// Put queues a put; value is read at Commit, so it must not change before.
func (b *batch) Put(ctx context.Context, key datastore.Key, value []byte) error {
	k := key.String()
	if !isText(k) {
		return fmt.Errorf("pgds: batch put %q: %w", k, ErrInvalidKey)
	}
	if value == nil {
		value = []byte{}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops = append(b.ops, batchOp{key: k, value: value})
	return nil
}

func (b *batch) Delete(ctx context.Context, key datastore.Key) error {
	k := key.String()
	if !isText(k) {
		return nil // no such key can be stored
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.ops = append(b.ops, batchOp{key: k, delete: true})
	return nil
}

// Commit writes the queued operations in one transaction. After a success
// the batch is empty and may be reused; after a failure it keeps its
// operations. A failed COMMIT whose outcome is unknown wraps
// ErrCommitUnknown.
func (b *batch) Commit(ctx context.Context) error {
	if err := b.d.check(); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.ops) == 0 {
		return nil
	}
	if err := commitOps(ctx, b.d, b.ops); err != nil {
		return err
	}
	b.ops = b.ops[:0]
	return nil
}

func commitOps(ctx context.Context, d *Datastore, ops []batchOp) error {
	op := fmt.Sprintf("commit batch of %d", len(ops))
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return wrap(op, err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		release(conn, err)
		return wrap(op, err)
	}
	var pb pgx.Batch
	for _, o := range ops {
		if o.delete {
			pb.Queue(d.sql.del, o.key)
		} else {
			pb.Queue(d.sql.put, o.key, o.value)
		}
	}
	if err := tx.SendBatch(ctx, &pb).Close(); err != nil {
		// A lost connection already ended the transaction in the server;
		// otherwise the rollback does. Either way nothing was written.
		release(conn, tx.Rollback(ctx))
		return wrap(op, err)
	}
	err = tx.Commit(ctx)
	release(conn, err)
	if err != nil {
		return wrapCommit(op, err)
	}
	return nil
}

// NewTransaction begins a SERIALIZABLE transaction, read-only when readOnly
// is set. Its Commit fails with an error wrapping ErrSerialization when it
// conflicted with another transaction; any call of it may, too, and then the
// whole transaction must be retried. A Txn holds one connection of the pool
// until Commit or Discard: always call one of them. A Txn's calls are
// serialised; its Query reads the whole result before returning.
//
// Discard sends ROLLBACK and waits for its answer until ctx ends: give it
// a ctx with a deadline (one that has not ended, or the ROLLBACK is not
// even sent). Commit or Discard that fail other than by the server's
// answer (a timeout, a lost connection) close the connection rather than
// give it back to the pool; the server then rolls back what it had.
func (d *Datastore) NewTransaction(ctx context.Context, readOnly bool) (datastore.Txn, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	mode := pgx.ReadWrite
	if readOnly {
		mode = pgx.ReadOnly
	}
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return nil, wrap("begin transaction", err)
	}
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable, AccessMode: mode})
	if err != nil {
		release(conn, err)
		return nil, wrap("begin transaction", err)
	}
	return &txn{d: d, conn: conn, tx: tx, readOnly: readOnly}, nil
}

// release gives conn back to the pool after err, the outcome of the last
// round trip of a transaction. After any error but one the server reported
// (a timeout, a lost or silent connection), what the connection holds is
// unknown: it is closed, never reused. (pgx closes it too on most of
// these; this does not depend on that.) The pool drops a connection left
// in a transaction.
func release(conn *pgxpool.Conn, err error) {
	var pgErr *pgconn.PgError
	if err == nil || errors.As(err, &pgErr) {
		conn.Release()
		return
	}
	c := conn.Hijack()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // close the socket now: the network may not deliver a goodbye
	_ = c.Close(ctx)
}

type txn struct {
	d        *Datastore
	readOnly bool
	mu       sync.Mutex
	conn     *pgxpool.Conn // the transaction's, until Commit or Discard
	tx       pgx.Tx
	done     bool
}

var _ datastore.Txn = (*txn)(nil)

// lock serialises the calls of the transaction and refuses them after it
// ended.
func (t *txn) lock() error {
	t.mu.Lock()
	if t.done {
		t.mu.Unlock()
		return ErrTxnDone
	}
	return nil
}

func (t *txn) Get(ctx context.Context, key datastore.Key) ([]byte, error) {
	if err := t.lock(); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	return get(ctx, t.tx, &t.d.sql, key)
}

func (t *txn) Has(ctx context.Context, key datastore.Key) (bool, error) {
	if err := t.lock(); err != nil {
		return false, err
	}
	defer t.mu.Unlock()
	return has(ctx, t.tx, &t.d.sql, key)
}

func (t *txn) GetSize(ctx context.Context, key datastore.Key) (int, error) {
	if err := t.lock(); err != nil {
		return -1, err
	}
	defer t.mu.Unlock()
	return getSize(ctx, t.tx, &t.d.sql, key)
}

func (t *txn) Query(ctx context.Context, q query.Query) (query.Results, error) {
	if err := t.lock(); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	// The connection can run one statement at a time and the caller may
	// use the transaction while reading the results: read them all now.
	res, err := runQuery(ctx, t.tx, &t.d.sql, q)
	if err != nil {
		return nil, err
	}
	entries, err := res.Rest()
	if err != nil {
		return nil, err
	}
	return query.ResultsWithEntries(q, entries), nil
}

func (t *txn) Put(ctx context.Context, key datastore.Key, value []byte) error {
	if err := t.lock(); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if t.readOnly {
		return fmt.Errorf("pgds: put %s: %w", key, ErrReadOnly)
	}
	return put(ctx, t.tx, &t.d.sql, key, value)
}

func (t *txn) Delete(ctx context.Context, key datastore.Key) error {
	if err := t.lock(); err != nil {
		return err
	}
	defer t.mu.Unlock()
	if t.readOnly {
		return fmt.Errorf("pgds: delete %s: %w", key, ErrReadOnly)
	}
	return del(ctx, t.tx, &t.d.sql, key)
}

func (t *txn) Commit(ctx context.Context) error {
	if err := t.lock(); err != nil {
		return err
	}
	defer t.mu.Unlock()
	t.done = true
	err := t.tx.Commit(ctx)
	release(t.conn, err)
	if err != nil {
		return wrapCommit("commit transaction", err)
	}
	return nil
}

func (t *txn) Discard(ctx context.Context) {
	if err := t.lock(); err != nil {
		return
	}
	defer t.mu.Unlock()
	t.done = true
	release(t.conn, t.tx.Rollback(ctx))
}

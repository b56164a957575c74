package pgds

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ipfs/go-datastore"
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

// commitOps writes ops in one transaction: BEGIN, the statements in one
// pipelined batch, COMMIT (3 round trips).
func commitOps(ctx context.Context, d *Datastore, ops []batchOp) error {
	op := fmt.Sprintf("commit batch of %d", len(ops))
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return wrap(op, err)
	}
	d.roundTrips.Add(3) // BEGIN, the batch, COMMIT
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

// release gives conn back to the pool after err, the outcome of the last
// round trip of a transaction. After any error but one the server reported
// (a timeout, a lost or silent connection), what the connection holds is
// unknown: it is closed, never reused. The pool drops a connection left
// in a transaction.
func release(conn *pgxpool.Conn, err error) {
	var pgErr *pgconn.PgError
	if err == nil || errors.As(err, &pgErr) {
		conn.Release()
		return
	}
	closeConn(conn)
}

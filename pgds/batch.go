package pgds

import (
	"context"
	"fmt"
	"sync"

	"github.com/ipfs/go-datastore"
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

// commitOps writes ops in one transaction and one round trip: BEGIN, the
// writes and COMMIT in one segment of a pipeline. A write the server
// refuses costs a ROLLBACK more.
func commitOps(ctx context.Context, d *Datastore, ops []batchOp) error {
	op := fmt.Sprintf("commit batch of %d", len(ops))
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return wrap(op, err)
	}
	work := []pstmt{execStmt("begin")}
	for _, o := range ops {
		if o.delete {
			work = append(work, delStmt(&d.sql, o.key))
		} else {
			work = append(work, putStmt(&d.sql, o.key, o.value))
		}
	}
	work = append(work, execStmt("commit"))
	d.roundTrips.Add(1)
	segErrs, err := pipe(ctx, conn.Conn(), work)
	if err != nil {
		closeConn(conn)
		if segErrs == nil || segErrs[0] == nil {
			return wrapCommit(op, err)
		}
	}
	if pe := segErrs[0]; pe != nil {
		if err == nil {
			// End the failed transaction.
			d.roundTrips.Add(1)
			ends, err := pipe(ctx, conn.Conn(), []pstmt{execStmt("rollback")})
			if err != nil || ends[0] != nil {
				closeConn(conn)
			} else {
				conn.Release()
			}
		}
		// Refused by the server: nothing was written.
		return conflictKeys(wrap(op+": "+pe.stmt.op, pe.err), pe.stmt.key)
	}
	conn.Release()
	return nil
}

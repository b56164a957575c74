package pgds

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// LockingTxnDatastore is a datastore.TxnDatastore whose transactions can
// take locks on keys before they begin and read keys known in advance in
// the same round trip. The stowage repo's shared mode (repo.WithShared)
// uses it, discovered by a type assertion, so that the changes of a fleet
// queue for the records they all change (the quota counters) instead of
// failing each other; on a datastore without it a change runs as a plain
// transaction, retried on conflicts.
//
// The transactions of a Datastore also have
//
//	CommitAndBegin(ctx context.Context, prefetch []datastore.Key) (datastore.Txn, error)
//
// which commits a locked transaction as Commit does and, in the same round
// trip, begins the next one on the same connection, still holding the
// locks (its snapshot taken after the commit), reading prefetch. Its next
// is nil when its error is not (nothing was written, the locks were
// released), or when the next transaction could not begin. Shared mode
// finds it by a type assertion too.
type LockingTxnDatastore interface {
	datastore.TxnDatastore
	// NewLockedTransaction begins a transaction as NewTransaction does,
	// after taking an exclusive lock on each key of lock, and reads the
	// keys of prefetch in the same round trip.
	NewLockedTransaction(ctx context.Context, readOnly bool, lock, prefetch []datastore.Key) (datastore.Txn, error)
}

var _ LockingTxnDatastore = (*Datastore)(nil)

// NewTransaction begins a SERIALIZABLE transaction, read-only when readOnly
// is set. Its Commit fails with an error wrapping ErrSerialization when it
// conflicted with another transaction; any call of it may, too, and then the
// whole transaction must be retried. A Txn holds one connection of the pool
// until Commit or Discard: always call one of them. A Txn's calls are
// serialised; its Query reads the whole result before returning.
//
// Puts and Deletes are sent to the server with the COMMIT, in one round
// trip, or with the transaction's next read (which must see them), in
// its round trip (a Query's: in one before it): a write the server
// refuses (a conflict, say) fails the Commit or that read, not the Put.
//
// Discard sends ROLLBACK and waits for its answer until ctx ends: give it
// a ctx with a deadline (one that has not ended, or the ROLLBACK is not
// even sent). Commit or Discard that fail other than by the server's
// answer (a timeout, a lost connection) close the connection rather than
// give it back to the pool; the server then rolls back what it had.
func (d *Datastore) NewTransaction(ctx context.Context, readOnly bool) (datastore.Txn, error) {
	return d.NewLockedTransaction(ctx, readOnly, nil, nil)
}

// NewLockedTransaction begins a transaction as NewTransaction does, and
// in the same round trip:
//
//   - first, before the transaction begins, takes an exclusive lock on
//     each key of lock (a session-level advisory lock on a number derived
//     from the table and the key, taken in one fixed order so that two
//     transactions never wait for each other's), waiting in a queue while
//     another transaction holds one; Commit or Discard release them after
//     the transaction ends. The locks exclude only other locked
//     transactions: a plain transaction or batch ignores them.
//   - then reads the keys of prefetch, so that the transaction's Get, Has
//     and GetSize of them cost no round trip.
//
// Because the transaction's snapshot is taken after the locks are held, a
// locked transaction sees every change committed by the one that held a
// lock before it: locked transactions that change the same keys run one
// after the other instead of failing each other with ErrSerialization. A
// read-only transaction with locks is refused with ErrReadOnly: it has no
// use for them.
//
// A lock that cannot be taken because ctx ends closes the connection (the
// server then forgets the wait).
func (d *Datastore) NewLockedTransaction(ctx context.Context, readOnly bool, lock, prefetch []datastore.Key) (datastore.Txn, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	if readOnly && len(lock) > 0 {
		return nil, fmt.Errorf("pgds: lock keys: %w", ErrReadOnly)
	}
	conn, err := d.pool.Acquire(ctx)
	if err != nil {
		return nil, wrap("begin transaction", err)
	}
	t := &txn{d: d, conn: conn, readOnly: readOnly, cache: map[string]cached{}}
	var segs [][]pstmt
	if len(lock) > 0 {
		keys := make([]string, len(lock))
		for i, k := range lock {
			keys[i] = k.String()
		}
		segs = append(segs, []pstmt{lockStmt(lockIDs(d.sql.table, keys))})
		t.locked = true
	}
	seg := t.beginStmts(readOnly, prefetch)
	segs = append(segs, seg)
	d.roundTrips.Add(1)
	segErrs, err := pipe(ctx, conn.Conn(), segs...)
	if err == nil {
		for _, pe := range segErrs {
			if pe != nil {
				err = pe
				break
			}
		}
	}
	if err != nil {
		// A lock refused still lets the BEGIN run, and a lock may be
		// held: close the connection, which ends both.
		closeConn(conn)
		var pe *pipeError
		if errors.As(err, &pe) {
			return nil, wrap("begin transaction: "+pe.stmt.op, pe.err)
		}
		return nil, wrap("begin transaction", err)
	}
	return t, nil
}

func (pe *pipeError) Error() string { return pe.stmt.op + ": " + pe.err.Error() }
func (pe *pipeError) Unwrap() error { return pe.err }

// closeConn closes conn, never handing it out again.
func closeConn(conn *pgxpool.Conn) {
	c := conn.Hijack()
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // close the socket now: the network may not deliver a goodbye
	_ = c.Close(ctx)
}

// beginStmts begins the transaction and reads prefetch into its cache.
func (t *txn) beginStmts(readOnly bool, prefetch []datastore.Key) []pstmt {
	begin := "begin isolation level serializable"
	if readOnly {
		begin += " read only"
	}
	seg := []pstmt{execStmt(begin)}
	var keys []string
	for _, k := range prefetch {
		ks := k.String()
		if !isText(ks) {
			continue // reads as absent without a round trip
		}
		t.cache[ks] = cached{}
		keys = append(keys, ks)
	}
	if len(keys) > 0 {
		seg = append(seg, pstmt{sql: t.d.sql.getMany, args: [][]byte{textArray(keys)}, op: "prefetch " + strings.Join(keys, ", "),
			row: func(vals [][]byte) {
				t.cache[string(vals[0])] = cached{value: append([]byte{}, vals[1]...), found: true, full: true}
			}})
	}
	return seg
}

// cached is what the transaction knows of a key, from a read or its own
// write: its snapshot does not change, so a key is read at most once.
type cached struct {
	value []byte
	found bool
	full  bool // value is known (not only found, from Has)
}

type txn struct {
	d        *Datastore
	readOnly bool
	locked   bool // holds session-level advisory locks
	mu       sync.Mutex
	conn     *pgxpool.Conn // the transaction's, until Commit or Discard
	cache    map[string]cached
	pending  []pstmt // writes not yet sent
	flushErr error   // flushRead's, for its caller
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

func (t *txn) q() querier { return counted{t.conn.Conn(), &t.d.roundTrips} }

// flush sends the pending writes, before a read that must see them.
func (t *txn) flush(ctx context.Context) error {
	if len(t.pending) == 0 {
		return nil
	}
	ops := t.pending
	t.pending = nil
	t.d.roundTrips.Add(1)
	segErrs, err := pipe(ctx, t.conn.Conn(), ops)
	if err != nil {
		return wrap(fmt.Sprintf("write %d keys", len(ops)), err)
	}
	if pe := segErrs[0]; pe != nil {
		return conflictKeys(wrap(pe.stmt.op, pe.err), pe.stmt.key)
	}
	return nil
}

// flushRead, when writes are pending and k can be read by name, sends the
// writes and reads k in one round trip, leaving k in the cache (or the
// error in flushErr), and reports true; else it does nothing and reports
// false.
func (t *txn) flushRead(ctx context.Context, k string) bool {
	if len(t.pending) == 0 || !isText(k) {
		return false
	}
	seg := append(t.pending, pstmt{sql: t.d.sql.getMany, args: [][]byte{textArray([]string{k})}, op: "get " + k,
		row: func(vals [][]byte) {
			t.cache[string(vals[0])] = cached{value: append([]byte{}, vals[1]...), found: true, full: true}
		}})
	n := len(t.pending)
	t.pending = nil
	t.cache[k] = cached{}
	t.d.roundTrips.Add(1)
	segErrs, err := pipe(ctx, t.conn.Conn(), seg)
	switch {
	case err != nil:
		delete(t.cache, k)
		t.flushErr = wrap(fmt.Sprintf("write %d keys and read %s", n, k), err)
	case segErrs[0] != nil:
		delete(t.cache, k)
		pe := segErrs[0]
		t.flushErr = conflictKeys(wrap(pe.stmt.op, pe.err), pe.stmt.key)
	}
	return true
}

// cachedGet answers a Get of k from the cache, which flushRead filled.
func (t *txn) cachedGet(k string) ([]byte, error) {
	c := t.cache[k]
	if !c.found {
		return nil, datastore.ErrNotFound
	}
	return append([]byte{}, c.value...), nil
}

func (t *txn) Get(ctx context.Context, key datastore.Key) ([]byte, error) {
	if err := t.lock(); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	k := key.String()
	if c, ok := t.cache[k]; ok && (c.full || !c.found) {
		if !c.found {
			return nil, datastore.ErrNotFound
		}
		return append([]byte{}, c.value...), nil // the caller may change it
	}
	if t.flushRead(ctx, k) {
		if err := t.flushErr; err != nil {
			t.flushErr = nil
			return nil, err
		}
		return t.cachedGet(k)
	}
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	v, err := get(ctx, t.q(), &t.d.sql, key)
	switch {
	case err == nil:
		t.cache[k] = cached{value: append([]byte{}, v...), found: true, full: true}
	case errors.Is(err, datastore.ErrNotFound) && isText(k):
		t.cache[k] = cached{}
	}
	return v, err
}

func (t *txn) Has(ctx context.Context, key datastore.Key) (bool, error) {
	if err := t.lock(); err != nil {
		return false, err
	}
	defer t.mu.Unlock()
	k := key.String()
	if c, ok := t.cache[k]; ok {
		return c.found, nil
	}
	if t.flushRead(ctx, k) {
		if err := t.flushErr; err != nil {
			t.flushErr = nil
			return false, err
		}
		return t.cache[k].found, nil
	}
	if err := t.flush(ctx); err != nil {
		return false, err
	}
	ok, err := has(ctx, t.q(), &t.d.sql, key)
	if err == nil && isText(k) {
		t.cache[k] = cached{found: ok}
	}
	return ok, err
}

func (t *txn) GetSize(ctx context.Context, key datastore.Key) (int, error) {
	if err := t.lock(); err != nil {
		return -1, err
	}
	defer t.mu.Unlock()
	if c, ok := t.cache[key.String()]; ok && (c.full || !c.found) {
		if !c.found {
			return -1, datastore.ErrNotFound
		}
		return len(c.value), nil
	}
	if k := key.String(); t.flushRead(ctx, k) {
		if err := t.flushErr; err != nil {
			t.flushErr = nil
			return -1, err
		}
		c := t.cache[k]
		if !c.found {
			return -1, datastore.ErrNotFound
		}
		return len(c.value), nil
	}
	if err := t.flush(ctx); err != nil {
		return -1, err
	}
	return getSize(ctx, t.q(), &t.d.sql, key)
}

func (t *txn) Query(ctx context.Context, q query.Query) (query.Results, error) {
	if err := t.lock(); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	// The connection can run one statement at a time and the caller may
	// use the transaction while reading the results: read them all now.
	res, err := runQuery(ctx, t.q(), &t.d.sql, q)
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
	k := key.String()
	if t.readOnly {
		return fmt.Errorf("pgds: put %s: %w", k, ErrReadOnly)
	}
	if !isText(k) {
		return fmt.Errorf("pgds: put %q: %w", k, ErrInvalidKey)
	}
	value = append([]byte{}, value...) // the caller may reuse it before the Commit
	t.pending = append(t.pending, putStmt(&t.d.sql, k, value))
	t.cache[k] = cached{value: value, found: true, full: true}
	return nil
}

func (t *txn) Delete(ctx context.Context, key datastore.Key) error {
	if err := t.lock(); err != nil {
		return err
	}
	defer t.mu.Unlock()
	k := key.String()
	if t.readOnly {
		return fmt.Errorf("pgds: delete %s: %w", k, ErrReadOnly)
	}
	if !isText(k) {
		return nil
	}
	t.pending = append(t.pending, delStmt(&t.d.sql, k))
	t.cache[k] = cached{}
	return nil
}

// end is what ends a transaction that did not commit: a ROLLBACK, then
// the release of the locks.
func (t *txn) end() [][]pstmt {
	segs := [][]pstmt{{execStmt("rollback")}}
	if t.locked {
		segs = append(segs, []pstmt{unlockStmt})
	}
	return segs
}

var unlockStmt = execStmt("SELECT pg_advisory_unlock_all()")

// Commit sends the pending writes, the COMMIT and the release of the
// locks in one round trip. A COMMIT or write the server refuses costs one
// more, to end the failed transaction and release the locks.
func (t *txn) Commit(ctx context.Context) error {
	if err := t.lock(); err != nil {
		return err
	}
	defer t.mu.Unlock()
	t.done = true
	// The unlock runs after the COMMIT, in a transaction of its own; a
	// refused write or COMMIT skips it.
	work := append(t.pending, execStmt("commit"))
	if t.locked {
		work = append(work, unlockStmt)
	}
	segs := [][]pstmt{work}
	written := make([]string, 0, len(t.pending))
	for _, s := range t.pending {
		written = append(written, s.key)
	}
	t.pending = nil
	t.d.roundTrips.Add(1)
	segErrs, err := pipe(ctx, t.conn.Conn(), segs...)
	if err != nil {
		closeConn(t.conn)
		if segErrs == nil || segErrs[0] == nil {
			return wrapCommit("commit transaction", err)
		}
	}
	if pe := segErrs[0]; pe != nil && pe.stmt.sql == unlockStmt.sql {
		// Committed; the lock may still be held: close the connection,
		// which releases it.
		if err == nil {
			closeConn(t.conn)
		}
		return nil
	}
	if pe := segErrs[0]; pe != nil {
		if err == nil {
			t.d.roundTrips.Add(1)
			ends, err := pipe(ctx, t.conn.Conn(), t.end()...)
			if err != nil {
				closeConn(t.conn)
			} else {
				t.releaseAfter(ends)
			}
		}
		keys := written
		if pe.stmt.key != "" {
			keys = []string{pe.stmt.key}
		}
		return conflictKeys(wrap("commit transaction: "+pe.stmt.op, pe.err), keys...)
	}
	t.conn.Release()
	return nil
}

// releaseAfter gives the connection back to the pool if the statements
// that end the transaction and release the locks succeeded, and closes it
// (the server then ends both) if not.
func (t *txn) releaseAfter(ends []*pipeError) {
	for _, pe := range ends {
		if pe != nil {
			closeConn(t.conn)
			return
		}
	}
	t.conn.Release()
}

// CommitAndBegin commits the transaction as Commit does and, in the same
// round trip, begins the next one on the same connection, still holding
// the locks, reading prefetch: a host with another change waiting hands it
// the locks without releasing them (and saves it a round trip). The next
// transaction's snapshot is taken after this one committed. next is nil
// when err is not (nothing of this one was written, the locks are
// released) or when the next one could not begin (this one committed).
// Only a locked read-write transaction can continue; others commit and
// return no next.
func (t *txn) CommitAndBegin(ctx context.Context, prefetch []datastore.Key) (next datastore.Txn, err error) {
	if !t.locked {
		return nil, t.Commit(ctx)
	}
	if err := t.lock(); err != nil {
		return nil, err
	}
	defer t.mu.Unlock()
	t.done = true
	written := make([]string, 0, len(t.pending))
	for _, s := range t.pending {
		written = append(written, s.key)
	}
	n := &txn{d: t.d, conn: t.conn, locked: true, cache: map[string]cached{}}
	segs := [][]pstmt{append(t.pending, execStmt("commit")), n.beginStmts(false, prefetch)}
	t.pending = nil
	t.d.roundTrips.Add(1)
	segErrs, err := pipe(ctx, t.conn.Conn(), segs...)
	if err != nil {
		closeConn(t.conn)
		if segErrs == nil || segErrs[0] == nil {
			return nil, wrapCommit("commit transaction", err)
		}
	}
	if segErrs[0] == nil && segErrs[1] == nil {
		return n, nil
	}
	if err == nil {
		t.d.roundTrips.Add(1)
		ends, err := pipe(ctx, t.conn.Conn(), t.end()...)
		if err != nil {
			closeConn(t.conn)
		} else {
			t.releaseAfter(ends)
		}
	}
	if pe := segErrs[0]; pe != nil {
		keys := written
		if pe.stmt.key != "" {
			keys = []string{pe.stmt.key}
		}
		return nil, conflictKeys(wrap("commit transaction: "+pe.stmt.op, pe.err), keys...)
	}
	return nil, nil
}

func (t *txn) Discard(ctx context.Context) {
	if err := t.lock(); err != nil {
		return
	}
	defer t.mu.Unlock()
	t.done = true
	t.pending = nil
	t.d.roundTrips.Add(1)
	segErrs, err := pipe(ctx, t.conn.Conn(), t.end()...)
	if err != nil {
		closeConn(t.conn)
		return
	}
	t.releaseAfter(segErrs)
}

// ConflictError is the error of a transaction the server rolled back for
// a conflict: it wraps ErrSerialization (so errors.Is finds it, and its
// Retryable reports true) and names the keys involved, as far as pgds
// knows them: the key of the write the server refused, or, for a COMMIT
// refused for a read/write dependency (for which PostgreSQL names no
// row), every key the transaction wrote.
type ConflictError struct {
	Keys []string // the keys involved, as far as known; may be empty
	Err  error    // the error, wrapping ErrSerialization
}

// Error returns Err's message followed by the keys.
func (e *ConflictError) Error() string {
	if len(e.Keys) == 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("%v (keys %s)", e.Err, strings.Join(e.Keys, ", "))
}

// Unwrap returns Err.
func (e *ConflictError) Unwrap() error { return e.Err }

// ConflictKeys returns Keys, for callers that know no pgds type (the
// stowage repo names them in repo.ErrConflict).
func (e *ConflictError) ConflictKeys() []string { return e.Keys }

// conflictKeys makes err a ConflictError naming keys, if it is a conflict.
func conflictKeys(err error, keys ...string) error {
	if !errors.Is(err, ErrSerialization) {
		return err
	}
	return &ConflictError{Keys: keys, Err: err}
}

// counted is a querier that counts its round trips.
type counted struct {
	q querier
	n *atomic.Uint64
}

func (c counted) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	c.n.Add(1)
	return c.q.Exec(ctx, sql, args...)
}

func (c counted) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	c.n.Add(1)
	return c.q.Query(ctx, sql, args...)
}

func (c counted) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c.n.Add(1)
	return c.q.QueryRow(ctx, sql, args...)
}

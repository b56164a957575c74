package pgds

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultTable is the table a Datastore uses unless WithTable names another.
const DefaultTable = "datastore"

// Errors of the package. Each is checked with errors.Is; the returned error
// wraps it together with the error of pgx, which errors.As reaches
// (*pgconn.PgError for an error the server reported).
var (
	// ErrClosed is returned by every call on a closed Datastore.
	ErrClosed = errors.New("pgds: closed")
	// ErrInvalidTable reports a table name WithTable cannot accept.
	ErrInvalidTable = errors.New("pgds: invalid table name")
	// ErrTableSchema means the table exists but its columns are not
	// (key text COLLATE "C", value bytea): its key order would not be byte
	// order, or its values would not round-trip.
	ErrTableSchema = errors.New("pgds: table has another schema")
	// ErrInvalidKey reports a key PostgreSQL text cannot hold: not valid
	// UTF-8, or containing a NUL byte. Put refuses such a key; Get, Has and
	// GetSize report it absent; Delete does nothing.
	ErrInvalidKey = errors.New("pgds: key is not UTF-8 text without NUL")
	// ErrSerialization means PostgreSQL rolled the transaction back because
	// it conflicted with a concurrent one (SQLSTATE 40001
	// serialization_failure or 40P01 deadlock_detected). Nothing of it was
	// written: retry it from the start, reads included.
	ErrSerialization error = retryable("pgds: serialization failure, retry the transaction")
	// ErrCommitUnknown means the connection failed (or the context ended)
	// after COMMIT was sent and before its answer arrived: the batch or
	// transaction may or may not have been written. Read back to find out;
	// do not assume either outcome.
	ErrCommitUnknown = errors.New("pgds: commit outcome unknown")
	// ErrReadOnly is returned by Put and Delete of a read-only transaction.
	ErrReadOnly = errors.New("pgds: read-only transaction")
	// ErrTxnDone is returned by calls on a transaction after Commit or
	// Discard.
	ErrTxnDone = errors.New("pgds: transaction already committed or discarded")
)

var (
	_ datastore.Batching     = (*Datastore)(nil)
	_ datastore.TxnDatastore = (*Datastore)(nil)
)

// Datastore is a datastore.Batching and datastore.TxnDatastore on one
// PostgreSQL table. It is safe for concurrent use.
type Datastore struct {
	pool    *pgxpool.Pool
	ownPool bool
	closed  atomic.Bool
	sql     statements

	roundTrips atomic.Uint64
}

// RoundTrips returns how many round trips to the server the Datastore's
// calls have made so far: each statement, and each pipeline of statements
// sent together, counts one. (pgx's preparing of a statement the first
// time a connection runs it, and the pool's connecting, are not counted.)
// The package documentation lists what each call and each change of the
// stowage repo costs.
func (d *Datastore) RoundTrips() uint64 { return d.roundTrips.Load() }

// q is the pool, counting round trips.
func (d *Datastore) q() querier { return counted{d.pool, &d.roundTrips} }

// Option configures New and Open.
type Option func(*options)

type options struct {
	table string
}

// WithTable stores the data in the named table instead of DefaultTable. The
// name is an identifier, optionally qualified by a schema ("stowage.blocks"):
// each part starts with a lowercase ASCII letter or underscore, continues
// with lowercase letters, digits and underscores, and is at most 63 bytes.
// Another name makes New and Open fail with ErrInvalidTable.
func WithTable(name string) Option {
	return func(o *options) { o.table = name }
}

var identRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

func tableIdent(name string) (pgx.Identifier, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("%w: %q", ErrInvalidTable, name)
	}
	for _, p := range parts {
		if !identRE.MatchString(p) {
			return nil, fmt.Errorf("%w: %q", ErrInvalidTable, name)
		}
	}
	return pgx.Identifier(parts), nil
}

// Open connects to the server of connString (a URL or keyword/value string,
// see pgxpool.ParseConfig; connect_timeout bounds each connection attempt)
// and returns a Datastore on it as New does. Close closes the pool it opened.
func Open(ctx context.Context, connString string, opts ...Option) (*Datastore, error) {
	cfg, err := pgxpool.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("pgds: open: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgds: open: %w", err)
	}
	d, err := New(ctx, pool, opts...)
	if err != nil {
		pool.Close()
		return nil, err
	}
	d.ownPool = true
	return d, nil
}

// New returns a Datastore on the table of the options in pool's database,
// creating the table if it is missing and checking its columns if it is not.
// The pool stays the caller's: Close leaves it open.
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Datastore, error) {
	o := options{table: DefaultTable}
	for _, opt := range opts {
		opt(&o)
	}
	ident, err := tableIdent(o.table)
	if err != nil {
		return nil, err
	}
	d := &Datastore{pool: pool, sql: newStatements(ident.Sanitize())}
	if err := d.createTable(ctx, ident); err != nil {
		return nil, fmt.Errorf("pgds: table %s: %w", o.table, err)
	}
	return d, nil
}

func (d *Datastore) createTable(ctx context.Context, ident pgx.Identifier) error {
	_, err := d.pool.Exec(ctx, d.sql.create)
	var pgErr *pgconn.PgError
	// Two processes creating the table at once: one of them loses on the
	// catalog's unique indexes (23505, or 42710 for the table's row type)
	// or sees it already made (42P07). The winner has committed by then.
	if errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "42710" || pgErr.Code == "42P07") {
		err = nil
	}
	if err != nil {
		return err
	}
	var keyType, keyColl, valueType string
	err = d.pool.QueryRow(ctx, `
		SELECT k.atttypid::regtype::text, coalesce(c.collname, ''), v.atttypid::regtype::text
		FROM pg_attribute k
		JOIN pg_attribute v ON v.attrelid = k.attrelid AND v.attname = 'value' AND NOT v.attisdropped
		LEFT JOIN pg_collation c ON c.oid = k.attcollation
		WHERE k.attrelid = $1::regclass AND k.attname = 'key' AND NOT k.attisdropped`,
		ident.Sanitize()).Scan(&keyType, &keyColl, &valueType)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%w: no key and value columns", ErrTableSchema)
	}
	if err != nil {
		return err
	}
	if keyType != "text" || keyColl != "C" || valueType != "bytea" {
		return fmt.Errorf("%w: key %s COLLATE %q, value %s; want key text COLLATE \"C\", value bytea",
			ErrTableSchema, keyType, keyColl, valueType)
	}
	return nil
}

// Close makes every later call fail with ErrClosed and closes the pool if
// Open made it, waiting for the calls in flight to give their connections
// back.
func (d *Datastore) Close() error {
	if d.closed.Swap(true) {
		return nil
	}
	if d.ownPool {
		d.pool.Close()
	}
	return nil
}

func (d *Datastore) check() error {
	if d.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Get returns the value stored at key, or datastore.ErrNotFound itself.
func (d *Datastore) Get(ctx context.Context, key datastore.Key) ([]byte, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	return get(ctx, d.q(), &d.sql, key)
}

// Has reports whether a value is stored at key.
func (d *Datastore) Has(ctx context.Context, key datastore.Key) (bool, error) {
	if err := d.check(); err != nil {
		return false, err
	}
	return has(ctx, d.q(), &d.sql, key)
}

// GetSize returns the length of the value stored at key, or
// datastore.ErrNotFound itself.
func (d *Datastore) GetSize(ctx context.Context, key datastore.Key) (int, error) {
	if err := d.check(); err != nil {
		return -1, err
	}
	return getSize(ctx, d.q(), &d.sql, key)
}

// Put stores value at key, replacing any value there. A nil value is stored
// as an empty one.
func (d *Datastore) Put(ctx context.Context, key datastore.Key, value []byte) error {
	if err := d.check(); err != nil {
		return err
	}
	return put(ctx, d.q(), &d.sql, key, value)
}

// Delete removes the value at key; a missing key is not an error.
func (d *Datastore) Delete(ctx context.Context, key datastore.Key) error {
	if err := d.check(); err != nil {
		return err
	}
	return del(ctx, d.q(), &d.sql, key)
}

// Sync returns nil: a write PostgreSQL acknowledged is as durable as the
// server's synchronous_commit setting makes it, and Sync cannot change that.
func (d *Datastore) Sync(ctx context.Context, prefix datastore.Key) error {
	return d.check()
}

// Query returns the entries q selects. See the package documentation for
// what runs in the server and how results are paged.
func (d *Datastore) Query(ctx context.Context, q query.Query) (query.Results, error) {
	if err := d.check(); err != nil {
		return nil, err
	}
	return runQuery(ctx, d.q(), &d.sql, q)
}

// querier is what the operations need of a pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

type statements struct {
	table   string // quoted
	create  string
	get     string
	getMany string // key, value of the keys of a text[]
	has     string
	size    string
	put     string
	del     string
}

func newStatements(table string) statements {
	return statements{
		table:   table,
		create:  `CREATE TABLE IF NOT EXISTS ` + table + ` (key text COLLATE "C" PRIMARY KEY, value bytea NOT NULL)`,
		get:     `SELECT value FROM ` + table + ` WHERE key = $1`,
		getMany: `SELECT key, value FROM ` + table + ` WHERE key = ANY($1::text[])`,
		has:     `SELECT EXISTS (SELECT 1 FROM ` + table + ` WHERE key = $1)`,
		size:    `SELECT octet_length(value) FROM ` + table + ` WHERE key = $1`,
		put:     `INSERT INTO ` + table + ` (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
		del:     `DELETE FROM ` + table + ` WHERE key = $1`,
	}
}

// isText reports whether s can be a PostgreSQL text value.
func isText(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

func get(ctx context.Context, q querier, s *statements, key datastore.Key) ([]byte, error) {
	k := key.String()
	if !isText(k) {
		return nil, datastore.ErrNotFound
	}
	var v []byte
	err := q.QueryRow(ctx, s.get, k).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, datastore.ErrNotFound // unwrapped: go-datastore's suite compares with ==
	}
	if err != nil {
		return nil, wrap("get "+k, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, nil
}

func has(ctx context.Context, q querier, s *statements, key datastore.Key) (bool, error) {
	k := key.String()
	if !isText(k) {
		return false, nil
	}
	var ok bool
	if err := q.QueryRow(ctx, s.has, k).Scan(&ok); err != nil {
		return false, wrap("has "+k, err)
	}
	return ok, nil
}

func getSize(ctx context.Context, q querier, s *statements, key datastore.Key) (int, error) {
	k := key.String()
	if !isText(k) {
		return -1, datastore.ErrNotFound
	}
	var n int
	err := q.QueryRow(ctx, s.size, k).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return -1, datastore.ErrNotFound
	}
	if err != nil {
		return -1, wrap("get size "+k, err)
	}
	return n, nil
}

func put(ctx context.Context, q querier, s *statements, key datastore.Key, value []byte) error {
	k := key.String()
	if !isText(k) {
		return fmt.Errorf("pgds: put %q: %w", k, ErrInvalidKey)
	}
	if value == nil {
		value = []byte{} // pgx sends a nil slice as NULL
	}
	if _, err := q.Exec(ctx, s.put, k, value); err != nil {
		return wrap("put "+k, err)
	}
	return nil
}

func del(ctx context.Context, q querier, s *statements, key datastore.Key) error {
	k := key.String()
	if !isText(k) {
		return nil
	}
	if _, err := q.Exec(ctx, s.del, k); err != nil {
		return wrap("delete "+k, err)
	}
	return nil
}

// wrap adds the operation to err and, for a serialization failure or a
// deadlock, ErrSerialization.
func wrap(op string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") {
		return fmt.Errorf("%w: %s: %w", ErrSerialization, op, err)
	}
	return fmt.Errorf("pgds: %s: %w", op, err)
}

// wrapCommit classifies the error of a COMMIT: refused by the server
// (nothing written), failed before anything was sent (nothing written), or
// lost on the way (ErrCommitUnknown).
func wrapCommit(op string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) || errors.Is(err, pgx.ErrTxCommitRollback) || pgconn.SafeToRetry(err) {
		return wrap(op, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrCommitUnknown, op, err)
}

// retryable is an error a caller should retry from the start. Its Retryable
// method is how the stowage repo's shared mode (repo.WithShared) knows, for
// any datastore, which failures to retry.
type retryable string

func (e retryable) Error() string { return string(e) }

// Retryable reports that the failed transaction can be retried.
func (e retryable) Retryable() bool { return true }

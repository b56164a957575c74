package pgds_test

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dstest "github.com/ipfs/go-datastore/test"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/pgds"
	"github.com/stowage/stowage/pgds/internal/pgtest"
	"github.com/stowage/stowage/stowagetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// openDS opens a Datastore on a fresh database of the test server.
func openDS(t testing.TB, opts ...pgds.Option) (*pgds.Datastore, string) {
	t.Helper()
	url := pgtest.URL(t)
	d, err := pgds.Open(t.Context(), url, opts...)
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d, url
}

// newPool returns a pool on a fresh database of the test server.
func newPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), pgtest.URL(t))
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// tables returns an open function for stowagetest: each call, a Datastore
// on a new table of one shared pool.
func tables(t *testing.T) func(testing.TB) datastore.Batching {
	pool := newPool(t)
	var n atomic.Int64
	return func(tb testing.TB) datastore.Batching {
		d, err := pgds.New(tb.Context(), pool, pgds.WithTable(fmt.Sprintf("t%d", n.Add(1))))
		require.NoError(tb, err)
		tb.Cleanup(func() { _ = d.Close() })
		return d
	}
}

func TestGoDatastoreSuite(t *testing.T) {
	d, _ := openDS(t)
	dstest.SubtestAll(t, d)
}

func TestStowageSuite(t *testing.T) {
	stowagetest.Datastore(t, tables(t))
}

func key(s string) datastore.Key { return datastore.NewKey(s) }

func TestPutGet_NilValueIsEmpty(t *testing.T) {
	d, _ := openDS(t)
	require.NoError(t, d.Put(t.Context(), key("/a"), nil))
	v, err := d.Get(t.Context(), key("/a"))
	require.NoError(t, err)
	assert.NotNil(t, v)
	assert.Empty(t, v)
	n, err := d.GetSize(t.Context(), key("/a"))
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestInvalidKey(t *testing.T) {
	d, _ := openDS(t)
	ctx := t.Context()
	for _, k := range []string{"/a\x00b", "/\xff"} {
		assert.ErrorIs(t, d.Put(ctx, datastore.RawKey(k), []byte("v")), pgds.ErrInvalidKey)
		_, err := d.Get(ctx, datastore.RawKey(k))
		assert.ErrorIs(t, err, datastore.ErrNotFound)
		ok, err := d.Has(ctx, datastore.RawKey(k))
		require.NoError(t, err)
		assert.False(t, ok)
		assert.NoError(t, d.Delete(ctx, datastore.RawKey(k)))
		b, err := d.Batch(ctx)
		require.NoError(t, err)
		assert.ErrorIs(t, b.Put(ctx, datastore.RawKey(k), nil), pgds.ErrInvalidKey)
	}
}

func TestWithTable_RejectsBadNames(t *testing.T) {
	pool := newPool(t)
	for _, name := range []string{"", "A", "1x", "x-y", "x;drop table y", `"x"`, "a.b.c", strings.Repeat("x", 64)} {
		_, err := pgds.New(t.Context(), pool, pgds.WithTable(name))
		assert.ErrorIs(t, err, pgds.ErrInvalidTable, "%q", name)
	}
	_, err := pool.Exec(t.Context(), "CREATE SCHEMA app")
	require.NoError(t, err)
	d, err := pgds.New(t.Context(), pool, pgds.WithTable("app.kv_1"))
	require.NoError(t, err)
	require.NoError(t, d.Put(t.Context(), key("/x"), []byte("1")))
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*) FROM app.kv_1").Scan(&n))
	assert.Equal(t, 1, n)
}

func TestNew_RefusesTableWithOtherKeyOrder(t *testing.T) {
	pool := newPool(t)
	_, err := pool.Exec(t.Context(), "CREATE TABLE other (key text PRIMARY KEY, value bytea NOT NULL)")
	require.NoError(t, err)
	_, err = pgds.New(t.Context(), pool, pgds.WithTable("other"))
	assert.ErrorIs(t, err, pgds.ErrTableSchema)
}

func TestNew_ConcurrentOpensCreateTheTableOnce(t *testing.T) {
	pool := newPool(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			_, err := pgds.New(context.Background(), pool, pgds.WithTable("shared"))
			assert.NoError(t, err)
		})
	}
	wg.Wait()
}

func TestClose(t *testing.T) {
	pool := newPool(t)
	d, err := pgds.New(t.Context(), pool)
	require.NoError(t, err)
	require.NoError(t, d.Close())
	require.NoError(t, d.Close())
	_, err = d.Get(t.Context(), key("/a"))
	assert.ErrorIs(t, err, pgds.ErrClosed)
	assert.ErrorIs(t, d.Put(t.Context(), key("/a"), nil), pgds.ErrClosed)
	_, err = d.Query(t.Context(), query.Query{})
	assert.ErrorIs(t, err, pgds.ErrClosed)
	_, err = d.NewTransaction(t.Context(), false)
	assert.ErrorIs(t, err, pgds.ErrClosed)
	assert.NoError(t, pool.Ping(t.Context()), "Close closed a pool it did not open")
}

func TestBatch_KeepsTheOrderOfOperations(t *testing.T) {
	d, _ := openDS(t)
	ctx := t.Context()
	b, err := d.Batch(ctx)
	require.NoError(t, err)
	require.NoError(t, b.Put(ctx, key("/a"), []byte("1")))
	require.NoError(t, b.Delete(ctx, key("/a")))
	require.NoError(t, b.Delete(ctx, key("/b")))
	require.NoError(t, b.Put(ctx, key("/b"), []byte("2")))
	require.NoError(t, b.Commit(ctx))
	ok, err := d.Has(ctx, key("/a"))
	require.NoError(t, err)
	assert.False(t, ok)
	v, err := d.Get(ctx, key("/b"))
	require.NoError(t, err)
	assert.Equal(t, []byte("2"), v)
}

func TestTxn_ReadsItsWritesAndCommitsAtOnce(t *testing.T) {
	d, _ := openDS(t)
	ctx := t.Context()
	tx, err := d.NewTransaction(ctx, false)
	require.NoError(t, err)
	require.NoError(t, tx.Put(ctx, key("/a/1"), []byte("x")))
	require.NoError(t, tx.Put(ctx, key("/a/2"), []byte("y")))
	v, err := tx.Get(ctx, key("/a/1"))
	require.NoError(t, err)
	assert.Equal(t, []byte("x"), v)
	res, err := tx.Query(ctx, query.Query{Prefix: "/a"})
	require.NoError(t, err)
	es, err := res.Rest()
	require.NoError(t, err)
	assert.Len(t, es, 2)

	ok, err := d.Has(ctx, key("/a/1"))
	require.NoError(t, err)
	assert.False(t, ok, "an uncommitted write is visible outside the transaction")

	require.NoError(t, tx.Commit(ctx))
	ok, err = d.Has(ctx, key("/a/2"))
	require.NoError(t, err)
	assert.True(t, ok)
	assert.ErrorIs(t, tx.Put(ctx, key("/a/3"), nil), pgds.ErrTxnDone)
	assert.ErrorIs(t, tx.Commit(ctx), pgds.ErrTxnDone)
	tx.Discard(ctx) // after Commit: nothing
}

func TestTxn_DiscardWritesNothing(t *testing.T) {
	d, _ := openDS(t)
	ctx := t.Context()
	tx, err := d.NewTransaction(ctx, false)
	require.NoError(t, err)
	require.NoError(t, tx.Put(ctx, key("/a"), []byte("x")))
	tx.Discard(ctx)
	ok, err := d.Has(ctx, key("/a"))
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestTxn_ReadOnlyRefusesWrites(t *testing.T) {
	d, _ := openDS(t)
	ctx := t.Context()
	tx, err := d.NewTransaction(ctx, true)
	require.NoError(t, err)
	defer tx.Discard(ctx)
	assert.ErrorIs(t, tx.Put(ctx, key("/a"), nil), pgds.ErrReadOnly)
	assert.ErrorIs(t, tx.Delete(ctx, key("/a")), pgds.ErrReadOnly)
	_, err = tx.Get(ctx, key("/a"))
	assert.ErrorIs(t, err, datastore.ErrNotFound)
}

// Two read-modify-write transactions on one counter: SERIALIZABLE lets one
// commit and fails the other with ErrSerialization, which a retry fixes.
func TestTxn_ConflictIsErrSerialization(t *testing.T) {
	d, _ := openDS(t)
	ctx := t.Context()
	require.NoError(t, d.Put(ctx, key("/n"), []byte{0}))
	t1, err := d.NewTransaction(ctx, false)
	require.NoError(t, err)
	t2, err := d.NewTransaction(ctx, false)
	require.NoError(t, err)
	v1, err := t1.Get(ctx, key("/n"))
	require.NoError(t, err)
	v2, err := t2.Get(ctx, key("/n"))
	require.NoError(t, err)
	require.NoError(t, t1.Put(ctx, key("/n"), []byte{v1[0] + 1}))
	require.NoError(t, t1.Commit(ctx))

	err = t2.Put(ctx, key("/n"), []byte{v2[0] + 1})
	if err == nil {
		err = t2.Commit(ctx)
	} else {
		t2.Discard(ctx)
	}
	require.ErrorIs(t, err, pgds.ErrSerialization)
	assert.NotErrorIs(t, err, pgds.ErrCommitUnknown)

	v, err := d.Get(ctx, key("/n"))
	require.NoError(t, err)
	assert.Equal(t, []byte{1}, v, "the failed transaction wrote")
}

// The prefix condition is one the primary key's index serves.
func TestQuery_PrefixUsesTheIndex(t *testing.T) {
	pool := newPool(t)
	_, err := pgds.New(t.Context(), pool, pgds.WithTable("kv"))
	require.NoError(t, err)
	conn, err := pool.Acquire(t.Context())
	require.NoError(t, err)
	defer conn.Release()
	for _, set := range []string{"SET enable_seqscan = off", "SET enable_bitmapscan = off"} {
		_, err = conn.Exec(t.Context(), set)
		require.NoError(t, err)
	}
	rows, err := conn.Query(t.Context(), "EXPLAIN SELECT key, value FROM kv WHERE key >= $1 AND key < $2 ORDER BY key LIMIT 1000", "/a/", "/a0")
	require.NoError(t, err)
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	plan := strings.Join(lines, "\n")
	assert.Contains(t, plan, "Index", plan)
	assert.NotContains(t, plan, "Sort", plan)
}

func TestQuery_PrefixSelectsChildrenOnly(t *testing.T) {
	d, _ := openDS(t)
	ctx := t.Context()
	for _, k := range []string{"/a", "/a/1", "/a/2/x", "/ab", "/a0", "/b"} {
		require.NoError(t, d.Put(ctx, key(k), []byte(k)))
	}
	res, err := d.Query(ctx, query.Query{Prefix: "/a", KeysOnly: true})
	require.NoError(t, err)
	es, err := res.Rest()
	require.NoError(t, err)
	assert.Equal(t, []string{"/a/1", "/a/2/x"}, keysOf(es))
}

func keysOf(es []query.Entry) []string {
	var ks []string
	for _, e := range es {
		ks = append(ks, e.Key)
	}
	return ks
}

// Random queries give what query.NaiveQueryApply gives on a MapDatastore
// holding the same entries, across several pages.
func TestQuery_MatchesNaiveQueryApply(t *testing.T) {
	d, _ := openDS(t)
	ctx := t.Context()
	model := datastore.NewMapDatastore()
	rng := rand.New(rand.NewPCG(1, 2))
	b, err := d.Batch(ctx)
	require.NoError(t, err)
	var keys []string
	for i := range 2500 {
		k := fmt.Sprintf("/%s/%d", []string{"a", "a/b", "ab", "b", "é"}[i%5], rng.IntN(100000))
		v := fmt.Appendf(nil, "%08d-%d", rng.IntN(1000), i) // unique: orders by value have no ties
		require.NoError(t, b.Put(ctx, key(k), v))
		require.NoError(t, model.Put(ctx, key(k), v))
		keys = append(keys, key(k).String())
	}
	require.NoError(t, b.Commit(ctx))

	filters := []func() query.Filter{
		func() query.Filter {
			ops := []query.Op{query.Equal, query.NotEqual, query.LessThan, query.LessThanOrEqual, query.GreaterThan, query.GreaterThanOrEqual}
			return query.FilterKeyCompare{Op: ops[rng.IntN(len(ops))], Key: keys[rng.IntN(len(keys))]}
		},
		func() query.Filter {
			return query.FilterKeyPrefix{Prefix: []string{"/a", "/a/", "/é", "/b/1"}[rng.IntN(4)]}
		},
		func() query.Filter {
			return query.FilterValueCompare{Op: query.GreaterThan, Value: fmt.Appendf(nil, "%08d", rng.IntN(1000))}
		},
		func() query.Filter { return evenValues{} }, // runs in Go
	}
	orders := [][]query.Order{
		nil,
		{query.OrderByKey{}},
		{query.OrderByKeyDescending{}},
		{query.OrderByValue{}},
		{query.OrderByValueDescending{}, query.OrderByKey{}},
		{query.OrderByFunction(func(a, b query.Entry) int { return strings.Compare(a.Key[1:], b.Key[1:]) })},
	}
	for i := range 200 {
		q := query.Query{
			Prefix:       []string{"", "/", "/a", "/a/b", "/é", "/c"}[rng.IntN(6)],
			Orders:       orders[rng.IntN(len(orders))],
			KeysOnly:     rng.IntN(2) == 0,
			ReturnsSizes: rng.IntN(2) == 0,
		}
		for range rng.IntN(3) {
			q.Filters = append(q.Filters, filters[rng.IntN(len(filters))]())
		}
		if rng.IntN(2) == 0 {
			q.Offset = rng.IntN(1200)
		}
		if rng.IntN(2) == 0 {
			q.Limit = rng.IntN(1500)
		}
		// Without orders pgds returns key order; the map has none.
		// Filters and orders see values also with KeysOnly, which the
		// map does not give them.
		mq := q
		mq.KeysOnly = false
		if len(mq.Orders) == 0 {
			mq.Orders = []query.Order{query.OrderByKey{}}
		}
		mres, err := model.Query(ctx, mq)
		require.NoError(t, err)
		want, err := mres.Rest()
		require.NoError(t, err)

		res, err := d.Query(ctx, q)
		require.NoError(t, err, "query %d: %s", i, q)
		got, err := res.Rest()
		require.NoError(t, err, "query %d: %s", i, q)
		require.Equal(t, keysOf(want), keysOf(got), "query %d: %s", i, q)
		for j, e := range got {
			if q.KeysOnly {
				assert.Nil(t, e.Value)
			} else {
				assert.Equal(t, want[j].Value, e.Value)
			}
			if !q.KeysOnly || q.ReturnsSizes {
				assert.Equal(t, len(want[j].Value), e.Size)
			}
		}
	}
}

type evenValues struct{}

func (evenValues) Filter(e query.Entry) bool {
	return len(e.Value) > 0 && e.Value[len(e.Value)-1]%2 == 0
}

// A failure after the first page is an error of the results, never a
// shorter result.
func TestQuery_ErrorAfterTheFirstPageIsReported(t *testing.T) {
	pool := newPool(t)
	d, err := pgds.New(t.Context(), pool, pgds.WithTable("kv"))
	require.NoError(t, err)
	ctx := t.Context()
	b, err := d.Batch(ctx)
	require.NoError(t, err)
	for i := range 1500 {
		require.NoError(t, b.Put(ctx, key(fmt.Sprintf("/k/%05d", i)), []byte("v")))
	}
	require.NoError(t, b.Commit(ctx))

	res, err := d.Query(ctx, query.Query{Prefix: "/k"})
	require.NoError(t, err)
	first, ok := res.NextSync()
	require.True(t, ok)
	require.NoError(t, first.Error)
	_, err = pool.Exec(ctx, "DROP TABLE kv")
	require.NoError(t, err)
	es, err := res.Rest()
	require.Error(t, err)
	assert.Len(t, es, 999, "the rest of the first page, then the error")
}

func TestQuery_ContextEnded(t *testing.T) {
	d, _ := openDS(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := d.Query(ctx, query.Query{})
	assert.ErrorIs(t, err, context.Canceled)
}

func TestQuery_ReturnsSizesWithKeysOnly(t *testing.T) {
	d, _ := openDS(t)
	require.NoError(t, d.Put(t.Context(), key("/a"), bytes.Repeat([]byte("x"), 7)))
	res, err := d.Query(t.Context(), query.Query{KeysOnly: true, ReturnsSizes: true})
	require.NoError(t, err)
	es, err := res.Rest()
	require.NoError(t, err)
	require.Len(t, es, 1)
	assert.Equal(t, 7, es[0].Size)
	assert.Nil(t, es[0].Value)
}

// Two read-modify-write transactions on one counter that lock it: the
// second waits for the first (the server shows it waiting), then reads
// what the first committed, and both commit: no ErrSerialization.
func TestLockedTxn_WaitsAndSeesTheCommitBeforeIt(t *testing.T) {
	d, url := openDS(t)
	ctx := t.Context()
	n := key("/n")
	require.NoError(t, d.Put(ctx, n, []byte{0}))
	lock := []datastore.Key{n}
	t1, err := d.NewLockedTransaction(ctx, false, lock, lock)
	require.NoError(t, err)
	v1, err := t1.Get(ctx, n)
	require.NoError(t, err)

	second := make(chan error, 1)
	go func() {
		t2, err := d.NewLockedTransaction(ctx, false, lock, lock)
		if err != nil {
			second <- err
			return
		}
		v2, err := t2.Get(ctx, n)
		if err != nil {
			t2.Discard(ctx)
			second <- err
			return
		}
		_ = t2.Put(ctx, n, []byte{v2[0] + 1})
		second <- t2.Commit(ctx)
	}()
	pool := newPoolAt(t, url)
	require.Eventually(t, func() bool {
		var waiting int
		err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&waiting)
		return err == nil && waiting == 1
	}, 30*time.Second, 5*time.Millisecond, "the second transaction waits for the lock")
	require.NoError(t, t1.Put(ctx, n, []byte{v1[0] + 1}))
	require.NoError(t, t1.Commit(ctx))
	require.NoError(t, <-second)

	v, err := d.Get(ctx, n)
	require.NoError(t, err)
	assert.Equal(t, []byte{2}, v, "both increments kept")
	var held int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'`).Scan(&held))
	assert.Zero(t, held, "a lock outlived its transaction")
}

func TestLockedTxn_ReadOnlyTakesNoLocks(t *testing.T) {
	d, _ := openDS(t)
	_, err := d.NewLockedTransaction(t.Context(), true, []datastore.Key{key("/n")}, nil)
	assert.ErrorIs(t, err, pgds.ErrReadOnly)
}

// A transaction reads a key at most once, and sees its own writes without
// sending them first.
func TestTxn_ReadsEachKeyOnce(t *testing.T) {
	d, _ := openDS(t)
	ctx := t.Context()
	require.NoError(t, d.Put(ctx, key("/a"), []byte("1")))
	tx, err := d.NewLockedTransaction(ctx, false, nil, []datastore.Key{key("/a"), key("/b")})
	require.NoError(t, err)
	before := d.RoundTrips()
	v, err := tx.Get(ctx, key("/a"))
	require.NoError(t, err)
	assert.Equal(t, []byte("1"), v)
	_, err = tx.Get(ctx, key("/b"))
	assert.ErrorIs(t, err, datastore.ErrNotFound)
	ok, err := tx.Has(ctx, key("/c"))
	require.NoError(t, err)
	assert.False(t, ok)
	ok, err = tx.Has(ctx, key("/c"))
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, tx.Put(ctx, key("/c"), []byte("3")))
	v, err = tx.Get(ctx, key("/c"))
	require.NoError(t, err)
	assert.Equal(t, []byte("3"), v)
	assert.Equal(t, uint64(1), d.RoundTrips()-before, "only the first Has of /c went to the server")
	require.NoError(t, tx.Commit(ctx))
	assert.Equal(t, uint64(2), d.RoundTrips()-before, "the writes went with the COMMIT")
	v, err = d.Get(ctx, key("/c"))
	require.NoError(t, err)
	assert.Equal(t, []byte("3"), v)
}

// Keys read ahead are any text: quotes, backslashes, commas and braces
// included.
func TestLockedTxn_PrefetchesOddKeys(t *testing.T) {
	d, _ := openDS(t)
	ctx := t.Context()
	keys := []datastore.Key{key(`/a"b`), key(`/c\d`), key(`/e,f{g}`), key("/h i"), key("/absent")}
	for _, k := range keys[:4] {
		require.NoError(t, d.Put(ctx, k, []byte(k.String())))
	}
	tx, err := d.NewLockedTransaction(ctx, false, keys, keys)
	require.NoError(t, err)
	before := d.RoundTrips()
	for _, k := range keys[:4] {
		v, err := tx.Get(ctx, k)
		require.NoError(t, err, k)
		assert.Equal(t, []byte(k.String()), v)
	}
	_, err = tx.Get(ctx, keys[4])
	assert.ErrorIs(t, err, datastore.ErrNotFound)
	assert.Equal(t, before, d.RoundTrips(), "read again")
	tx.Discard(ctx)
}

// A transaction's pending writes go with its next read of a key, in one
// round trip, and that read (Get, Has or GetSize) sees them and the rest.
func TestTxn_WritesGoWithTheNextRead(t *testing.T) {
	d, _ := openDS(t)
	ctx := t.Context()
	require.NoError(t, d.Put(ctx, key("/x"), []byte("xx")))
	tx, err := d.NewTransaction(ctx, false)
	require.NoError(t, err)
	before := d.RoundTrips()
	require.NoError(t, tx.Put(ctx, key("/w1"), []byte("1")))
	v, err := tx.Get(ctx, key("/x"))
	require.NoError(t, err)
	assert.Equal(t, []byte("xx"), v)
	require.NoError(t, tx.Put(ctx, key("/w2"), []byte("2")))
	ok, err := tx.Has(ctx, key("/y"))
	require.NoError(t, err)
	assert.False(t, ok)
	require.NoError(t, tx.Delete(ctx, key("/x")))
	_, err = tx.GetSize(ctx, key("/z"))
	assert.ErrorIs(t, err, datastore.ErrNotFound)
	assert.Equal(t, uint64(3), d.RoundTrips()-before, "each read carried the writes before it")
	res, err := tx.Query(ctx, query.Query{Prefix: "/"})
	require.NoError(t, err)
	all, err := res.Rest()
	require.NoError(t, err)
	var keys []string
	for _, e := range all {
		keys = append(keys, e.Key)
	}
	assert.Equal(t, []string{"/w1", "/w2"}, keys, "the server has the writes")
	require.NoError(t, tx.Commit(ctx))
	v, err = d.Get(ctx, key("/w2"))
	require.NoError(t, err)
	assert.Equal(t, []byte("2"), v)
}

// A write the server refuses fails the read it went with, as a conflict.
func TestTxn_RefusedWriteFailsTheRead(t *testing.T) {
	d, _ := openDS(t)
	ctx := t.Context()
	require.NoError(t, d.Put(ctx, key("/k"), []byte("0")))
	tx, err := d.NewLockedTransaction(ctx, false, nil, []datastore.Key{key("/k")})
	require.NoError(t, err)
	defer tx.Discard(ctx)
	require.NoError(t, d.Put(ctx, key("/k"), []byte("1"))) // after tx's snapshot
	require.NoError(t, tx.Put(ctx, key("/k"), []byte("2")))
	_, err = tx.Get(ctx, key("/other"))
	require.ErrorIs(t, err, pgds.ErrSerialization)
	var ce *pgds.ConflictError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, []string{"/k"}, ce.Keys)
}

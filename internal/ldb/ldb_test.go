package ldb_test

import (
	"errors"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dstest "github.com/ipfs/go-datastore/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"

	"github.com/stowage/stowage/internal/ldb"
)

func open(t *testing.T) *ldb.DS {
	t.Helper()
	d, err := ldb.Open(t.TempDir(), ldb.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// go-datastore's own conformance suite, the batch tests included.
func TestConformance(t *testing.T) {
	if testing.Short() {
		dstest.SubtestBasicPutGet(t, open(t))
		return
	}
	dstest.SubtestAll(t, open(t))
}

func TestBatch_AppliesInOrder(t *testing.T) {
	d := open(t)
	ctx := t.Context()
	k := datastore.NewKey("/k")
	b, err := d.Batch(ctx)
	require.NoError(t, err)
	require.NoError(t, b.Put(ctx, k, []byte("v")))
	require.NoError(t, b.Delete(ctx, k))
	require.NoError(t, b.Commit(ctx))
	has, err := d.Has(ctx, k)
	require.NoError(t, err)
	assert.False(t, has, "put then delete: absent")

	b, err = d.Batch(ctx)
	require.NoError(t, err)
	require.NoError(t, b.Delete(ctx, k))
	require.NoError(t, b.Put(ctx, k, []byte("v")))
	require.NoError(t, b.Commit(ctx))
	has, err = d.Has(ctx, k)
	require.NoError(t, err)
	assert.True(t, has, "delete then put: present")
}

func TestGetSize_ReadsTheLengthInPlace(t *testing.T) {
	d := open(t)
	ctx := t.Context()
	require.NoError(t, d.Put(ctx, datastore.NewKey("/a"), make([]byte, 77)))
	require.NoError(t, d.Put(ctx, datastore.NewKey("/a0"), make([]byte, 5)))
	n, err := d.GetSize(ctx, datastore.NewKey("/a"))
	require.NoError(t, err)
	assert.Equal(t, 77, n)
	_, err = d.GetSize(ctx, datastore.NewKey("/b"))
	assert.ErrorIs(t, err, datastore.ErrNotFound)
	_, err = d.GetSize(ctx, datastore.NewKey("/"))
	assert.ErrorIs(t, err, datastore.ErrNotFound, "a key that is a prefix of others is not found")
}

func TestClosed_EveryCallFails(t *testing.T) {
	d, err := ldb.Open(t.TempDir(), ldb.Options{NoSync: true})
	require.NoError(t, err)
	ctx := t.Context()
	k := datastore.NewKey("/k")
	require.NoError(t, d.Put(ctx, k, []byte("v")))
	b, err := d.Batch(ctx)
	require.NoError(t, err)
	require.NoError(t, b.Put(ctx, k, []byte("w")))
	require.NoError(t, d.Close())
	require.NoError(t, d.Close(), "idempotent")

	_, err = d.Get(ctx, k)
	assert.ErrorIs(t, err, ldb.ErrClosed)
	_, err = d.Has(ctx, k)
	assert.ErrorIs(t, err, ldb.ErrClosed)
	_, err = d.GetSize(ctx, k)
	assert.ErrorIs(t, err, ldb.ErrClosed)
	assert.ErrorIs(t, d.Put(ctx, k, nil), ldb.ErrClosed)
	assert.ErrorIs(t, d.Delete(ctx, k), ldb.ErrClosed)
	assert.ErrorIs(t, b.Commit(ctx), ldb.ErrClosed)
	_, err = d.Query(ctx, query.Query{})
	assert.ErrorIs(t, err, ldb.ErrClosed)
	assert.ErrorIs(t, d.Write(new(leveldb.Batch)), ldb.ErrClosed)
	assert.ErrorIs(t, d.Scan(k, false, func(string, []byte) error { return nil }), ldb.ErrClosed)
}

// Scan gives the keys under a prefix, and nothing outside it, in key order,
// with values the caller may keep; Write applies a batch in order.
func TestScan_PrefixInOrder(t *testing.T) {
	d, err := ldb.Open(t.TempDir(), ldb.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	var b leveldb.Batch
	for _, k := range []string{"/p/b", "/pp/x", "/p/a/c", "/q", "/p/a", "/p"} {
		b.Put([]byte(k), []byte(k))
	}
	b.Delete([]byte("/p/b"))
	b.Put([]byte("/p/b"), []byte("again"))
	require.NoError(t, d.Write(&b))

	type kv struct{ k, v string }
	scan := func(prefix string, keysOnly bool) []kv {
		var got []kv
		require.NoError(t, d.Scan(datastore.NewKey(prefix), keysOnly, func(k string, v []byte) error {
			got = append(got, kv{k, string(v)})
			return nil
		}))
		return got
	}
	assert.Equal(t, []kv{{"/p/a", "/p/a"}, {"/p/a/c", "/p/a/c"}, {"/p/b", "again"}}, scan("/p", false))
	assert.Equal(t, []kv{{"/p/a", ""}, {"/p/a/c", ""}, {"/p/b", ""}}, scan("/p", true))
	assert.Len(t, scan("/", true), 6)

	stop := errors.New("stop")
	n := 0
	err = d.Scan(datastore.NewKey("/p"), true, func(string, []byte) error { n++; return stop })
	assert.ErrorIs(t, err, stop)
	assert.Equal(t, 1, n)
}

// A query open when the store closes ends with an error, not silently.
func TestQuery_ClosedMidwayIsAnError(t *testing.T) {
	d, err := ldb.Open(t.TempDir(), ldb.Options{NoSync: true})
	require.NoError(t, err)
	ctx := t.Context()
	for _, k := range []string{"/p/1", "/p/2", "/p/3"} {
		require.NoError(t, d.Put(ctx, datastore.NewKey(k), []byte(k)))
	}
	res, err := d.Query(ctx, query.Query{Prefix: "/p"})
	require.NoError(t, err)
	first, ok := res.NextSync()
	require.True(t, ok)
	require.NoError(t, first.Error)
	require.NoError(t, d.Close())
	var last error
	for r := range res.Next() {
		if r.Error != nil {
			last = r.Error
		}
	}
	assert.True(t, errors.Is(last, ldb.ErrClosed), "got %v", last)
	_ = res.Close()
}

func TestTransaction_CommitsOrDiscards(t *testing.T) {
	d := open(t)
	ctx := t.Context()
	k := datastore.NewKey("/k")
	txn, err := d.NewTransaction(ctx, false)
	require.NoError(t, err)
	require.NoError(t, txn.Put(ctx, k, []byte("v")))
	v, err := txn.Get(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, []byte("v"), v, "a transaction reads its own writes")
	txn.Discard(ctx)
	has, err := d.Has(ctx, k)
	require.NoError(t, err)
	assert.False(t, has)

	txn, err = d.NewTransaction(ctx, false)
	require.NoError(t, err)
	require.NoError(t, txn.Put(ctx, k, []byte("v")))
	require.NoError(t, txn.Commit(ctx))
	v, err = d.Get(ctx, k)
	require.NoError(t, err)
	assert.Equal(t, []byte("v"), v)
}

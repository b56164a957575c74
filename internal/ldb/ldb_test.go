package ldb_test

import (
	"errors"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dstest "github.com/ipfs/go-datastore/test"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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

package engine

import (
	"strings"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCheckBlockKey(t *testing.T) {
	for _, c := range []struct {
		key datastore.Key
		ok  bool
	}{
		{datastore.Key{}, false},
		{datastore.NewKey(""), false},
		{datastore.NewKey("/"), false},
		{datastore.RawKey(""), false},
		{datastore.RawKey("//a"), false},
		{datastore.RawKey("/a/.."), false},
		{datastore.RawKey("/./a"), false},
		{datastore.RawKey("/a\x00"), false},
		{datastore.RawKey("/\xff"), false},
		{datastore.NewKey(strings.Repeat("a", MaxKeyLen)), false}, // with its "/", one byte too long
		{datastore.NewKey(strings.Repeat("a", MaxKeyLen-1)), true},
		{datastore.NewKey("a"), true},
		{datastore.NewKey("/a/b c/é"), true},
	} {
		err := CheckBlockKey(c.key)
		if c.ok {
			assert.NoError(t, err, "%q", c.key.String())
		} else {
			assert.ErrorIs(t, err, ErrInvalidKey, "%q", c.key.String())
		}
	}
}

// A change that stages a block under an odd key fails with ErrInvalidKey
// and writes nothing, whatever path it took to the transaction.
func TestTx_BlockWritesRefuseOddKeys(t *testing.T) {
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	e, err := New(t.Context(), Config{Max: 100, Meta: ds})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	for _, k := range []datastore.Key{{}, datastore.NewKey("/"), datastore.RawKey("/a/..")} {
		err := e.Update(t.Context(), func(tx *Tx) error { return tx.ReplaceBlock(k, []byte("x"), 0) })
		assert.ErrorIs(t, err, ErrInvalidKey)
		err = e.Update(t.Context(), func(tx *Tx) error { _, err := tx.DeleteBlock(k); return err })
		assert.ErrorIs(t, err, ErrInvalidKey)
	}
	assert.Equal(t, Counters{}, e.Counters())
	res, err := ds.Query(t.Context(), query.Query{})
	require.NoError(t, err)
	entries, err := res.Rest()
	require.NoError(t, err)
	assert.Empty(t, entries)
}

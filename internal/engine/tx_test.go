package engine

import (
	"testing"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Blocks move Used, read through the change's own writes, and land where
// the reads outside a change find them; with blocks in a store of their
// own too.
func TestTx_Blocks(t *testing.T) {
	for _, separate := range []bool{false, true} {
		t.Run(map[bool]string{false: "shared store", true: "separate"}[separate], func(t *testing.T) {
			meta := dssync.MutexWrap(datastore.NewMapDatastore())
			c := Config{Max: 100, Meta: meta}
			if separate {
				c.Blocks = dssync.MutexWrap(datastore.NewMapDatastore())
			}
			e, err := New(t.Context(), c)
			require.NoError(t, err)
			t.Cleanup(func() { _ = e.Close() })
			assert.Equal(t, uint64(100), e.Max())
			assert.Same(t, meta, e.Meta())
			a, b := datastore.NewKey("/a"), datastore.NewKey("/b")

			require.NoError(t, e.Update(t.Context(), func(tx *Tx) error {
				assert.Equal(t, uint64(100), tx.Max())
				assert.Equal(t, t.Context(), tx.Context())
				require.NoError(t, tx.Reserve(20))
				require.NoError(t, tx.PutBlock(a, make([]byte, 10)))
				n, ok, err := tx.BlockSize(a)
				require.NoError(t, err)
				assert.True(t, ok)
				assert.Equal(t, uint64(10), n)
				require.NoError(t, tx.PutBlock(a, make([]byte, 4)), "an overwrite counts the difference")
				require.ErrorIs(t, tx.PutBlock(b, make([]byte, 77)), ErrQuotaNotEnough)
				require.ErrorIs(t, tx.Release(21), ErrReleaseExceedsReserved)
				require.NoError(t, tx.Release(5))
				return tx.PutBlock(b, make([]byte, 6))
			}))
			assert.Equal(t, Counters{Used: 10, Reserved: 15}, e.Counters())
			got, err := e.GetBlock(t.Context(), a)
			require.NoError(t, err)
			assert.Len(t, got, 4)
			ok, err := e.HasBlock(t.Context(), b)
			require.NoError(t, err)
			assert.True(t, ok)
			n, err := e.CountBlocks(t.Context())
			require.NoError(t, err)
			assert.Equal(t, uint64(2), n)
			require.NoError(t, e.View(t.Context(), func(tx *Tx) error { return tx.VerifyCounters() }))

			require.NoError(t, e.Update(t.Context(), func(tx *Tx) error {
				n, err := tx.DeleteBlock(a)
				require.NoError(t, err)
				assert.Equal(t, uint64(4), n)
				n, err = tx.DeleteBlock(a)
				require.NoError(t, err)
				assert.Zero(t, n, "already deleted in this change")
				return tx.ForgetBlock(b, 6)
			}))
			assert.Equal(t, Counters{Reserved: 15}, e.Counters())
			require.NoError(t, e.Snapshot(t.Context(), func(tx *Tx) error { return tx.VerifyCounters() }))
			require.NoError(t, e.Read(t.Context(), func(tx *Tx) error {
				_, err := tx.Get(datastore.NewKey("/none"))
				require.ErrorIs(t, err, datastore.ErrNotFound)
				return nil
			}))
			// Used that no block accounts for is reported.
			require.NoError(t, e.Update(t.Context(), func(tx *Tx) error { return tx.PutBlock(a, []byte("x")) }))
			if separate {
				require.NoError(t, c.Blocks.Delete(t.Context(), a))
			} else {
				require.NoError(t, meta.Delete(t.Context(), BlocksPrefix.Child(a)))
			}
			require.ErrorIs(t, e.View(t.Context(), func(tx *Tx) error { return tx.VerifyCounters() }), ErrInvariant)
		})
	}
}

// A repo holding more than a lowered Max still moves the bytes it holds.
func TestTx_WithinWhatTheRepoHolds(t *testing.T) {
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	require.NoError(t, ds.Put(t.Context(), ReservedKey, encodeCounter(50)))
	e, err := New(t.Context(), Config{Max: 10, Meta: ds})
	require.NoError(t, err)
	require.NoError(t, e.Update(t.Context(), func(tx *Tx) error {
		require.NoError(t, tx.Release(20))
		require.NoError(t, tx.PutBlock(datastore.NewKey("/a"), make([]byte, 20)), "Reserved to Used within what is held")
		require.ErrorIs(t, tx.Reserve(5), ErrQuotaNotEnough, "nothing above what is held")
		return tx.Reserve(0)
	}))
	require.ErrorIs(t, e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(1) }), ErrQuotaNotEnough)
	assert.Equal(t, Counters{Used: 20, Reserved: 30}, e.Counters())
}

// Reads outside a change see what is durable; the Scan in key order.
func TestEngine_ReadsOutsideAChange(t *testing.T) {
	e, err := New(t.Context(), Config{Max: 10, Meta: dssync.MutexWrap(datastore.NewMapDatastore())})
	require.NoError(t, err)
	require.NoError(t, e.Update(t.Context(), func(tx *Tx) error {
		for _, k := range []string{"/p/b", "/p/a", "/q/c"} {
			require.NoError(t, tx.Put(datastore.NewKey(k), []byte(k)))
		}
		return nil
	}))
	var keys []string
	require.NoError(t, e.Scan(t.Context(), datastore.NewKey("/p"), false, func(k string, v []byte) error {
		assert.Equal(t, k, string(v))
		keys = append(keys, k)
		return nil
	}))
	assert.Equal(t, []string{"/p/a", "/p/b"}, keys)
	v, err := e.Get(t.Context(), datastore.NewKey("/q/c"))
	require.NoError(t, err)
	assert.Equal(t, "/q/c", string(v))
	require.NoError(t, e.Close())
	_, err = e.Get(t.Context(), datastore.NewKey("/q/c"))
	require.ErrorIs(t, err, ErrClosed)
	_, err = e.GetBlock(t.Context(), datastore.NewKey("/q/c"))
	require.ErrorIs(t, err, ErrClosed)
	_, err = e.HasBlock(t.Context(), datastore.NewKey("/q/c"))
	require.ErrorIs(t, err, ErrClosed)
	_, err = e.CountBlocks(t.Context())
	require.ErrorIs(t, err, ErrClosed)
	require.ErrorIs(t, e.Scan(t.Context(), datastore.NewKey("/"), true, nil), ErrClosed)
	require.ErrorIs(t, e.View(t.Context(), nil), ErrClosed)
	require.ErrorIs(t, e.Read(t.Context(), nil), ErrClosed)
	require.ErrorIs(t, e.Snapshot(t.Context(), nil), ErrClosed)
}

// A watch is hit by a put under its prefix staged after it started, and
// not by a delete, a block or another prefix.
func TestWatch(t *testing.T) {
	e, err := New(t.Context(), Config{Max: 10, Meta: dssync.MutexWrap(datastore.NewMapDatastore())})
	require.NoError(t, err)
	w := e.Watch(datastore.NewKey("/p"))
	defer w.Stop()
	other := e.Watch(datastore.NewKey("/q"))
	other.Stop()
	write := func(f func(tx *Tx) error) { require.NoError(t, e.Update(t.Context(), f)) }
	write(func(tx *Tx) error { return tx.Put(datastore.NewKey("/pp/a"), nil) })
	write(func(tx *Tx) error { return tx.Delete(datastore.NewKey("/p/a")) })
	write(func(tx *Tx) error { return tx.PutBlock(datastore.NewKey("/p/a"), nil) })
	assert.False(t, w.Hit())
	write(func(tx *Tx) error {
		assert.Equal(t, tx.Generation(), tx.Generation())
		assert.False(t, tx.Shared())
		return tx.Put(datastore.NewKey("/p/a"), nil)
	})
	assert.True(t, w.Hit())
	write(func(tx *Tx) error { return tx.Put(datastore.NewKey("/q/a"), nil) })
	assert.False(t, other.Hit(), "a stopped watch is not hit")
}

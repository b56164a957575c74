package engine

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/internal/ldb"
)

func openLDB(t *testing.T) *Engine {
	t.Helper()
	dir := t.TempDir()
	e, err := New(context.Background(), Config{Max: 1 << 20, Open: func() (datastore.Batching, io.Closer, error) {
		d, err := ldb.Open(dir, ldb.Options{NoSync: true})
		return d, d, err
	}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// A snapshot sees the state it was taken at, with its counters, while
// later changes go on and are durable; the view cannot write.
func TestSnapshot_SeesOneStateWhileChangesGoOn(t *testing.T) {
	e := openLDB(t)
	ctx := context.Background()
	k := datastore.NewKey("/k")
	require.NoError(t, e.Update(ctx, func(tx *Tx) error {
		require.NoError(t, tx.Reserve(10))
		return tx.Put(k, []byte("1"))
	}))
	err := e.Snapshot(ctx, func(tx *Tx) error {
		// A change made while the snapshot is read completes.
		require.NoError(t, e.Update(ctx, func(tx *Tx) error {
			require.NoError(t, tx.Reserve(5))
			return tx.Put(k, []byte("2"))
		}))
		v, err := tx.Get(k)
		require.NoError(t, err)
		require.Equal(t, "1", string(v))
		require.Equal(t, uint64(10), tx.Counters().Reserved)
		require.NoError(t, tx.VerifyCounters())
		n := 0
		require.NoError(t, tx.Scan(datastore.NewKey("/"), false, func(key string, value []byte) error {
			if key == "/k" {
				require.Equal(t, "1", string(value))
				n++
			}
			return nil
		}))
		require.Equal(t, 1, n)
		return tx.Put(k, []byte("3"))
	})
	require.True(t, errors.Is(err, errReadOnly), "got %v", err)
	require.NoError(t, e.Read(ctx, func(tx *Tx) error {
		v, err := tx.Get(k)
		require.NoError(t, err)
		require.Equal(t, "2", string(v))
		require.Equal(t, uint64(15), tx.Counters().Reserved)
		return nil
	}))
}

package engine

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// conflictDS is a datastore whose transactions always fail to commit with
// a conflict on the used counter, each commit taking commitTook.
type conflictDS struct {
	*datastore.MapDatastore
	commitTook time.Duration
	commits    atomic.Int64
}

func (d *conflictDS) NewTransaction(ctx context.Context, readOnly bool) (datastore.Txn, error) {
	return conflictTxn{d}, nil
}

type conflictTxn struct{ d *conflictDS }

func (t conflictTxn) Get(ctx context.Context, k datastore.Key) ([]byte, error) {
	return t.d.MapDatastore.Get(ctx, k)
}

func (t conflictTxn) Has(ctx context.Context, k datastore.Key) (bool, error) {
	return t.d.MapDatastore.Has(ctx, k)
}

func (t conflictTxn) GetSize(ctx context.Context, k datastore.Key) (int, error) {
	return t.d.MapDatastore.GetSize(ctx, k)
}

func (t conflictTxn) Query(ctx context.Context, q query.Query) (query.Results, error) {
	return t.d.MapDatastore.Query(ctx, q)
}

func (t conflictTxn) Put(context.Context, datastore.Key, []byte) error { return nil }
func (t conflictTxn) Delete(context.Context, datastore.Key) error      { return nil }
func (t conflictTxn) Discard(context.Context)                          {}

func (t conflictTxn) Commit(ctx context.Context) error {
	time.Sleep(t.d.commitTook)
	t.d.commits.Add(1)
	return errConflictOnUsed{}
}

type errConflictOnUsed struct{}

func (errConflictOnUsed) Error() string          { return "injected conflict" }
func (errConflictOnUsed) Retryable() bool        { return true }
func (errConflictOnUsed) ConflictKeys() []string { return []string{UsedKey.String()} }

// A change whose attempts each take long and conflict stops retrying once
// the call has run maxRetryTime, well before maxAttempts, and ErrConflict
// names the keys that conflicted. (synctest's clock: no real waiting.)
func TestShared_RetriesBoundedInTimeAndNameTheKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &conflictDS{MapDatastore: datastore.NewMapDatastore(), commitTook: 3 * time.Second}
		e, err := New(t.Context(), Config{Max: 100, Meta: d, Shared: true})
		require.NoError(t, err)
		start := time.Now()
		err = e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(1) })
		took := time.Since(start)
		require.ErrorIs(t, err, ErrConflict)
		assert.Contains(t, err.Error(), "conflicting on keys "+UsedKey.String())
		assert.Less(t, d.commits.Load(), int64(maxAttempts), "retried past the time budget")
		assert.GreaterOrEqual(t, took, maxRetryTime)
		assert.Less(t, took, maxRetryTime+d.commitTook+maxBackoff)
		assert.Equal(t, uint64(1), e.RetriesPerCall()[d.commits.Load()-1], "the call is counted by its retries")
	})
}

// Quick conflicts still stop at maxAttempts.
func TestShared_RetriesBoundedInAttempts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		d := &conflictDS{MapDatastore: datastore.NewMapDatastore()}
		e, err := New(t.Context(), Config{Max: 100, Meta: d, Shared: true})
		require.NoError(t, err)
		err = e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(1) })
		require.ErrorIs(t, err, ErrConflict)
		assert.Equal(t, int64(maxAttempts), d.commits.Load())
	})
}

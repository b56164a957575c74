package repo_test

import (
	"errors"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/failstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
)

func TestPutBlock_CountsUsed(t *testing.T) {
	r, ds := newRepo(t, 100)
	k := datastore.NewKey("block")
	require.NoError(t, r.PutBlock(t.Context(), k, make([]byte, 10)))
	assert.Equal(t, uint64(10), r.Quota().Used)
	assert.Equal(t, uint64(10), counter(t, ds, repo.UsedKey))

	got, err := r.GetBlock(t.Context(), k)
	require.NoError(t, err)
	assert.Len(t, got, 10)
	has, err := r.HasBlock(t.Context(), k)
	require.NoError(t, err)
	assert.True(t, has)
}

func TestPutBlock_OverwriteIsNotDoubleCounted(t *testing.T) {
	r, _ := newRepo(t, 100)
	k := datastore.NewKey("block")
	require.NoError(t, r.PutBlock(t.Context(), k, make([]byte, 10)))
	require.NoError(t, r.PutBlock(t.Context(), k, make([]byte, 10)))
	assert.Equal(t, uint64(10), r.Quota().Used)
	require.NoError(t, r.PutBlock(t.Context(), k, make([]byte, 4)))
	assert.Equal(t, uint64(4), r.Quota().Used)
	require.NoError(t, r.PutBlock(t.Context(), k, make([]byte, 30)))
	assert.Equal(t, uint64(30), r.Quota().Used)
}

func TestPutBlock_DoesNotFit(t *testing.T) {
	r, _ := newRepo(t, 100)
	require.NoError(t, r.Reserve(t.Context(), 95))
	k := datastore.NewKey("block")
	err := r.PutBlock(t.Context(), k, make([]byte, 6))
	require.ErrorIs(t, err, repo.ErrQuotaNotEnough)
	assert.Equal(t, uint64(0), r.Quota().Used)
	has, err := r.HasBlock(t.Context(), k)
	require.NoError(t, err)
	assert.False(t, has)

	// Releasing reserved bytes first makes room for the block they were for.
	require.NoError(t, r.Release(t.Context(), 6))
	require.NoError(t, r.PutBlock(t.Context(), k, make([]byte, 6)))
	assert.Equal(t, repo.Quota{Max: 100, Used: 6, Reserved: 89}, r.Quota())
}

func TestDeleteBlock_SubtractsUsed(t *testing.T) {
	r, ds := newRepo(t, 100)
	k := datastore.NewKey("block")
	require.NoError(t, r.PutBlock(t.Context(), k, make([]byte, 10)))
	require.NoError(t, r.DeleteBlock(t.Context(), k))
	assert.Equal(t, uint64(0), r.Quota().Used)
	assert.Equal(t, uint64(0), counter(t, ds, repo.UsedKey))
	_, err := r.GetBlock(t.Context(), k)
	assert.ErrorIs(t, err, datastore.ErrNotFound)

	require.NoError(t, r.DeleteBlock(t.Context(), k), "deleting a missing block is not an error")
}

func TestBlocks_DoNotCollideWithMetadata(t *testing.T) {
	r, ds := newRepo(t, 100)
	// A block whose key looks like a quota counter must not overwrite it.
	require.NoError(t, r.Reserve(t.Context(), 7))
	require.NoError(t, r.PutBlock(t.Context(), repo.ReservedKey, []byte("x")))
	assert.Equal(t, uint64(7), counter(t, ds, repo.ReservedKey))
}

func TestWithBlockstore_KeepsBlocksApart(t *testing.T) {
	meta, blocks := newMem(), newMem()
	r, err := repo.New(t.Context(), meta, repo.WithQuotaMaxBytes(100), repo.WithBlockstore(blocks))
	require.NoError(t, err)
	k := datastore.NewKey("b")
	require.NoError(t, r.PutBlock(t.Context(), k, make([]byte, 12)))
	v, err := blocks.Get(t.Context(), k)
	require.NoError(t, err)
	assert.Len(t, v, 12)
	assert.Equal(t, uint64(12), counter(t, meta, repo.UsedKey))
	require.NoError(t, r.PutBlock(t.Context(), k, make([]byte, 2)))
	assert.Equal(t, uint64(2), counter(t, meta, repo.UsedKey))
	require.NoError(t, r.DeleteBlock(t.Context(), k))
	assert.Equal(t, uint64(0), counter(t, meta, repo.UsedKey))
	assert.Equal(t, uint64(0), r.Quota().Used)
}

// With blocks in a separate store a failure between the two writes may only
// over-count Used, never under-count it, and the repo writes nothing more
// until it is reopened.
func TestWithBlockstore_FailureOverCounts(t *testing.T) {
	meta := newMem()
	var fail atomic.Bool
	blocks := failstore.NewFailstore(newMem(), func(op string) error {
		if fail.Load() && op == "batch-commit" {
			return errInjected
		}
		return nil
	})
	r, err := repo.New(t.Context(), meta, repo.WithQuotaMaxBytes(100), repo.WithBlockstore(blocks))
	require.NoError(t, err)
	fail.Store(true)
	err = r.PutBlock(t.Context(), datastore.NewKey("b"), make([]byte, 5))
	require.ErrorIs(t, err, errInjected)
	require.ErrorIs(t, err, repo.ErrWriteFailed)
	assert.Equal(t, uint64(5), r.Quota().Used, "memory follows the counter on disk: an over-count")
	fail.Store(false)
	require.ErrorIs(t, r.Reserve(t.Context(), 1), repo.ErrWriteFailed, "no write after a failed one")

	r, err = repo.New(t.Context(), meta, repo.WithQuotaMaxBytes(100), repo.WithBlockstore(blocks))
	require.NoError(t, err)
	assert.Equal(t, uint64(5), r.Quota().Used, "the counter was written before the block: an over-count")
	require.ErrorIs(t, r.Verify(t.Context()), repo.ErrInvariant)

	// Deleting: the block goes first, so a failure leaves it counted.
	meta = newMem()
	r, err = repo.New(t.Context(), meta, repo.WithQuotaMaxBytes(100), repo.WithBlockstore(blocks))
	require.NoError(t, err)
	require.NoError(t, r.PutBlock(t.Context(), datastore.NewKey("b"), make([]byte, 5)))
	fail.Store(true)
	require.ErrorIs(t, r.DeleteBlock(t.Context(), datastore.NewKey("b")), repo.ErrWriteFailed)
	fail.Store(false)
	r, err = repo.New(t.Context(), meta, repo.WithQuotaMaxBytes(100), repo.WithBlockstore(blocks))
	require.NoError(t, err)
	assert.Equal(t, uint64(5), r.Quota().Used)
	require.NoError(t, r.Verify(t.Context()), "the failed delete reached neither store")
}

func TestGetBlock_Missing(t *testing.T) {
	r, _ := newRepo(t, 100)
	_, err := r.GetBlock(t.Context(), datastore.NewKey("nope"))
	assert.True(t, errors.Is(err, datastore.ErrNotFound))
}

package repo_test

import (
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
)

// The one fsyncing test: state survives close and reopen of the embedded
// LevelDB.
func TestOpen_SurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	r, err := repo.Open(t.Context(), dir, repo.WithQuotaMaxBytes(1000))
	require.NoError(t, err)
	require.NoError(t, r.Reserve(t.Context(), 300))
	require.NoError(t, r.PutBlock(t.Context(), datastore.NewKey("b"), []byte("stored")))
	require.NoError(t, r.Close())

	again, err := repo.Open(t.Context(), dir, repo.WithQuotaMaxBytes(1000))
	require.NoError(t, err)
	t.Cleanup(func() { _ = again.Close() })
	assert.Equal(t, repo.Quota{Max: 1000, Used: 6, Reserved: 300}, again.Quota())
	b, err := again.GetBlock(t.Context(), datastore.NewKey("b"))
	require.NoError(t, err)
	assert.Equal(t, []byte("stored"), b)
}

func TestOpen_WithTransactions(t *testing.T) {
	r, err := repo.Open(t.Context(), t.TempDir(), repo.WithNoSync(), repo.WithTransactions(), repo.WithQuotaMaxBytes(100))
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	require.NoError(t, r.Reserve(t.Context(), 60))
	assert.ErrorIs(t, r.Reserve(t.Context(), 41), repo.ErrQuotaNotEnough)
	fresh, err := repo.New(t.Context(), r.Datastore())
	require.NoError(t, err)
	assert.Equal(t, uint64(60), fresh.Quota().Reserved)
}

func TestOpen_EmptyDir(t *testing.T) {
	_, err := repo.Open(t.Context(), "")
	assert.ErrorIs(t, err, repo.ErrInvalidOption)
}

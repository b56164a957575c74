package repo_test

import (
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/failstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/internal/faultfs"
	"github.com/stowage/stowage/repo"
)

// ErrWriteFailed says what holds next: a repo from New writes nothing until
// it is reopened.
func TestErrWriteFailed_NewSaysNoWritesUntilReopened(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	ds := failstore.NewFailstore(newMem(), func(op string) error {
		if fail.Load() && op == "batch-commit" {
			return errInjected
		}
		return nil
	})
	r, err := repo.New(t.Context(), ds, repo.WithQuotaMaxBytes(100))
	require.NoError(t, err)
	err = r.Reserve(t.Context(), 1)
	require.ErrorIs(t, err, repo.ErrWriteFailed)
	assert.Contains(t, err.Error(), "outcome unknown")
	assert.Contains(t, err.Error(), "no writes until the repo is reopened")
	fail.Store(false)
	err = r.Reserve(t.Context(), 1)
	require.ErrorIs(t, err, repo.ErrWriteFailed)
	assert.Contains(t, err.Error(), "no writes until the repo is reopened")
}

// A repo from Open reopens its database itself, and says so.
func TestErrWriteFailed_OpenSaysItReopens(t *testing.T) {
	f := &faultfs.Faults{}
	r, err := repo.Open(t.Context(), t.TempDir(), repo.WithQuotaMaxBytes(100), repo.WithStorageForTest(f.Wrap))
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	f.FailNextJournalSync()
	err = r.PutBlock(t.Context(), datastore.NewKey("b"), []byte("x"))
	require.ErrorIs(t, err, repo.ErrWriteFailed)
	assert.Contains(t, err.Error(), "outcome unknown")
	assert.Contains(t, err.Error(), "reopens its database")
	assert.NotContains(t, err.Error(), "no writes until")
	require.NoError(t, r.Reserve(t.Context(), 1), "it did reopen")
}

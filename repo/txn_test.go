package repo_test

import (
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/internal/ldb"
	"github.com/stowage/stowage/repo"
)

func openLDB(t *testing.T) *ldb.DS {
	t.Helper()
	db, err := ldb.Open(t.TempDir(), ldb.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// WithTransactions works on a store whose transactions work: LevelDB, and
// a namespace wrapper over it (keytransform hands transactions through).
func TestWithTransactions_WorksWhereTransactionsWork(t *testing.T) {
	for name, ds := range map[string]datastore.Batching{
		"leveldb":   openLDB(t),
		"namespace": namespace.Wrap(openLDB(t), datastore.NewKey("/ns")),
	} {
		t.Run(name, func(t *testing.T) {
			r, err := repo.New(t.Context(), ds, repo.WithTransactions(), repo.WithQuotaMaxBytes(100))
			require.NoError(t, err)
			require.NoError(t, r.Reserve(t.Context(), 60))
			require.NoError(t, r.PutBlock(t.Context(), datastore.NewKey("b"), []byte("data")))
			require.NoError(t, r.Verify(t.Context()))
			fresh, err := repo.New(t.Context(), ds)
			require.NoError(t, err)
			assert.Equal(t, repo.Quota{Max: repo.DefaultQuotaMaxBytes, Used: 4, Reserved: 60}, fresh.Quota())
		})
	}
}

// A namespace (keytransform) wrapper has NewTransaction whatever it wraps;
// over a store without transactions it fails at first use, and New says so.
func TestWithTransactions_RefusedWhereTheyFailAtUse(t *testing.T) {
	ds := namespace.Wrap(newMem(), datastore.NewKey("/ns"))
	require.Implements(t, (*datastore.TxnDatastore)(nil), ds, "the wrapper has the method")
	_, err := repo.New(t.Context(), ds, repo.WithTransactions())
	assert.ErrorIs(t, err, repo.ErrInvalidOption)
}

package stowagetest_test

import (
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dssync "github.com/ipfs/go-datastore/sync"
	leveldb "github.com/ipfs/go-ds-leveldb"

	"github.com/stowage/stowage/stowagetest"
)

func TestMapDatastore(t *testing.T) {
	stowagetest.Datastore(t, func(testing.TB) datastore.Batching {
		return dssync.MutexWrap(datastore.NewMapDatastore())
	})
}

// A repo in a namespace of a larger store the application already has.
func TestNamespacedDatastore(t *testing.T) {
	stowagetest.Datastore(t, func(testing.TB) datastore.Batching {
		return namespace.Wrap(dssync.MutexWrap(datastore.NewMapDatastore()), datastore.NewKey("/app/stowage"))
	})
}

func TestLevelDB(t *testing.T) {
	stowagetest.Datastore(t, func(t testing.TB) datastore.Batching {
		db, err := leveldb.NewDatastore(t.TempDir(), &leveldb.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		return db
	})
}

// The process is killed in the middle of writes, three times; every
// invariant and every acknowledged write must survive.
func TestLevelDB_CrashSafety(t *testing.T) {
	stowagetest.CrashSafety(t, func(dir string) (datastore.Batching, error) {
		return leveldb.NewDatastore(dir, &leveldb.Options{NoSync: true})
	})
}

// Blocks in a store of their own (repo.WithBlockstore).
func TestSeparateBlockstore(t *testing.T) {
	open := func(testing.TB) datastore.Batching { return dssync.MutexWrap(datastore.NewMapDatastore()) }
	stowagetest.Datastore(t, open, stowagetest.WithBlockstore(open))
}

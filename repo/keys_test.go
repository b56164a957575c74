package repo_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/internal/oddkeys"
	"github.com/stowage/stowage/repo"
)

// goodKeys are odd-looking keys that are proper children of the block
// prefix: accepted and read back.
func goodKeys() map[string]datastore.Key {
	return map[string]datastore.Key{
		`NewKey("a")`:          datastore.NewKey("a"),
		`NewKey("/../x")`:      datastore.NewKey("/../x"), // cleaned to /x
		`NewKey("/blocks")`:    datastore.NewKey("/blocks"),
		`RawKey("/a b/c")`:     datastore.RawKey("/a b/c"),
		"1024 bytes":           datastore.NewKey(strings.Repeat("k", 1023)),
		"UTF-8":                datastore.NewKey("/ブロック/é"),
		"the quota's own name": datastore.NewKey("/meta/quota/used"),
	}
}

type keyBackend struct {
	name string
	open func(t *testing.T) (*repo.Repo, []datastore.Read)
}

func keyBackends() []keyBackend {
	return []keyBackend{
		{"memory", func(t *testing.T) (*repo.Repo, []datastore.Read) {
			ds := newMem()
			r, err := repo.New(t.Context(), ds, repo.WithQuotaMaxBytes(1<<20))
			require.NoError(t, err)
			return r, []datastore.Read{ds}
		}},
		{"memory, separate blockstore", func(t *testing.T) (*repo.Repo, []datastore.Read) {
			meta, blocks := newMem(), newMem()
			r, err := repo.New(t.Context(), meta, repo.WithQuotaMaxBytes(1<<20), repo.WithBlockstore(blocks))
			require.NoError(t, err)
			return r, []datastore.Read{meta, blocks}
		}},
		{"leveldb", func(t *testing.T) (*repo.Repo, []datastore.Read) {
			r, err := repo.Open(t.Context(), t.TempDir(), repo.WithQuotaMaxBytes(1<<20), repo.WithNoSync())
			require.NoError(t, err)
			t.Cleanup(func() { _ = r.Close() })
			return r, []datastore.Read{r.Datastore()}
		}},
	}
}

// dump returns every entry of the stores.
func dump(t *testing.T, stores []datastore.Read) map[string]string {
	t.Helper()
	m := map[string]string{}
	for i, ds := range stores {
		res, err := ds.Query(t.Context(), query.Query{})
		require.NoError(t, err)
		entries, err := res.Rest()
		require.NoError(t, err)
		for _, e := range entries {
			m[fmt.Sprint(i, e.Key)] = string(e.Value)
		}
	}
	return m
}

// noPanic runs fn, turning a panic into an error.
func noPanic(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panicked: %v", p)
		}
	}()
	return fn()
}

// Issue 17 item 3: an odd block key is refused with ErrInvalidKey by every
// call that takes one, nothing is written, nothing panics, and the books
// stay balanced.
func TestBlockCalls_RefuseOddKeys(t *testing.T) {
	for _, b := range keyBackends() {
		t.Run(b.name, func(t *testing.T) {
			r, stores := b.open(t)
			ctx := t.Context()
			require.NoError(t, r.PutBlock(ctx, datastore.NewKey("held"), []byte("held")))
			require.NoError(t, r.Reserve(ctx, 10))
			before, quota := dump(t, stores), r.Quota()
			for name, k := range oddkeys.Block() {
				calls := map[string]func() error{
					"PutBlock":            func() error { return r.PutBlock(ctx, k, []byte("data")) },
					"PutBlock of nothing": func() error { return r.PutBlock(ctx, k, nil) },
					"GetBlock":            func() error { _, err := r.GetBlock(ctx, k); return err },
					"HasBlock":            func() error { _, err := r.HasBlock(ctx, k); return err },
					"DeleteBlock":         func() error { return r.DeleteBlock(ctx, k) },
				}
				for call, fn := range calls {
					assert.ErrorIs(t, noPanic(fn), repo.ErrInvalidKey, "%s, %s", call, name)
				}
				assert.Equal(t, before, dump(t, stores), "%s: nothing written", name)
				assert.Equal(t, quota, r.Quota(), name)
			}
			require.NoError(t, r.Verify(ctx))
			got, err := r.GetBlock(ctx, datastore.NewKey("held"))
			require.NoError(t, err)
			assert.Equal(t, []byte("held"), got)
		})
	}
}

// Keys that look odd but are proper children of the block prefix work.
func TestBlockCalls_AcceptProperKeys(t *testing.T) {
	for _, b := range keyBackends() {
		t.Run(b.name, func(t *testing.T) {
			r, _ := b.open(t)
			ctx := t.Context()
			for name, k := range goodKeys() {
				require.NoError(t, r.PutBlock(ctx, k, []byte(name)), name)
				got, err := r.GetBlock(ctx, k)
				require.NoError(t, err, name)
				assert.Equal(t, []byte(name), got)
				has, err := r.HasBlock(ctx, k)
				require.NoError(t, err, name)
				assert.True(t, has, name)
			}
			require.NoError(t, r.Verify(ctx))
			for name, k := range goodKeys() {
				require.NoError(t, r.DeleteBlock(ctx, k), name)
			}
			assert.Equal(t, uint64(0), r.Quota().Used)
			require.NoError(t, r.Verify(ctx))
		})
	}
}

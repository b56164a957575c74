package repo

import (
	"context"
	"errors"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/failstore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func group(cs ...Change) []*pendingChange {
	g := make([]*pendingChange, len(cs))
	for i, c := range cs {
		g[i] = &pendingChange{change: c, done: make(chan struct{})}
	}
	return g
}

func rec(k string) Record { return Record{Key: datastore.NewKey(k), Value: []byte(k)} }

// A group is judged change by change, in order, as if each ran alone after
// the ones before it; those that fit are written in one batch.
func TestCommitGroup_JudgesInOrderAndWritesTheFitOnes(t *testing.T) {
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	r, err := New(t.Context(), ds, WithQuotaMaxBytes(100))
	require.NoError(t, err)
	g := group(
		Change{Reserve: 60, Put: []Record{rec("/a")}},
		Change{Reserve: 50, Put: []Record{rec("/b")}}, // does not fit after the first
		Change{Release: 20, Reserve: 55, Put: []Record{rec("/c")}, Delete: []datastore.Key{datastore.NewKey("/a")}},
	)
	r.commitGroup(t.Context(), g)
	for _, p := range g {
		<-p.done // every outcome is announced
	}
	assert.NoError(t, g[0].err)
	assert.ErrorIs(t, g[1].err, ErrQuotaNotEnough)
	assert.NoError(t, g[2].err)
	assert.Equal(t, uint64(95), r.Quota().Reserved)

	for key, want := range map[string]bool{"/a": false, "/b": false, "/c": true} {
		has, err := ds.Has(t.Context(), datastore.NewKey(key))
		require.NoError(t, err)
		assert.Equal(t, want, has, key)
	}
	fresh, err := New(t.Context(), ds, WithQuotaMaxBytes(100))
	require.NoError(t, err)
	assert.Equal(t, r.Quota(), fresh.Quota())
}

// When the group's batch fails, every change in it fails and none is
// applied, neither in memory nor on disk.
func TestCommitGroup_FailedWriteFailsEveryAcceptedChange(t *testing.T) {
	boom := errors.New("boom")
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	fs := failstore.NewFailstore(ds, func(op string) error {
		if op == "batch-commit" {
			return boom
		}
		return nil
	})
	r, err := New(t.Context(), fs, WithQuotaMaxBytes(100))
	require.NoError(t, err)
	g := group(Change{Reserve: 10, Put: []Record{rec("/a")}}, Change{Reserve: 200}, Change{Reserve: 5})
	r.commitGroup(context.Background(), g)
	assert.ErrorIs(t, g[0].err, boom)
	assert.ErrorIs(t, g[1].err, ErrQuotaNotEnough)
	assert.ErrorIs(t, g[2].err, boom)
	assert.Equal(t, Quota{Max: 100}, r.Quota())
	has, err := ds.Has(t.Context(), datastore.NewKey("/a"))
	require.NoError(t, err)
	assert.False(t, has)
}

// A change that merges with others never writes into its caller's slice.
func TestMerge_LeavesCallersSlicesAlone(t *testing.T) {
	puts := make([]Record, 1, 4)
	puts[0] = rec("/x")
	p, _ := merge(group(Change{Put: puts}))
	p = append(p, rec("/y"))
	assert.Len(t, p, 2)
	assert.Equal(t, rec("/x"), puts[:2][0])
	assert.Empty(t, puts[:2][1].Key.String(), "the caller's spare capacity is untouched")
}

package repo_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/internal/faultfs"
	"github.com/stowage/stowage/repo"
)

func TestStats_CountsCommitsAndGroups(t *testing.T) {
	ctx := context.Background()
	r, err := repo.Open(ctx, t.TempDir(), repo.WithNoSync())
	require.NoError(t, err)
	defer r.Close()

	s := r.Stats()
	assert.Zero(t, s.Commits)
	assert.Zero(t, s.CommitSeconds.Count)
	assert.Len(t, s.CommitSeconds.Counts, len(s.CommitSeconds.Bounds))

	for range 5 {
		require.NoError(t, r.Reserve(ctx, 10))
	}
	s = r.Stats()
	assert.Equal(t, uint64(5), s.Commits)
	assert.Equal(t, uint64(5), s.Changes)
	assert.Zero(t, s.WriteFailures)
	assert.Equal(t, uint64(5), s.GroupSize.Count)
	assert.Equal(t, 5.0, s.GroupSize.Sum)
	assert.Equal(t, uint64(5), s.GroupSize.Counts[0], "one change per group: all in the first bucket")
	assert.Equal(t, uint64(5), s.CommitSeconds.Count)

	// Concurrent changes: every change counted once, groups however formed.
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() { assert.NoError(t, r.Reserve(ctx, 1)) })
	}
	wg.Wait()
	s = r.Stats()
	assert.Equal(t, uint64(37), s.Changes)
	assert.Equal(t, s.Commits, s.GroupSize.Count)
	assert.Equal(t, 37.0, s.GroupSize.Sum)
	assert.LessOrEqual(t, s.Commits, uint64(37))

	// A change that fails its check writes nothing: no commit.
	require.ErrorIs(t, r.Release(ctx, 1<<40), repo.ErrReleaseExceedsReserved)
	assert.Equal(t, s.Commits, r.Stats().Commits)
}

func TestStats_CountsWriteFailures(t *testing.T) {
	ctx := context.Background()
	var f faultfs.Faults
	r, err := repo.Open(ctx, t.TempDir(), repo.WithStorageForTest(f.Wrap))
	require.NoError(t, err)
	defer r.Close()

	require.NoError(t, r.Reserve(ctx, 1))
	f.FailNextJournalSync()
	err = r.Reserve(ctx, 1)
	require.Error(t, err)
	require.True(t, errors.Is(err, repo.ErrWriteFailed), "%v", err)
	s := r.Stats()
	assert.Equal(t, uint64(1), s.WriteFailures)
	assert.Equal(t, uint64(1), s.Commits)
	assert.Equal(t, uint64(2), s.CommitSeconds.Count, "failed commits are timed too")
}

func TestCountBlocks(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts []repo.Option
	}{
		{"shared store", nil},
		{"block store of its own", []repo.Option{repo.WithBlockstore(newMem())}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := repo.New(ctx, newMem(), tc.opts...)
			require.NoError(t, err)
			defer r.Close()
			n, err := r.CountBlocks(ctx)
			require.NoError(t, err)
			assert.Zero(t, n)
			for _, k := range []string{"/a", "/b", "/c", "/a"} {
				require.NoError(t, r.PutBlock(ctx, datastore.NewKey(k), []byte("xyz")))
			}
			require.NoError(t, r.DeleteBlock(ctx, datastore.NewKey("/b")))
			n, err = r.CountBlocks(ctx)
			require.NoError(t, err)
			assert.Equal(t, uint64(2), n)

			require.NoError(t, r.Close())
			_, err = r.CountBlocks(ctx)
			assert.ErrorIs(t, err, repo.ErrClosed)
		})
	}
}

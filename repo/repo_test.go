package repo_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/failstore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
)

var errInjected = errors.New("injected failure")

func newMem() datastore.Batching { return dssync.MutexWrap(datastore.NewMapDatastore()) }

func newRepo(t *testing.T, max uint64) (*repo.Repo, datastore.Batching) {
	t.Helper()
	ds := newMem()
	r, err := repo.New(t.Context(), ds, repo.WithQuotaMaxBytes(max))
	require.NoError(t, err)
	return r, ds
}

func counter(t *testing.T, ds datastore.Read, key datastore.Key) uint64 {
	t.Helper()
	b, err := ds.Get(t.Context(), key)
	if errors.Is(err, datastore.ErrNotFound) {
		return 0
	}
	require.NoError(t, err)
	require.Len(t, b, 8)
	return binary.BigEndian.Uint64(b)
}

func TestNew_Defaults(t *testing.T) {
	r, err := repo.New(t.Context(), newMem())
	require.NoError(t, err)
	assert.Equal(t, repo.Quota{Max: repo.DefaultQuotaMaxBytes}, r.Quota())
	assert.Equal(t, uint64(1<<33), r.Available())
}

func TestNew_RejectsNilDatastore(t *testing.T) {
	_, err := repo.New(t.Context(), nil)
	assert.ErrorIs(t, err, repo.ErrInvalidOption)
}

func TestReserve_AddsToReservedAndPersists(t *testing.T) {
	r, ds := newRepo(t, 100)
	require.NoError(t, r.Reserve(t.Context(), 40))
	assert.Equal(t, repo.Quota{Max: 100, Reserved: 40}, r.Quota())
	assert.Equal(t, uint64(60), r.Available())
	assert.Equal(t, uint64(40), counter(t, ds, repo.ReservedKey))
}

func TestReserve_NotEnoughQuota(t *testing.T) {
	r, ds := newRepo(t, 100)
	require.NoError(t, r.Reserve(t.Context(), 60))
	err := r.Reserve(t.Context(), 41)
	require.ErrorIs(t, err, repo.ErrQuotaNotEnough)
	assert.Equal(t, uint64(60), r.Quota().Reserved, "a refused reserve changes nothing")
	assert.Equal(t, uint64(60), counter(t, ds, repo.ReservedKey))
}

func TestReserve_ExactlyAvailableFits(t *testing.T) {
	r, _ := newRepo(t, 100)
	require.NoError(t, r.PutBlock(t.Context(), datastore.NewKey("b"), make([]byte, 30)))
	require.NoError(t, r.Reserve(t.Context(), 30))
	assert.True(t, r.HasAvailable(40))
	require.NoError(t, r.Reserve(t.Context(), 40))
	assert.Equal(t, uint64(0), r.Available())
	assert.True(t, r.HasAvailable(0))
	assert.False(t, r.HasAvailable(1))
}

// HasAvailable is true exactly when Reserve would succeed (the original used
// a strict comparison and disagreed at the boundary).
func TestHasAvailable_AgreesWithReserve(t *testing.T) {
	for _, n := range []uint64{0, 1, 49, 50, 51, 100, ^uint64(0)} {
		r, _ := newRepo(t, 100)
		require.NoError(t, r.Reserve(t.Context(), 50))
		has := r.HasAvailable(n)
		err := r.Reserve(t.Context(), n)
		assert.Equal(t, has, err == nil, "n=%d HasAvailable=%v Reserve err=%v", n, has, err)
	}
}

func TestRelease_SubtractsFromReserved(t *testing.T) {
	r, ds := newRepo(t, 100)
	require.NoError(t, r.Reserve(t.Context(), 50))
	require.NoError(t, r.Release(t.Context(), 20))
	assert.Equal(t, uint64(30), r.Quota().Reserved)
	assert.Equal(t, uint64(30), counter(t, ds, repo.ReservedKey))
}

func TestRelease_MoreThanReservedFails(t *testing.T) {
	r, ds := newRepo(t, 100)
	require.NoError(t, r.Reserve(t.Context(), 50))
	err := r.Release(t.Context(), 51)
	require.ErrorIs(t, err, repo.ErrReleaseExceedsReserved)
	assert.Equal(t, uint64(50), r.Quota().Reserved)
	assert.Equal(t, uint64(50), counter(t, ds, repo.ReservedKey))
}

func TestNew_LoadsCounters(t *testing.T) {
	r, ds := newRepo(t, 100)
	require.NoError(t, r.Reserve(t.Context(), 25))
	require.NoError(t, r.PutBlock(t.Context(), datastore.NewKey("x"), []byte("hello")))

	again, err := repo.New(t.Context(), ds, repo.WithQuotaMaxBytes(100))
	require.NoError(t, err)
	assert.Equal(t, repo.Quota{Max: 100, Used: 5, Reserved: 25}, again.Quota())
}

func TestNew_CorruptCounterIsReported(t *testing.T) {
	ds := newMem()
	require.NoError(t, ds.Put(t.Context(), repo.ReservedKey, []byte("abc")))
	_, err := repo.New(t.Context(), ds)
	assert.ErrorIs(t, err, repo.ErrCorrupt)
}

func TestNew_MaxBelowHoldingsLeavesNothingAvailable(t *testing.T) {
	r, ds := newRepo(t, 100)
	require.NoError(t, r.Reserve(t.Context(), 80))
	var logs bytes.Buffer
	small, err := repo.New(t.Context(), ds, repo.WithQuotaMaxBytes(50), repo.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	require.NoError(t, err)
	assert.Contains(t, logs.String(), "more than its quota")
	assert.Equal(t, uint64(0), small.Available())
	assert.ErrorIs(t, small.Reserve(t.Context(), 1), repo.ErrQuotaNotEnough)
	require.NoError(t, small.Release(t.Context(), 80))
	assert.Equal(t, uint64(50), small.Available())
}

func TestNew_TransactionsNeedTxnDatastore(t *testing.T) {
	_, err := repo.New(t.Context(), newMem(), repo.WithTransactions())
	assert.ErrorIs(t, err, repo.ErrInvalidOption)
}

// A failed write leaves memory and disk exactly as they were (the original
// counted the bytes twice on a failed reserve and released them twice on a
// failed release).
func TestReserveRelease_FailedWriteChangesNothing(t *testing.T) {
	var fail atomic.Bool
	base := newMem()
	fs := failstore.NewFailstore(base, func(op string) error {
		if fail.Load() && op == "batch-commit" {
			return errInjected
		}
		return nil
	})
	r, err := repo.New(t.Context(), fs, repo.WithQuotaMaxBytes(100))
	require.NoError(t, err)
	require.NoError(t, r.Reserve(t.Context(), 50))

	fail.Store(true)
	require.ErrorIs(t, r.Reserve(t.Context(), 10), errInjected)
	assert.Equal(t, uint64(50), r.Quota().Reserved)
	require.ErrorIs(t, r.Release(t.Context(), 10), errInjected)
	assert.Equal(t, uint64(50), r.Quota().Reserved)
	require.ErrorIs(t, r.PutBlock(t.Context(), datastore.NewKey("b"), []byte("data")), errInjected)
	assert.Equal(t, uint64(0), r.Quota().Used)
	ok, err := r.HasBlock(t.Context(), datastore.NewKey("b"))
	require.NoError(t, err)
	assert.False(t, ok)

	fail.Store(false)
	fresh, err := repo.New(t.Context(), base, repo.WithQuotaMaxBytes(100))
	require.NoError(t, err)
	assert.Equal(t, r.Quota(), fresh.Quota())
}

func TestConcurrentReserve_NeverOvercommits(t *testing.T) {
	r, ds := newRepo(t, 1000)
	var wg sync.WaitGroup
	var ok atomic.Int64
	for range 200 {
		wg.Go(func() {
			if err := r.Reserve(context.Background(), 7); err == nil {
				ok.Add(1)
			} else {
				assert.ErrorIs(t, err, repo.ErrQuotaNotEnough)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(1000/7), ok.Load())
	assert.Equal(t, uint64(ok.Load()*7), r.Quota().Reserved)
	assert.Equal(t, r.Quota().Reserved, counter(t, ds, repo.ReservedKey))
}

func TestClose_LaterOperationsFail(t *testing.T) {
	r, _ := newRepo(t, 100)
	require.NoError(t, r.Close())
	require.NoError(t, r.Close(), "Close is idempotent")
	assert.ErrorIs(t, r.Reserve(t.Context(), 1), repo.ErrClosed)
	assert.ErrorIs(t, r.Release(t.Context(), 0), repo.ErrClosed)
	assert.ErrorIs(t, r.PutBlock(t.Context(), datastore.NewKey("a"), nil), repo.ErrClosed)
	assert.ErrorIs(t, r.DeleteBlock(t.Context(), datastore.NewKey("a")), repo.ErrClosed)
}

// Concurrent commits are written in groups; when a group's write fails,
// none of its changes is applied, so memory always matches the disk.

func TestWithSharedGrace_RefusesNoGrace(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Second} {
		_, err := repo.New(t.Context(), newMem(), repo.WithSharedGrace(d))
		assert.ErrorIs(t, err, repo.ErrInvalidOption, "grace %v", d)
	}
}

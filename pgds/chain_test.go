package pgds_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/pgds"
	"github.com/stowage/stowage/pgds/internal/pgtest"
	"github.com/stowage/stowage/repo"
)

// advisoryLocks counts the advisory locks the server has, held or waited
// for.
func advisoryLocks(t *testing.T, url string) int {
	pool := newPoolAt(t, url)
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'`).Scan(&n))
	return n
}

// The changes of one host queued behind each other are handed the locks
// without their being released (fewer round trips than one change alone
// costs each), and once the calls return no lock is left.
func TestChain_QueuedChangesShareTheLocks(t *testing.T) {
	ctx := t.Context()
	url := pgtest.URL(t)
	ds, err := pgds.Open(ctx, url)
	require.NoError(t, err)
	defer ds.Close()
	r, err := repo.New(ctx, ds, repo.WithShared(), repo.WithQuotaMaxBytes(1<<20))
	require.NoError(t, err)
	defer r.Close()

	const goroutines, calls = 8, 25
	before := ds.RoundTrips()
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range calls {
				assert.NoError(t, r.Reserve(ctx, 1))
				assert.NoError(t, r.Release(ctx, 1))
			}
		})
	}
	wg.Wait()
	n := uint64(2 * goroutines * calls)
	took := ds.RoundTrips() - before
	t.Logf("%d changes, %d round trips", n, took)
	assert.Less(t, took, 2*n, "every change took its own locks (2 round trips each alone)")
	assert.Zero(t, advisoryLocks(t, url), "locks left after the calls returned")
	require.NoError(t, r.Verify(ctx))
}

// Calls whose ctx ends while they wait for the host's earlier changes, at
// random points, never leave locks handed over and not taken: once the
// calls return, no lock is held and another host changes at once.
func TestChain_CallsGivingUpLeaveNoLocks(t *testing.T) {
	ctx := t.Context()
	url := pgtest.URL(t)
	ds, err := pgds.Open(ctx, url)
	require.NoError(t, err)
	defer ds.Close()
	r, err := repo.New(ctx, ds, repo.WithShared(), repo.WithQuotaMaxBytes(1<<20))
	require.NoError(t, err)
	defer r.Close()

	var wg sync.WaitGroup
	for g := range 8 {
		rng := rand.New(rand.NewPCG(uint64(g), 1))
		wg.Go(func() {
			for range 40 {
				cctx, cancel := context.WithTimeout(ctx, time.Duration(rng.IntN(3000))*time.Microsecond)
				err := r.Reserve(cctx, 1)
				cancel()
				if err == nil {
					assert.NoError(t, r.Release(ctx, 1))
					continue
				}
				// A ctx that ends during the COMMIT leaves its outcome
				// unknown; any other failure is the ctx's.
				if !errors.Is(err, repo.ErrWriteFailed) {
					assert.ErrorIs(t, err, context.DeadlineExceeded)
				}
			}
		})
	}
	wg.Wait()
	assert.Zero(t, advisoryLocks(t, url), "locks left after the calls returned")

	_, other := sharedStore(t, url)
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	require.NoError(t, other.Reserve(octx, 1), "another host waits for locks no one holds")
	require.NoError(t, other.Verify(ctx))
}

package reservations_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/failstore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// loopScenario runs every kind of change of the byte loop. It goes on
// after an error (later steps then fail too) and returns the errors.
func loopScenario(ctx context.Context, s *reservations.Store) error {
	var errs []error
	check := func(err error) { errs = append(errs, err) }
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	a, err := s.AddAvailability(ctx, reservations.Availability{
		TotalSize: 1000, Duration: 100, MinPrice: u(1), MaxCollateral: u(10), TotalCollateral: u(30),
	})
	check(err)
	b, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 200, Duration: 100, MinPrice: u(1), MaxCollateral: u(10)})
	check(err)
	slot := func(i, size uint64, expires bool) stowage.Slot {
		sl := slotOf(1, i, size)
		if expires {
			sl.Expiry = now.Add(-time.Hour) // ends 100 s later, before now
		}
		return sl
	}
	r1, err := s.ReserveSlot(ctx, slot(0, 300, true))
	check(err)
	r2, err := s.ReserveSlot(ctx, slot(1, 150, false))
	check(err)
	for i := range 4 {
		check(s.PutBlock(ctx, r1.ID, blockKey(i), make([]byte, 10*(i+1))))
	}
	check(s.PutBlock(ctx, r1.ID, blockKey(0), make([]byte, 25))) // grow
	check(s.PutBlock(ctx, r1.ID, blockKey(3), make([]byte, 5)))  // shrink
	for i := 10; i < 12; i++ {
		check(s.PutBlock(ctx, r2.ID, blockKey(i), make([]byte, 20)))
	}
	check(s.Release(ctx, r2.ID, 20))
	check(s.DeleteReservation(ctx, r2.ID))
	_, err = s.ModifyAvailability(ctx, a.ID, func(a *reservations.Availability) error {
		a.TotalSize += 50
		return nil
	})
	check(err)
	_, err = s.ModifyAvailability(ctx, b.ID, func(a *reservations.Availability) error {
		a.Size -= 50
		return nil
	})
	check(err)
	r3, err := s.ReserveSlot(ctx, slot(2, 50, true))
	check(err)
	check(s.PutBlock(ctx, r3.ID, blockKey(20), make([]byte, 30)))
	n, err := s.ReclaimExpired(ctx, now)
	check(err)
	if err == nil && n != 2 {
		check(fmt.Errorf("reclaimed %d, want 2", n))
	}
	check(s.DeleteAvailability(ctx, b.ID))
	return errors.Join(errs...)
}

func isWrite(op string) bool {
	switch op {
	case "put", "delete", "batch-put", "batch-delete", "batch-commit":
		return true
	}
	return false
}

func TestLoopScenario_Succeeds(t *testing.T) {
	s, r, _ := newStore(t, 10_000)
	require.NoError(t, loopScenario(t.Context(), s))
	requireInvariant(t, s)
	as, err := s.Availabilities(t.Context())
	require.NoError(t, err)
	require.Len(t, as, 1)
	assert.Equal(t, uint64(1050), as[0].TotalSize, "1000 + 50; the 20 released came out of b")
	assert.Equal(t, as[0].TotalSize, as[0].Size, "the offer is whole again")
	assert.Equal(t, u(30), as[0].FreeCollateral)
	assert.Equal(t, repo.Quota{Max: 10_000, Used: 0, Reserved: 1050}, r.Quota())
}

// A failure injected at every write of the scenario in turn leaves the
// quota in memory equal to what is on disk, and the books balanced.
func TestLoopScenario_FailureAtEveryWrite(t *testing.T) {
	ctx := t.Context()
	newMem := func() datastore.Batching { return dssync.MutexWrap(datastore.NewMapDatastore()) }
	var writes atomic.Int64
	counting := failstore.NewFailstore(newMem(), func(op string) error {
		if isWrite(op) {
			writes.Add(1)
		}
		return nil
	})
	r0, err := repo.New(ctx, counting, repo.WithQuotaMaxBytes(10_000))
	require.NoError(t, err)
	require.NoError(t, loopScenario(ctx, reservations.New(r0)))
	n := writes.Load()
	require.Positive(t, n)
	t.Logf("%d writes", n)

	for k := int64(1); k <= n; k++ {
		base := newMem()
		var count atomic.Int64
		fs := failstore.NewFailstore(base, func(op string) error {
			if isWrite(op) && count.Add(1) == k {
				return errInjected
			}
			return nil
		})
		r, err := repo.New(ctx, fs, repo.WithQuotaMaxBytes(10_000))
		require.NoError(t, err)
		s := reservations.New(r)
		err = loopScenario(ctx, s)
		require.ErrorIs(t, err, errInjected, "write %d of %d", k, n)

		fresh, err := repo.New(ctx, base, repo.WithQuotaMaxBytes(10_000))
		require.NoError(t, err)
		require.Equal(t, fresh.Quota(), r.Quota(), "failure at write %d of %d: quota in memory vs on disk", k, n)
		require.NoError(t, reservations.New(fresh).Verify(ctx), "failure at write %d of %d", k, n)
		require.NoError(t, s.Verify(ctx), "failure at write %d of %d", k, n)
	}
}

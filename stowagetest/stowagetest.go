// Package stowagetest checks that a datastore can carry a stowage repo: a
// conformance suite for applications that bring their own
// datastore.Batching (Badger, Pebble, a namespace of a larger store, ...)
// instead of the embedded LevelDB.
//
// Call Datastore from a test of your own:
//
//	func TestMyStore(t *testing.T) {
//		stowagetest.Datastore(t, func(t testing.TB) datastore.Batching {
//			return openMyStore(t.TempDir())
//		})
//	}
//
// It runs the repo and the reservations store on fresh instances of the
// datastore and checks that counters and records round-trip, that queries
// see exactly the records written, that concurrent callers never overcommit,
// and, with a failure injected at every write of a scripted scenario, that
// what a running repo holds in memory is always what a reopened one reads.
package stowagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/failstore"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// ErrInjected is the failure the suite injects into writes.
var ErrInjected = errors.New("stowagetest: injected failure")

const quota = 1 << 20

// Datastore runs the conformance suite as subtests of t. open must return a
// new, empty datastore each time it is called; the suite closes nothing, so
// register cleanup with t.Cleanup.
func Datastore(t *testing.T, open func(t testing.TB) datastore.Batching) {
	t.Run("CountersRoundTrip", func(t *testing.T) { countersRoundTrip(t, open(t)) })
	t.Run("RecordsRoundTrip", func(t *testing.T) { recordsRoundTrip(t, open(t)) })
	t.Run("ConcurrentReservationsNeverOvercommit", func(t *testing.T) { concurrentReservations(t, open(t)) })
	t.Run("FailureAtEveryWrite", func(t *testing.T) { failureAtEveryWrite(t, open) })
}

func fail(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Fatalf(format, args...)
}

func check(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		fail(t, "%s: %v", what, err)
	}
}

func newRepo(t testing.TB, ds datastore.Batching) *repo.Repo {
	t.Helper()
	r, err := repo.New(t.Context(), ds, repo.WithQuotaMaxBytes(quota))
	check(t, err, "repo.New")
	return r
}

func countersRoundTrip(t *testing.T, ds datastore.Batching) {
	r := newRepo(t, ds)
	check(t, r.Reserve(t.Context(), 1000), "reserve")
	check(t, r.Release(t.Context(), 10), "release")
	check(t, r.PutBlock(t.Context(), datastore.NewKey("/b/1"), make([]byte, 77)), "put block")
	check(t, r.PutBlock(t.Context(), datastore.NewKey("/b/1"), make([]byte, 33)), "overwrite block")
	check(t, r.PutBlock(t.Context(), datastore.NewKey("/b/2"), make([]byte, 5)), "put block")
	check(t, r.DeleteBlock(t.Context(), datastore.NewKey("/b/2")), "delete block")
	want := repo.Quota{Max: quota, Used: 33, Reserved: 990}
	if got := r.Quota(); got != want {
		fail(t, "quota in memory = %+v, want %+v", got, want)
	}
	if got := newRepo(t, ds).Quota(); got != want {
		fail(t, "quota read back = %+v, want %+v (does GetSize report the stored length?)", got, want)
	}
	if _, err := r.GetBlock(t.Context(), datastore.NewKey("/b/2")); !errors.Is(err, datastore.ErrNotFound) {
		fail(t, "get of a deleted block: %v, want datastore.ErrNotFound", err)
	}
}

func recordsRoundTrip(t *testing.T, ds datastore.Batching) {
	ctx := t.Context()
	r := newRepo(t, ds)
	s := reservations.New(r)
	a1, err := s.CreateAvailability(ctx, 5000, 100, *uint256.NewInt(1), *uint256.NewInt(1))
	check(t, err, "create availability")
	a2, err := s.CreateAvailability(ctx, 7000, 100, *uint256.NewInt(1), *uint256.NewInt(1))
	check(t, err, "create availability")
	var made []reservations.Reservation
	for i := range 5 {
		a := []reservations.Availability{a1, a2}[i%2]
		res, err := s.CreateReservation(ctx, a.ID, 100, stowage.RequestID{byte(i)}, uint64(i))
		check(t, err, "create reservation")
		made = append(made, res)
	}
	check(t, s.Release(ctx, made[0].ID, a1.ID, 40), "release")
	check(t, s.DeleteReservation(ctx, made[1].ID, a2.ID), "delete reservation")

	// A fresh Store reads everything from the datastore.
	fresh := reservations.New(newRepo(t, ds))
	as, err := fresh.Availabilities(ctx)
	check(t, err, "list availabilities")
	if len(as) != 2 || as[0].ID != a1.ID || as[1].ID != a2.ID {
		fail(t, "availabilities = %v, want [%s %s] in creation order (does Query honour Prefix?)", as, a1.ID, a2.ID)
	}
	rs, err := fresh.Reservations(ctx)
	check(t, err, "list reservations")
	if len(rs) != 4 {
		fail(t, "%d reservations read back, want 4", len(rs))
	}
	of, err := fresh.ReservationsOf(ctx, a1.ID)
	check(t, err, "list reservations of one availability")
	if len(of) != 3 || of[0].Size != 60 {
		fail(t, "reservations of %s = %v, want 3, the first holding 60 bytes", a1.ID, of)
	}
	check(t, fresh.Verify(ctx), "verify")
}

func concurrentReservations(t *testing.T, ds datastore.Batching) {
	s := reservations.New(newRepo(t, ds))
	a, err := s.CreateAvailability(t.Context(), 1000, 100, *uint256.NewInt(1), *uint256.NewInt(1))
	check(t, err, "create availability")
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			_, err := s.CreateReservation(context.Background(), a.ID, 30, stowage.RequestID{}, uint64(i))
			if err == nil {
				ok.Add(1)
			} else if !errors.Is(err, reservations.ErrBytesOutOfBounds) {
				t.Errorf("create reservation: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1000/30 {
		fail(t, "%d reservations of 30 bytes made on 1000 bytes, want %d", ok.Load(), 1000/30)
	}
	check(t, s.Verify(t.Context()), "verify")
}

// Scenario exercises every mutation of a Store, ignoring errors (operations
// fail when an earlier one did). It is exported so that tests of other
// failure modes can reuse it.
func Scenario(ctx context.Context, s *reservations.Store) {
	one := *uint256.NewInt(1)
	a, _ := s.CreateAvailability(ctx, 500, 100, one, one)
	b, _ := s.CreateAvailability(ctx, 300, 100, one, one)
	r1, _ := s.CreateReservation(ctx, a.ID, 100, stowage.RequestID{1}, 0)
	r2, _ := s.CreateReservation(ctx, a.ID, 150, stowage.RequestID{1}, 1)
	r3, _ := s.CreateReservation(ctx, b.ID, 200, stowage.RequestID{2}, 0)
	_ = s.Release(ctx, r1.ID, a.ID, 40)
	_ = s.Release(ctx, r1.ID, a.ID, 60)
	_ = s.Release(ctx, r3.ID, b.ID, 10)
	_ = s.DeleteReservation(ctx, r1.ID, a.ID)
	a.Size += 50
	_ = s.UpdateAvailability(ctx, a)
	_ = s.DeleteReservation(ctx, r2.ID, a.ID)
	b.Size = 40
	_ = s.UpdateAvailability(ctx, b)
	_ = s.DeleteReservation(ctx, r3.ID, b.ID)
	_ = s.DeleteAvailability(ctx, b.ID)
}

func isWrite(op string) bool {
	switch op {
	case "put", "delete", "batch-put", "batch-delete", "batch-commit":
		return true
	}
	return false
}

func failureAtEveryWrite(t *testing.T, open func(t testing.TB) datastore.Batching) {
	ctx := t.Context()
	var writes atomic.Int64
	counting := failstore.NewFailstore(open(t), func(op string) error {
		if isWrite(op) {
			writes.Add(1)
		}
		return nil
	})
	Scenario(ctx, reservations.New(newRepo(t, counting)))
	n := writes.Load()
	if n == 0 {
		fail(t, "the scenario wrote nothing")
	}
	for k := int64(1); k <= n; k++ {
		base := open(t)
		var count atomic.Int64
		fs := failstore.NewFailstore(base, func(op string) error {
			if isWrite(op) && count.Add(1) == k {
				return ErrInjected
			}
			return nil
		})
		r := newRepo(t, fs)
		s := reservations.New(r)
		Scenario(ctx, s)
		fresh := newRepo(t, base)
		if got, want := r.Quota(), fresh.Quota(); got != want {
			fail(t, "failure at write %d of %d: quota in memory %+v, read back %+v (are batches atomic?)", k, n, got, want)
		}
		if err := reservations.New(fresh).Verify(ctx); err != nil {
			fail(t, "failure at write %d of %d: %v", k, n, err)
		}
		if err := s.Verify(ctx); err != nil {
			fail(t, "failure at write %d of %d: %v", k, n, fmt.Sprint(err))
		}
	}
}

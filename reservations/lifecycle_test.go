package reservations_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// Two Stores on one repo share one state: used alternately, neither can
// overcommit an availability the other reserved.
func TestTwoStores_ShareOneState(t *testing.T) {
	s1, r, _ := newStore(t, 1000)
	s2 := reservations.New(r)
	a := mustAvailability(t, s1, 100)
	x, err := s1.ReserveSlot(t.Context(), slot(1, 0, 100))
	require.NoError(t, err)
	_, err = s2.ReserveSlot(t.Context(), slot(2, 0, 100))
	assert.ErrorIs(t, err, reservations.ErrNoAvailability)
	_, err = s2.CreateReservation(t.Context(), a.ID, anySlot(reqID(3), 0, 100))
	assert.ErrorIs(t, err, reservations.ErrNoAvailability)
	_, err = s2.ReserveSlot(t.Context(), slot(1, 0, 1))
	assert.ErrorIs(t, err, reservations.ErrSlotReserved)

	require.NoError(t, s2.PutBlock(t.Context(), x.ID, datastore.NewKey("b"), make([]byte, 30)))
	require.NoError(t, s1.Release(t.Context(), x.ID, 10))
	got, err := s2.Reservation(t.Context(), x.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(60), got.Size)
	require.NoError(t, s2.DeleteReservation(t.Context(), x.ID))
	got1, err := s1.Availability(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(90), got1.Size)
	requireInvariant(t, s1)
	requireInvariant(t, s2)
}

// A record deleted behind the Stores' back stays deleted: no change writes
// it back from what a Store read earlier.
func TestRecordDeletedBehindTheBack_IsNotResurrected(t *testing.T) {
	ctx := t.Context()
	s1, r, _ := newStore(t, 1000)
	s2 := reservations.New(r)
	mustAvailability(t, s1, 100)
	x, err := s1.ReserveSlot(ctx, slot(1, 0, 100))
	require.NoError(t, err)
	b := mustAvailability(t, s2, 50)
	_, err = s1.FindAvailability(ctx, findSlot(10, 1, u(1), u(1))) // loads the hints
	require.NoError(t, err)

	ds := r.Datastore()
	require.NoError(t, ds.Delete(ctx, reservations.KeyOf(x)))
	require.NoError(t, ds.Delete(ctx, reservations.KeyOf(b)))
	gone := func(k datastore.Key) {
		t.Helper()
		ok, err := ds.Has(ctx, k)
		require.NoError(t, err)
		assert.False(t, ok, "%s resurrected", k)
	}

	assert.Error(t, s2.Release(ctx, x.ID, 1))
	gone(reservations.KeyOf(x))
	assert.Error(t, s1.PutBlock(ctx, x.ID, datastore.NewKey("b"), []byte("x")))
	gone(reservations.KeyOf(x))
	assert.Error(t, s2.DeleteReservation(ctx, x.ID))
	gone(reservations.KeyOf(x))

	_, err = s1.ModifyAvailability(ctx, b.ID, func(a *reservations.Availability) error { a.TotalSize++; return nil })
	assert.ErrorIs(t, err, reservations.ErrNotFound)
	gone(reservations.KeyOf(b))
	_, err = s1.ReserveSlot(ctx, slot(2, 0, 10)) // only b had room
	assert.ErrorIs(t, err, reservations.ErrNoAvailability)
	gone(reservations.KeyOf(b))
	assert.ErrorIs(t, s2.DeleteAvailability(ctx, b.ID), reservations.ErrNotFound)
}

func snapshot(t *testing.T, ds datastore.Read) map[string]string {
	t.Helper()
	res, err := ds.Query(t.Context(), query.Query{})
	require.NoError(t, err)
	all, err := res.Rest()
	require.NoError(t, err)
	m := map[string]string{}
	for _, e := range all {
		m[e.Key] = string(e.Value)
	}
	return m
}

// A call made with a cancelled context changes nothing.
func TestCancelledContext_ChangesNothing(t *testing.T) {
	s, r, ds := newStore(t, 10_000)
	a := mustAvailability(t, s, 1000)
	sl := slot(1, 0, 100)
	sl.Expiry = time.Unix(1, 0)
	x, err := s.ReserveSlot(t.Context(), sl)
	require.NoError(t, err)
	blk := datastore.NewKey("b")
	require.NoError(t, s.PutBlock(t.Context(), x.ID, blk, make([]byte, 10)))
	raw := datastore.NewKey("raw")
	require.NoError(t, r.PutBlock(t.Context(), raw, make([]byte, 10)))
	require.NoError(t, r.Reserve(t.Context(), 5))
	before, q := snapshot(t, ds), r.Quota()

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]func() error{
		"Reserve":     func() error { return r.Reserve(ctx, 1) },
		"Release":     func() error { return r.Release(ctx, 1) },
		"PutBlock":    func() error { return r.PutBlock(ctx, datastore.NewKey("new"), []byte("x")) },
		"DeleteBlock": func() error { return r.DeleteBlock(ctx, raw) },
		"AddAvailability": func() error {
			_, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 10})
			return err
		},
		"ModifyAvailability by copy": func() error { a2 := a; a2.Duration++; return replaceAvailability(ctx, s, a2) },
		"ModifyAvailability": func() error {
			_, err := s.ModifyAvailability(ctx, a.ID, func(a *reservations.Availability) error { a.TotalSize++; return nil })
			return err
		},
		"DeleteAvailability": func() error { return s.DeleteAvailability(ctx, a.ID) },
		"ReserveSlot": func() error {
			_, err := s.ReserveSlot(ctx, slot(2, 0, 10))
			return err
		},
		"CreateReservation": func() error {
			_, err := s.CreateReservation(ctx, a.ID, anySlot(reqID(3), 0, 10))
			return err
		},
		"Store.PutBlock":    func() error { return s.PutBlock(ctx, x.ID, datastore.NewKey("b2"), []byte("x")) },
		"Store.Release":     func() error { return s.Release(ctx, x.ID, 1) },
		"DeleteReservation": func() error { return s.DeleteReservation(ctx, x.ID) },
		"ReclaimExpired": func() error {
			n, err := s.ReclaimExpired(ctx, time.Now())
			assert.Zero(t, n)
			return err
		},
	}
	for name, call := range calls {
		assert.ErrorIs(t, call(), context.Canceled, name)
		assert.Equal(t, before, snapshot(t, ds), name)
		assert.Equal(t, q, r.Quota(), name)
	}
}

// Every call that can fail fails with ErrClosed once the repo is closed.
func TestClose_EveryCallFailsWithErrClosed(t *testing.T) {
	ctx := t.Context()
	s, r, _ := newStore(t, 10_000)
	a := mustAvailability(t, s, 1000)
	x, err := s.ReserveSlot(ctx, slot(1, 0, 100))
	require.NoError(t, err)
	require.NoError(t, r.Close())
	k := datastore.NewKey("b")
	for _, st := range []*reservations.Store{s, reservations.New(r)} {
		calls := map[string]func() error{
			"Reserve":     func() error { return r.Reserve(ctx, 1) },
			"Release":     func() error { return r.Release(ctx, 1) },
			"PutBlock":    func() error { return r.PutBlock(ctx, k, []byte("x")) },
			"GetBlock":    func() error { _, err := r.GetBlock(ctx, k); return err },
			"HasBlock":    func() error { _, err := r.HasBlock(ctx, k); return err },
			"DeleteBlock": func() error { return r.DeleteBlock(ctx, k) },
			"Verify":      func() error { return r.Verify(ctx) },
			"AddAvailability": func() error {
				_, err := st.AddAvailability(ctx, reservations.Availability{TotalSize: 10})
				return err
			},
			"ModifyAvailability by copy": func() error { return replaceAvailability(ctx, st, a) },
			"ModifyAvailability": func() error {
				_, err := st.ModifyAvailability(ctx, a.ID, func(*reservations.Availability) error { return nil })
				return err
			},
			"DeleteAvailability": func() error { return st.DeleteAvailability(ctx, a.ID) },
			"Availability":       func() error { _, err := st.Availability(ctx, a.ID); return err },
			"Availabilities":     func() error { _, err := st.Availabilities(ctx); return err },
			"Reservation":        func() error { _, err := st.Reservation(ctx, x.ID); return err },
			"Reservations":       func() error { _, err := st.Reservations(ctx); return err },
			"ReservationsOf":     func() error { _, err := st.ReservationsOf(ctx, a.ID); return err },
			"ReservationForSlot": func() error { _, _, err := st.ReservationForSlot(ctx, reqID(1), 0); return err },
			"FindAvailability":   func() error { _, err := st.FindAvailability(ctx, findSlot(1, 1, u(1), u(1))); return err },
			"ReserveSlot":        func() error { _, err := st.ReserveSlot(ctx, slot(2, 0, 10)); return err },
			"CreateReservation":  func() error { _, err := st.CreateReservation(ctx, a.ID, anySlot(reqID(3), 0, 1)); return err },
			"Store.PutBlock":     func() error { return st.PutBlock(ctx, x.ID, k, []byte("x")) },
			"Store.Release":      func() error { return st.Release(ctx, x.ID, 1) },
			"DeleteReservation":  func() error { return st.DeleteReservation(ctx, x.ID) },
			"ReclaimExpired":     func() error { _, err := st.ReclaimExpired(ctx, time.Now()); return err },
			"Store.Verify":       func() error { return st.Verify(ctx) },
		}
		for name, call := range calls {
			assert.ErrorIs(t, call(), repo.ErrClosed, name)
		}
	}
}

// holdDS holds a Get or a batch Commit, while armed, until release.
type holdDS struct {
	datastore.Batching
	get, commit atomic.Bool
	entered     chan struct{}
	release     chan struct{}
}

func (h *holdDS) hold(on *atomic.Bool) {
	if on.CompareAndSwap(true, false) {
		close(h.entered)
		<-h.release
	}
}

func (h *holdDS) Get(ctx context.Context, k datastore.Key) ([]byte, error) {
	h.hold(&h.get)
	return h.Batching.Get(ctx, k)
}

func (h *holdDS) Batch(ctx context.Context) (datastore.Batch, error) {
	b, err := h.Batching.Batch(ctx)
	return &holdBatch{Batch: b, h: h}, err
}

type holdBatch struct {
	datastore.Batch
	h *holdDS
}

func (b *holdBatch) Commit(ctx context.Context) error {
	b.h.hold(&b.h.commit)
	return b.Batch.Commit(ctx)
}

// Close waits for the calls in flight: a read and a write held inside the
// datastore.
func TestClose_WaitsForCallsInFlight(t *testing.T) {
	for _, name := range []string{"read", "write"} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := &holdDS{Batching: dssync.MutexWrap(datastore.NewMapDatastore()), entered: make(chan struct{}), release: make(chan struct{})}
				r, err := repo.New(t.Context(), h, repo.WithQuotaMaxBytes(1000))
				require.NoError(t, err)
				s := reservations.New(r)
				mustAvailability(t, s, 100)

				called := make(chan error, 1)
				if name == "read" {
					h.get.Store(true)
					go func() { _, err := s.Availabilities(t.Context()); called <- err }()
				} else {
					h.commit.Store(true)
					go func() { called <- r.Reserve(t.Context(), 10) }()
				}
				<-h.entered
				closed := make(chan error, 1)
				go func() { closed <- r.Close() }()
				synctest.Wait()
				select {
				case <-closed:
					t.Fatal("Close returned with a call in flight")
				default:
				}
				close(h.release)
				require.NoError(t, <-closed)
				assert.NoError(t, <-called, "the call in flight finished")
			})
		})
	}
}

// A reservation that is gone is not found, on this repo or another, though
// the process remembers which availability held it: every change that
// finds a reservation by ID (Release, PutBlock, DeleteReservation) reads
// its record.
func TestReservationByID_GoneIsNotFound(t *testing.T) {
	ctx := t.Context()
	s, _, ds := newStore(t, 1000)
	mustAvailability(t, s, 100)
	x, err := s.ReserveSlot(ctx, slot(1, 0, 100))
	require.NoError(t, err)
	require.NoError(t, s.Release(ctx, x.ID, 1), "found, and remembered")

	// A copy of the repo taken now holds x; the original then loses it.
	cp := dssync.MutexWrap(datastore.NewMapDatastore())
	res, err := ds.Query(ctx, query.Query{})
	require.NoError(t, err)
	entries, err := res.Rest()
	require.NoError(t, err)
	for _, e := range entries {
		require.NoError(t, cp.Put(ctx, datastore.NewKey(e.Key), e.Value))
	}
	require.NoError(t, s.DeleteReservation(ctx, x.ID))

	assert.ErrorIs(t, s.Release(ctx, x.ID, 1), reservations.ErrNotFound)
	assert.ErrorIs(t, s.PutBlock(ctx, x.ID, datastore.NewKey("b"), []byte("b")), reservations.ErrNotFound)
	require.NoError(t, s.DeleteReservation(ctx, x.ID), "deleting what is gone is success")
	require.NoError(t, s.Verify(ctx))

	r2, err := repo.New(ctx, cp, repo.WithQuotaMaxBytes(1000))
	require.NoError(t, err)
	s2 := reservations.New(r2)
	require.NoError(t, s2.Release(ctx, x.ID, 1), "the copy still holds it")
	require.NoError(t, s2.DeleteReservation(ctx, x.ID))
	assert.ErrorIs(t, s2.Release(ctx, x.ID, 1), reservations.ErrNotFound)
	require.NoError(t, s2.Verify(ctx))
}

// Deleting a reservation deletes its blocks, empty ones too: a reservation
// made by this process is deleted without scanning its block index only
// while no block was written for it (Used is no guide: an empty block
// adds nothing to it).
func TestDeleteReservation_DeletesEmptyBlocks(t *testing.T) {
	ctx := t.Context()
	for _, n := range []int{0, 1, 2} {
		s, r, _ := newStore(t, 1000)
		mustAvailability(t, s, 100)
		x, err := s.ReserveSlot(ctx, slot(1, 0, 100))
		require.NoError(t, err)
		var keys []datastore.Key
		for i := range n {
			k := datastore.NewKey(fmt.Sprintf("empty/%d", i))
			keys = append(keys, k)
			require.NoError(t, s.PutBlock(ctx, x.ID, k, nil))
		}
		require.NoError(t, s.DeleteReservation(ctx, x.ID))
		for _, k := range keys {
			has, err := r.HasBlock(ctx, k)
			require.NoError(t, err)
			assert.False(t, has, "%d empty blocks: %s", n, k)
		}
		require.NoError(t, s.Verify(ctx))
		require.NoError(t, r.Verify(ctx))
	}
}

package reservations_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/failstore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

var errInjected = errors.New("injected failure")

func blockKey(i int) datastore.Key { return datastore.NewKey(fmt.Sprintf("/b/%d", i)) }

// reserved returns a store with an availability of 100 bytes and a
// reservation of 60 of them.
func reserved(t *testing.T) (*reservations.Store, *repo.Repo, reservations.Availability, reservations.Reservation) {
	t.Helper()
	s, r, _ := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	res, err := s.ReserveSlot(t.Context(), slotOf(1, 0, 60))
	require.NoError(t, err)
	return s, r, a, res
}

func reservation(t testing.TB, s *reservations.Store, res reservations.Reservation) reservations.Reservation {
	t.Helper()
	got, err := s.Reservation(t.Context(), res.ID)
	require.NoError(t, err)
	return got
}

func TestReservation_FoundByItsOwnID(t *testing.T) {
	s, _, a, res := reserved(t)
	got := reservation(t, s, res)
	assert.Equal(t, res.ID, got.ID)
	assert.Equal(t, a.ID, got.AvailabilityID)
}

func TestDeleteReservation_UnknownIDIsSuccess(t *testing.T) {
	s, _, _, _ := reserved(t)
	assert.NoError(t, s.DeleteReservation(t.Context(), reservations.ReservationID(uuid.Must(uuid.NewV7()))))
	_, err := s.Reservation(t.Context(), reservations.ReservationID(uuid.Must(uuid.NewV7())))
	assert.ErrorIs(t, err, reservations.ErrNotFound)
	requireInvariant(t, s)
}

func TestReservationForSlot_FindsTheSlotsReservation(t *testing.T) {
	s, _, _, res := reserved(t)
	got, ok, err := s.ReservationForSlot(t.Context(), reqID(1), 0)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, res, got)
	_, ok, err = s.ReservationForSlot(t.Context(), reqID(1), 1)
	require.NoError(t, err)
	assert.False(t, ok, "another index")
	require.NoError(t, s.DeleteReservation(t.Context(), res.ID))
	_, ok, err = s.ReservationForSlot(t.Context(), reqID(1), 0)
	require.NoError(t, err)
	assert.False(t, ok, "deleted with its reservation")
	_, err = s.ReserveSlot(t.Context(), slotOf(1, 0, 10))
	assert.NoError(t, err, "the slot can be reserved again")
}

func TestPutBlock_MovesBytesToUsed(t *testing.T) {
	s, r, a, res := reserved(t)
	data := bytes.Repeat([]byte{7}, 25)
	require.NoError(t, s.PutBlock(t.Context(), res.ID, blockKey(1), data))

	got := reservation(t, s, res)
	assert.Equal(t, uint64(35), got.Size)
	assert.Equal(t, uint64(25), got.Used)
	assert.Equal(t, uint64(60), got.SlotSize)
	assert.Equal(t, repo.Quota{Max: 1000, Used: 25, Reserved: 75}, r.Quota())
	av := availability(t, s, a.ID)
	assert.Equal(t, uint64(40), av.Size)
	assert.Equal(t, uint64(100), av.TotalSize, "the offer still counts the written bytes")
	b, err := r.GetBlock(t.Context(), blockKey(1))
	require.NoError(t, err)
	assert.Equal(t, data, b)
	requireInvariant(t, s)
}

func TestPutBlock_OverwriteCountsTheDifference(t *testing.T) {
	s, r, _, res := reserved(t)
	ctx := t.Context()
	require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(1), make([]byte, 20)))
	require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(1), make([]byte, 50)))
	got := reservation(t, s, res)
	assert.Equal(t, uint64(10), got.Size)
	assert.Equal(t, uint64(50), got.Used)
	assert.Equal(t, repo.Quota{Max: 1000, Used: 50, Reserved: 50}, r.Quota())
	requireInvariant(t, s)

	require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(1), make([]byte, 5)))
	got = reservation(t, s, res)
	assert.Equal(t, uint64(55), got.Size)
	assert.Equal(t, uint64(5), got.Used)
	assert.Equal(t, repo.Quota{Max: 1000, Used: 5, Reserved: 95}, r.Quota())
	requireInvariant(t, s)

	// Growing by exactly what is left fits.
	require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(1), make([]byte, 60)))
	assert.Equal(t, uint64(0), reservation(t, s, res).Size)
	requireInvariant(t, s)
}

func TestPutBlock_TooBigIsOutOfBounds(t *testing.T) {
	s, r, _, res := reserved(t)
	ctx := t.Context()
	err := s.PutBlock(ctx, res.ID, blockKey(1), make([]byte, 61))
	assert.ErrorIs(t, err, reservations.ErrBytesOutOfBounds)
	require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(1), make([]byte, 30)))
	err = s.PutBlock(ctx, res.ID, blockKey(1), make([]byte, 61))
	assert.ErrorIs(t, err, reservations.ErrBytesOutOfBounds, "an overwrite grows by 31 of 30 left")
	err = s.PutBlock(ctx, res.ID, blockKey(2), make([]byte, 31))
	assert.ErrorIs(t, err, reservations.ErrBytesOutOfBounds)

	assert.Equal(t, uint64(30), reservation(t, s, res).Used)
	assert.Equal(t, repo.Quota{Max: 1000, Used: 30, Reserved: 70}, r.Quota())
	ok, err := r.HasBlock(ctx, blockKey(2))
	require.NoError(t, err)
	assert.False(t, ok)
	requireInvariant(t, s)
}

func TestPutBlock_KeyOfSomeoneElseExists(t *testing.T) {
	s, r, _, res := reserved(t)
	ctx := t.Context()
	other, err := s.ReserveSlot(ctx, slotOf(1, 1, 20))
	require.NoError(t, err)
	require.NoError(t, s.PutBlock(ctx, other.ID, blockKey(1), []byte("theirs")))
	require.NoError(t, r.PutBlock(ctx, blockKey(2), []byte("host")))
	before := r.Quota()

	err = s.PutBlock(ctx, res.ID, blockKey(1), []byte("mine"))
	assert.ErrorIs(t, err, reservations.ErrBlockExists, "written by another reservation")
	err = s.PutBlock(ctx, res.ID, blockKey(2), []byte("mine"))
	assert.ErrorIs(t, err, reservations.ErrBlockExists, "written by the host")

	assert.Equal(t, before, r.Quota())
	b, err := r.GetBlock(ctx, blockKey(1))
	require.NoError(t, err)
	assert.Equal(t, []byte("theirs"), b)
	assert.Equal(t, uint64(0), reservation(t, s, res).Used)
	requireInvariant(t, s)
}

func TestPutBlock_UnknownReservation(t *testing.T) {
	s, r, _, _ := reserved(t)
	err := s.PutBlock(t.Context(), reservations.ReservationID(uuid.Must(uuid.NewV7())), blockKey(1), []byte("x"))
	assert.ErrorIs(t, err, reservations.ErrNotFound)
	ok, err := r.HasBlock(t.Context(), blockKey(1))
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestDeleteReservation_DeletesBlocksAndMakesTheOfferWhole(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	ctx := t.Context()
	a, err := s.AddAvailability(ctx, reservations.Availability{
		TotalSize: 100, Duration: 100, MinPrice: u(1), MaxCollateral: u(10), TotalCollateral: u(12),
	})
	require.NoError(t, err)
	res, err := s.ReserveSlot(ctx, slotOf(1, 0, 60))
	require.NoError(t, err)
	for i := range 3 {
		require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(i), make([]byte, 10+i)))
	}
	require.Equal(t, uint64(33), r.Quota().Used)

	require.NoError(t, s.DeleteReservation(ctx, res.ID))
	got := availability(t, s, a.ID)
	assert.Equal(t, uint64(100), got.Size)
	assert.Equal(t, got.TotalSize, got.Size, "the offer is whole again")
	assert.Equal(t, u(12), got.FreeCollateral)
	assert.Equal(t, repo.Quota{Max: 1000, Used: 0, Reserved: 100}, r.Quota())
	for i := range 3 {
		ok, err := r.HasBlock(ctx, blockKey(i))
		require.NoError(t, err)
		assert.False(t, ok, "block %d", i)
	}
	_, err = s.Reservation(ctx, res.ID)
	assert.ErrorIs(t, err, reservations.ErrNotFound)
	requireInvariant(t, s)

	require.NoError(t, s.DeleteReservation(ctx, res.ID), "a repeat is success")
	assert.Equal(t, repo.Quota{Max: 1000, Used: 0, Reserved: 100}, r.Quota())
	requireInvariant(t, s)
}

// A reservation with more blocks than one atomic step deletes is deleted
// completely, in several commits.
func TestDeleteReservation_ManyBlocksInSeveralSteps(t *testing.T) {
	const n = 2000
	var commits atomic.Int64
	ds := failstore.NewFailstore(dssync.MutexWrap(datastore.NewMapDatastore()), func(op string) error {
		if op == "batch-commit" {
			commits.Add(1)
		}
		return nil
	})
	r, err := repo.New(t.Context(), ds, repo.WithQuotaMaxBytes(1<<20))
	require.NoError(t, err)
	s := reservations.New(r)
	ctx := t.Context()
	require.NoError(t, r.PutBlock(ctx, datastore.NewKey("/host"), make([]byte, 7)))
	a := mustAvailability(t, s, 3*n)
	res, err := s.ReserveSlot(ctx, slotOf(1, 0, 2*n))
	require.NoError(t, err)
	for i := range n {
		require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(i), []byte{1, 2}))
	}
	require.Equal(t, uint64(7+2*n), r.Quota().Used)

	commits.Store(0)
	require.NoError(t, s.DeleteReservation(ctx, res.ID))
	assert.GreaterOrEqual(t, commits.Load(), int64(4), "2,000 blocks take several atomic steps")
	assert.Equal(t, repo.Quota{Max: 1 << 20, Used: 7, Reserved: 3 * n}, r.Quota())
	got := availability(t, s, a.ID)
	assert.Equal(t, got.TotalSize, got.Size)
	for _, i := range []int{0, 511, 512, 1024, n - 1} {
		ok, err := r.HasBlock(ctx, blockKey(i))
		require.NoError(t, err)
		assert.False(t, ok, "block %d", i)
	}
	requireInvariant(t, s)
	require.NoError(t, s.DeleteReservation(ctx, res.ID))
}

// A deletion of many blocks cut short after its first step leaves a
// smaller reservation whose books balance; a repeat finishes it.
func TestDeleteReservation_InterruptedStepKeepsInvariants(t *testing.T) {
	const n = 1200
	base := dssync.MutexWrap(datastore.NewMapDatastore())
	var failAt atomic.Int64 // fail the commit with this number; zero: none
	var commits atomic.Int64
	ds := failstore.NewFailstore(base, func(op string) error {
		if op == "batch-commit" && commits.Add(1) == failAt.Load() {
			return errInjected
		}
		return nil
	})
	r, err := repo.New(t.Context(), ds, repo.WithQuotaMaxBytes(1<<20))
	require.NoError(t, err)
	s := reservations.New(r)
	ctx := t.Context()
	a := mustAvailability(t, s, 2*n)
	res, err := s.ReserveSlot(ctx, slotOf(1, 0, 2*n))
	require.NoError(t, err)
	for i := range n {
		require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(i), []byte{1}))
	}
	failAt.Store(commits.Load() + 2)
	require.ErrorIs(t, s.DeleteReservation(ctx, res.ID), errInjected)

	fresh, err := repo.New(ctx, base, repo.WithQuotaMaxBytes(1<<20))
	require.NoError(t, err)
	s2 := reservations.New(fresh)
	requireInvariant(t, s2)
	left := reservation(t, s2, res)
	assert.Equal(t, uint64(n-512), left.Used, "one step of 512 blocks is done")
	assert.Equal(t, uint64(n-512), fresh.Quota().Used)
	require.NoError(t, s2.DeleteReservation(ctx, res.ID))
	got := availability(t, s2, a.ID)
	assert.Equal(t, got.TotalSize, got.Size)
	assert.Equal(t, uint64(0), fresh.Quota().Used)
	requireInvariant(t, s2)
}

func TestReclaimExpired_DeletesExactlyTheExpired(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	ctx := t.Context()
	a := mustAvailability(t, s, 100)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	ends := []time.Time{now.Add(-time.Hour), now, now.Add(time.Second), {}}
	var rs []reservations.Reservation
	for i, end := range ends {
		slot := slotOf(1, uint64(i), 10)
		if !end.IsZero() {
			slot.Expiry = end.Add(-100 * time.Second) // it lasts 100 s: Ends() is end
		}
		res, err := s.ReserveSlot(ctx, slot)
		require.NoError(t, err)
		rs = append(rs, res)
	}
	require.NoError(t, s.PutBlock(ctx, rs[0].ID, blockKey(0), make([]byte, 4)))

	n, err := s.ReclaimExpired(ctx, now)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	for i, res := range rs {
		_, err := s.Reservation(ctx, res.ID)
		if i >= 2 {
			assert.NoError(t, err, "reservation %d", i)
		} else {
			assert.ErrorIs(t, err, reservations.ErrNotFound, "reservation %d", i)
		}
	}
	assert.Equal(t, uint64(80), availability(t, s, a.ID).Size)
	assert.Equal(t, repo.Quota{Max: 1000, Used: 0, Reserved: 100}, r.Quota())
	requireInvariant(t, s)

	n, err = s.ReclaimExpired(ctx, now)
	require.NoError(t, err)
	assert.Equal(t, 0, n)
}

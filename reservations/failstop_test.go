package reservations_test

import (
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/internal/faultfs"
	"github.com/stowage/stowage/internal/ldb"
	"github.com/stowage/stowage/internal/owner"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

func slot(b byte, index, size uint64) stowage.Slot {
	return stowage.Slot{RequestID: reqID(b), Index: index, Ask: stowage.StorageAsk{SlotSize: size, Duration: 10, Reward: u(1), Collateral: u(1)}}
}

func withFaults(f *faultfs.Faults) repo.Option {
	return repo.WithOwnerStorage(owner.Reservations, f.Wrap)
}

// acked is what a test expects after a reopen: every acknowledged
// operation's effect.
type acked struct {
	blocks    map[datastore.Key]int // raw repo blocks and Store blocks
	res       map[reservations.ReservationID]uint64
	gone      []reservations.ReservationID
	goneBlock []datastore.Key
	avail     map[reservations.AvailabilityID]uint64 // TotalSize
}

func (w acked) check(t *testing.T, r *repo.Repo, s *reservations.Store) {
	t.Helper()
	for k, n := range w.blocks {
		b, err := r.GetBlock(t.Context(), k)
		if assert.NoError(t, err, "block %s", k) {
			assert.Len(t, b, n, "block %s", k)
		}
	}
	for _, k := range w.goneBlock {
		ok, err := r.HasBlock(t.Context(), k)
		require.NoError(t, err)
		assert.False(t, ok, "block %s was deleted", k)
	}
	rs, err := s.Reservations(t.Context())
	require.NoError(t, err)
	byID := map[reservations.ReservationID]reservations.Reservation{}
	for _, x := range rs {
		byID[x.ID] = x
	}
	for id, slotSize := range w.res {
		if assert.Contains(t, byID, id) {
			assert.Equal(t, slotSize, byID[id].SlotSize)
		}
	}
	for _, id := range w.gone {
		assert.NotContains(t, byID, id)
	}
	for id, total := range w.avail {
		a, err := s.Availability(t.Context(), id)
		if assert.NoError(t, err) {
			assert.Equal(t, total, a.TotalSize)
		}
	}
}

// One failed fsync of a repo opened with Open: the change is refused with
// ErrWriteFailed, the repo reopens its database itself and goes on, and
// every acknowledged operation survives a reopen with the books balanced.
func TestOpen_FailedFsyncRecoversAndLosesNothingAcknowledged(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	f := &faultfs.Faults{}
	r, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(100_000), withFaults(f))
	require.NoError(t, err)
	s := reservations.New(r)
	w := acked{blocks: map[datastore.Key]int{}, res: map[reservations.ReservationID]uint64{}, avail: map[reservations.AvailabilityID]uint64{}}

	require.NoError(t, r.Reserve(ctx, 100))
	require.NoError(t, r.Release(ctx, 30))
	raw := datastore.NewKey("raw1")
	require.NoError(t, r.PutBlock(ctx, raw, make([]byte, 10)))
	w.blocks[raw] = 10
	a := mustAvailability(t, s, 1000)
	res1, err := s.ReserveSlot(ctx, slot(1, 0, 200))
	require.NoError(t, err)
	kb := datastore.NewKey("res1/b0")
	require.NoError(t, s.PutBlock(ctx, res1.ID, kb, make([]byte, 50)))
	require.NoError(t, s.Release(ctx, res1.ID, 20))

	f.FailNextJournalSync()
	_, err = s.AddAvailability(ctx, reservations.Availability{TotalSize: 500, Duration: 1})
	require.ErrorIs(t, err, repo.ErrWriteFailed)
	require.Equal(t, 1, f.Fired())

	// The repo reopened its database: later writes are acknowledged.
	raw2 := datastore.NewKey("raw2")
	require.NoError(t, r.PutBlock(ctx, raw2, make([]byte, 7)))
	w.blocks[raw2] = 7
	require.NoError(t, r.Reserve(ctx, 5))
	require.NoError(t, r.Release(ctx, 75), "the raw reservations net to zero, or the Store's books would not balance")
	res2, err := s.ReserveSlot(ctx, slot(2, 0, 100))
	require.NoError(t, err)
	kb2 := datastore.NewKey("res2/b0")
	require.NoError(t, s.PutBlock(ctx, res2.ID, kb2, make([]byte, 40)))
	w.blocks[kb2] = 40
	w.res[res2.ID] = 100
	require.NoError(t, s.DeleteReservation(ctx, res1.ID))
	w.gone = append(w.gone, res1.ID)
	w.goneBlock = append(w.goneBlock, kb)
	w.avail[a.ID] = 1000 - 20
	_, err = s.ModifyAvailability(ctx, a.ID, func(a *reservations.Availability) error { a.TotalSize += 30; return nil })
	require.NoError(t, err)
	w.avail[a.ID] += 30

	require.NoError(t, r.Verify(ctx))
	require.NoError(t, s.Verify(ctx))
	w.check(t, r, s)
	q := r.Quota()
	require.NoError(t, r.Close())

	r2, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(100_000))
	require.NoError(t, err)
	t.Cleanup(func() { _ = r2.Close() })
	s2 := reservations.New(r2)
	w.check(t, r2, s2)
	assert.NoError(t, r2.Verify(ctx))
	assert.NoError(t, s2.Verify(ctx))
	assert.Equal(t, q, r2.Quota())
}

// The same over a user's datastore (repo.New): the repo cannot reopen it,
// so after the failed commit every write fails with ErrWriteFailed and
// reads still work, until a new repo is made on the datastore.
func TestNew_FailedFsyncRefusesWritesUntilReopened(t *testing.T) {
	ctx := t.Context()
	f := &faultfs.Faults{}
	db, err := ldb.Open(t.TempDir(), ldb.Options{WrapStorage: f.Wrap})
	require.NoError(t, err)
	t.Cleanup(func() { _ = db.Close() })
	r, err := repo.New(ctx, db, repo.WithQuotaMaxBytes(100_000))
	require.NoError(t, err)
	s := reservations.New(r)
	a := mustAvailability(t, s, 1000)
	res, err := s.ReserveSlot(ctx, slot(1, 0, 200))
	require.NoError(t, err)
	kb := datastore.NewKey("b0")
	require.NoError(t, s.PutBlock(ctx, res.ID, kb, make([]byte, 50)))

	f.FailNextJournalSync()
	require.ErrorIs(t, r.Reserve(ctx, 1), repo.ErrWriteFailed)

	// Writes are refused, by the repo and by every Store on it.
	assert.ErrorIs(t, r.Reserve(ctx, 1), repo.ErrWriteFailed)
	assert.ErrorIs(t, r.Release(ctx, 1), repo.ErrWriteFailed)
	assert.ErrorIs(t, r.PutBlock(ctx, datastore.NewKey("x"), []byte("x")), repo.ErrWriteFailed)
	assert.ErrorIs(t, r.DeleteBlock(ctx, kb), repo.ErrWriteFailed)
	_, err = s.AddAvailability(ctx, reservations.Availability{TotalSize: 10, Duration: 1})
	assert.ErrorIs(t, err, repo.ErrWriteFailed)
	_, err = s.ReserveSlot(ctx, slot(2, 0, 10))
	assert.ErrorIs(t, err, repo.ErrWriteFailed)
	assert.ErrorIs(t, s.PutBlock(ctx, res.ID, datastore.NewKey("b1"), []byte("x")), repo.ErrWriteFailed)
	assert.ErrorIs(t, s.Release(ctx, res.ID, 1), repo.ErrWriteFailed)
	assert.ErrorIs(t, s.DeleteReservation(ctx, res.ID), repo.ErrWriteFailed)
	_, err = reservations.New(r).ModifyAvailability(ctx, a.ID, func(a *reservations.Availability) error { a.TotalSize++; return nil })
	assert.ErrorIs(t, err, repo.ErrWriteFailed)

	// Reads work.
	b, err := r.GetBlock(ctx, kb)
	require.NoError(t, err)
	assert.Len(t, b, 50)
	got, err := s.Reservation(ctx, res.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(150), got.Size)
	as, err := s.Availabilities(ctx)
	require.NoError(t, err)
	assert.Len(t, as, 1)

	// A new repo on the datastore writes again.
	r2, err := repo.New(ctx, db, repo.WithQuotaMaxBytes(100_000))
	require.NoError(t, err)
	s2 := reservations.New(r2)
	require.NoError(t, s2.DeleteReservation(ctx, res.ID))
	require.NoError(t, r2.Verify(ctx))
	require.NoError(t, s2.Verify(ctx))
	got2, err := s2.Availability(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(1000), got2.Size)
}

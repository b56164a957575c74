package reservations_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// Availabilities, reservations and the quota survive close and reopen of the
// embedded LevelDB (with fsync: durability is what is tested).
func TestLevelDB_StateSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	r, err := repo.Open(t.Context(), dir, repo.WithQuotaMaxBytes(10_000))
	require.NoError(t, err)
	s := reservations.New(r)
	a := mustAvailability(t, s, 1000)
	res, err := s.CreateReservation(t.Context(), a.ID, anySlot(reqID(3), 4, 300))
	require.NoError(t, err)
	require.NoError(t, s.Release(t.Context(), res.ID, 100))
	require.NoError(t, r.Close())

	r2, err := repo.Open(t.Context(), dir, repo.WithQuotaMaxBytes(10_000))
	require.NoError(t, err)
	t.Cleanup(func() { _ = r2.Close() })
	s2 := reservations.New(r2)
	requireInvariant(t, s2)
	assert.Equal(t, uint64(900), r2.Quota().Reserved)
	got, err := s2.Availability(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(700), got.Size)
	gotRes, err := s2.Reservation(t.Context(), res.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(200), gotRes.Size)
	assert.Equal(t, reqID(3), gotRes.RequestID)

	require.NoError(t, s2.DeleteReservation(t.Context(), res.ID))
	got, err = s2.Availability(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(900), got.Size)
	requireInvariant(t, s2)
}

// The byte loop's records (TotalSize, Used, blocks and their indexes, the
// slot index) survive a reopen of the embedded LevelDB.
func TestLevelDB_ByteLoopSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	r, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(10_000), repo.WithNoSync())
	require.NoError(t, err)
	s := reservations.New(r)
	a := mustAvailability(t, s, 1000)
	res, err := s.ReserveSlot(ctx, slotOf(5, 2, 300))
	require.NoError(t, err)
	require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(1), []byte("hello")))
	require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(2), make([]byte, 95)))
	require.NoError(t, r.Close())

	r2, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(10_000), repo.WithNoSync())
	require.NoError(t, err)
	t.Cleanup(func() { _ = r2.Close() })
	s2 := reservations.New(r2)
	requireInvariant(t, s2)
	assert.Equal(t, repo.Quota{Max: 10_000, Used: 100, Reserved: 900}, r2.Quota())
	got := availability(t, s2, a.ID)
	assert.Equal(t, uint64(1000), got.TotalSize)
	assert.Equal(t, uint64(700), got.Size)
	bySlot, ok, err := s2.ReservationForSlot(ctx, reqID(5), 2)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, res.ID, bySlot.ID)
	assert.Equal(t, uint64(100), bySlot.Used)
	assert.Equal(t, uint64(200), bySlot.Size)
	b, err := r2.GetBlock(ctx, blockKey(1))
	require.NoError(t, err)
	assert.Equal(t, []byte("hello"), b)
	_, err = s2.ReserveSlot(ctx, slotOf(5, 2, 1))
	assert.ErrorIs(t, err, reservations.ErrSlotReserved)

	// The block index came back too: deleting gives every byte back.
	require.NoError(t, s2.DeleteReservation(ctx, res.ID))
	got = availability(t, s2, a.ID)
	assert.Equal(t, got.TotalSize, got.Size)
	assert.Equal(t, repo.Quota{Max: 10_000, Used: 0, Reserved: 1000}, r2.Quota())
	ok, err = r2.HasBlock(ctx, blockKey(2))
	require.NoError(t, err)
	assert.False(t, ok)
	requireInvariant(t, s2)
}

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
	res, err := s.CreateReservation(t.Context(), a.ID, 300, reqID(3), 4)
	require.NoError(t, err)
	require.NoError(t, s.Release(t.Context(), res.ID, a.ID, 100))
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
	gotRes, err := s2.Reservation(t.Context(), res.ID, a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(200), gotRes.Size)
	assert.Equal(t, reqID(3), gotRes.RequestID)

	require.NoError(t, s2.DeleteReservation(t.Context(), res.ID, a.ID))
	got, err = s2.Availability(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(900), got.Size)
	requireInvariant(t, s2)
}

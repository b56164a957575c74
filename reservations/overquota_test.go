package reservations_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// A repo reopened with a Max below what it holds refuses new bytes, but
// bytes already reserved move to Used and back without growing what it
// holds: downloads of reserved slots go on, and reservations can always
// be deleted.
func TestByteLoop_WorksWhenReopenedOverQuota(t *testing.T) {
	ctx := t.Context()
	s0, r0, ds := newStore(t, 1000)
	a := mustAvailability(t, s0, 1000)
	res, err := s0.ReserveSlot(ctx, slotOf(1, 0, 600))
	require.NoError(t, err)
	require.NoError(t, s0.PutBlock(ctx, res.ID, blockKey(1), make([]byte, 100)))
	require.Equal(t, repo.Quota{Max: 1000, Used: 100, Reserved: 900}, r0.Quota())

	r, err := repo.New(ctx, ds, repo.WithQuotaMaxBytes(500))
	require.NoError(t, err)
	s := reservations.New(r)
	assert.Equal(t, uint64(0), r.Available())
	_, err = s.AddAvailability(ctx, reservations.Availability{TotalSize: 1, Duration: 1})
	assert.ErrorIs(t, err, repo.ErrQuotaNotEnough, "no new bytes")

	require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(2), make([]byte, 50)), "a new block of reserved bytes")
	require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(1), make([]byte, 150)), "an overwrite that grows")
	require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(1), make([]byte, 10)), "an overwrite that shrinks")
	assert.Equal(t, repo.Quota{Max: 500, Used: 60, Reserved: 940}, r.Quota())
	requireInvariant(t, s)

	require.NoError(t, s.DeleteReservation(ctx, res.ID))
	assert.Equal(t, repo.Quota{Max: 500, Used: 0, Reserved: 1000}, r.Quota())
	got := availability(t, s, a.ID)
	assert.Equal(t, got.TotalSize, got.Size)
	requireInvariant(t, s)
}

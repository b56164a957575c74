package reservations_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// The layout's version is recorded with the first write (a read writes
// nothing), so that a later release can tell what it reads.
func TestLayout_VersionIsRecordedWithTheFirstWrite(t *testing.T) {
	s, _, ds := newStore(t, 1000)
	_, err := s.Availabilities(t.Context())
	require.NoError(t, err)
	assert.Empty(t, snapshot(t, ds), "a read writes nothing")
	mustAvailability(t, s, 100)
	v, err := ds.Get(t.Context(), reservations.LayoutKey)
	require.NoError(t, err)
	assert.Equal(t, "2", string(v))
}

// A datastore in a later release's layout is refused with ErrNewerLayout,
// by reads and changes alike, and nothing is written; a version that no
// release wrote is ErrCorrupt.
func TestLayout_NewerIsRefused(t *testing.T) {
	for v, want := range map[string]error{"3": reservations.ErrNewerLayout, "x": reservations.ErrCorrupt, "1": reservations.ErrCorrupt} {
		t.Run(v, func(t *testing.T) {
			s, _, ds := newStore(t, 1000)
			a := mustAvailability(t, s, 100)
			require.NoError(t, ds.Put(t.Context(), reservations.LayoutKey, []byte(v)))
			r, err := repo.New(t.Context(), ds, repo.WithQuotaMaxBytes(1000))
			require.NoError(t, err)
			later := reservations.New(r)
			before := snapshot(t, ds)

			_, err = later.Availabilities(t.Context())
			assert.ErrorIs(t, err, want)
			_, err = later.Availability(t.Context(), a.ID)
			assert.ErrorIs(t, err, want)
			_, err = later.AddAvailability(t.Context(), reservations.Availability{TotalSize: 10})
			assert.ErrorIs(t, err, want)
			_, err = later.ReserveSlot(t.Context(), anySlot(reqID(1), 0, 10))
			assert.ErrorIs(t, err, want)
			assert.ErrorIs(t, later.Verify(t.Context()), want)
			assert.Equal(t, before, snapshot(t, ds), "nothing written")
		})
	}
}

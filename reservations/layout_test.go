package reservations_test

import (
	"testing"
	"time"

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
	assert.Equal(t, "3", string(v))
}

// A datastore in a later release's layout is refused with ErrNewerLayout,
// by reads and changes alike, and nothing is written; a version that no
// release wrote is ErrCorrupt.
func TestLayout_NewerIsRefused(t *testing.T) {
	for v, want := range map[string]error{"4": reservations.ErrNewerLayout, "x": reservations.ErrCorrupt, "1": reservations.ErrCorrupt} {
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

// A datastore of layout 2 (written before the expiry index) is brought to
// layout 3 by its first call, a read included: every reservation that
// expires is indexed and the version recorded, in one change. A corrupt
// reservation fails the upgrade with ErrCorrupt and nothing is written.
func TestLayout_2IsUpgradedWithItsExpiryIndex(t *testing.T) {
	s, _, ds := newStore(t, 1000)
	mustAvailability(t, s, 100)
	slot := slotOf(1, 0, 10)
	endsAt(&slot, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	timed, err := s.ReserveSlot(t.Context(), slot)
	require.NoError(t, err)
	never, err := s.ReserveSlot(t.Context(), slotOf(1, 1, 10))
	require.NoError(t, err)
	require.Empty(t, reservations.IndexEntriesForTest(never))
	entry := reservations.IndexEntriesForTest(timed)[0]
	// Back to layout 2, behind the store's back.
	require.NoError(t, ds.Delete(t.Context(), entry.Key))
	require.NoError(t, ds.Put(t.Context(), reservations.LayoutKey, []byte("2")))

	reopen := func() *reservations.Store {
		r, err := repo.New(t.Context(), ds, repo.WithQuotaMaxBytes(1000))
		require.NoError(t, err)
		return reservations.New(r)
	}

	// A corrupt reservation: the upgrade fails and writes nothing.
	good, err := ds.Get(t.Context(), reservations.KeyOf(never))
	require.NoError(t, err)
	require.NoError(t, ds.Put(t.Context(), reservations.KeyOf(never), []byte("{")))
	before := snapshot(t, ds)
	_, err = reopen().Availabilities(t.Context())
	require.ErrorIs(t, err, reservations.ErrCorrupt)
	assert.Equal(t, before, snapshot(t, ds), "nothing written")
	require.NoError(t, ds.Put(t.Context(), reservations.KeyOf(never), good))

	later := reopen()
	_, err = later.Availabilities(t.Context())
	require.NoError(t, err)
	v, err := ds.Get(t.Context(), reservations.LayoutKey)
	require.NoError(t, err)
	assert.Equal(t, "3", string(v))
	got, err := ds.Get(t.Context(), entry.Key)
	require.NoError(t, err, "indexed by expiry")
	assert.Equal(t, entry.Value, got)
	require.NoError(t, later.Verify(t.Context()))
	n, err := later.ReclaimExpired(t.Context(), timed.ValidUntil)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	requireInvariant(t, later)
}

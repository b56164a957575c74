package reservations_test

import (
	crand "crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// A corrupt LevelDB table is an error for every read that meets it, never a
// shorter list, and no record is deleted on the strength of a failed read.
func TestCorruptTable_IsAnErrorNeverAShorterList(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	r, err := repo.Open(ctx, dir, repo.WithNoSync(), repo.WithQuotaMaxBytes(1<<30))
	require.NoError(t, err)
	s := reservations.New(r)
	var withRes []reservations.Availability
	resKeys := map[reservations.AvailabilityID][]datastore.Key{}
	for i := range 40 {
		a := mustAvailability(t, s, 10_000)
		if i%3 == 0 {
			for j := range 3 {
				x, err := s.CreateReservation(ctx, a.ID, anySlot(reqID(byte(i)), uint64(j), 1000))
				require.NoError(t, err)
				resKeys[a.ID] = append(resKeys[a.ID], reservations.KeyOf(x))
				for k := range 2 {
					data := make([]byte, 300) // incompressible: the blocks fill the table's first part
					_, _ = crand.Read(data)
					require.NoError(t, s.PutBlock(ctx, x.ID, datastore.NewKey(fmt.Sprintf("b%d-%d-%d", i, j, k)), data))
				}
			}
			withRes = append(withRes, a)
		}
	}
	require.NoError(t, r.Close())
	// Reopening replays the journal into a table.
	r, err = repo.Open(ctx, dir, repo.WithNoSync())
	require.NoError(t, err)
	require.NoError(t, r.Close())

	tables, err := filepath.Glob(filepath.Join(dir, "*.ldb"))
	require.NoError(t, err)
	require.NotEmpty(t, tables, "a table file")
	for _, path := range tables {
		b, err := os.ReadFile(path)
		require.NoError(t, err)
		// One spot among the blocks, one among the records of the sales.
		for _, at := range []int{len(b) / 5, len(b) * 3 / 4} {
			for i := at; i < at+32; i++ {
				b[i] ^= 0xff
			}
		}
		require.NoError(t, os.WriteFile(path, b, 0o644))
	}

	r, err = repo.Open(ctx, dir, repo.WithNoSync(), repo.WithQuotaMaxBytes(1<<30))
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	s = reservations.New(r)
	as, err := s.Availabilities(ctx)
	assert.Error(t, err)
	assert.Nil(t, as)
	rs, err := s.Reservations(ctx)
	assert.Error(t, err)
	assert.Nil(t, rs)
	failed := 0
	for _, a := range withRes {
		rs, err := s.ReservationsOf(ctx, a.ID)
		if err != nil {
			assert.Nil(t, rs)
			failed++
		} else {
			assert.Len(t, rs, 3, "a list read without error is whole")
		}
	}
	assert.Positive(t, failed, "some reservation lists cross the corrupt block")
	assert.Error(t, r.Verify(ctx))
	assert.Error(t, s.Verify(ctx))
	for _, a := range withRes {
		assert.Error(t, s.DeleteAvailability(ctx, a.ID), "availability %s has reservations", a.ID)
	}
	// Nothing was deleted: every record is still there, or unreadable.
	ds := r.Datastore()
	for _, a := range withRes {
		for _, k := range append(resKeys[a.ID], reservations.KeyOf(a)) {
			_, err := ds.Get(ctx, k)
			assert.NotErrorIs(t, err, datastore.ErrNotFound, "%s", k)
		}
	}
}

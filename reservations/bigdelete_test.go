package reservations

import (
	"fmt"
	"testing"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/internal/owner"
	"github.com/stowage/stowage/repo"
)

// A big reservation is deleted in steps, each its own change that reads
// only from where the step before stopped. Every invariant holds after
// every step (a crash between two leaves a smaller reservation); blocks a
// PutBlock wrote meanwhile below where the steps had got to, empty ones
// too, are deleted with the rest; a repeated delete after an interrupted
// one finishes it. On LevelDB (reads from a point on) and on a map.
func TestDeleteReservation_StepsReadOnwardAndMissNothing(t *testing.T) {
	stores := map[string]func(t *testing.T) *repo.Repo{
		"leveldb": func(t *testing.T) *repo.Repo {
			r, err := repo.Open(t.Context(), t.TempDir(), repo.WithNoSync(), repo.WithQuotaMaxBytes(1<<30))
			require.NoError(t, err)
			return r
		},
		"map": func(t *testing.T) *repo.Repo {
			r, err := repo.New(t.Context(), datastore.NewMapDatastore(), repo.WithQuotaMaxBytes(1<<30))
			require.NoError(t, err)
			return r
		},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			r := open(t)
			t.Cleanup(func() { _ = r.Close() })
			s := New(r)
			one := *uint256.NewInt(1)
			a, err := s.AddAvailability(ctx, Availability{TotalSize: 1 << 20, Duration: 10, MinPrice: one, MaxCollateral: one})
			require.NoError(t, err)
			res, err := s.ReserveSlot(ctx, stowage.Slot{RequestID: stowage.RequestID{1}, Ask: stowage.StorageAsk{SlotSize: 1 << 19, Duration: 10, Reward: one, Collateral: one}})
			require.NoError(t, err)
			const n = 2*deleteStep + 100
			keys := make([]datastore.Key, n)
			for i := range keys {
				keys[i] = datastore.NewKey(fmt.Sprintf("m/%05d", i))
			}
			require.NoError(t, PutBlocksForTest(ctx, s, res.ID, keys, make([]byte, 10)))

			gone := func(k datastore.Key) {
				t.Helper()
				ok, err := r.HasBlock(ctx, k)
				require.NoError(t, err)
				assert.False(t, ok, "block %s", k)
			}
			var w owner.Watch
			next, done, err := s.deleteStep(ctx, res.ID, "", &w)
			require.NoError(t, err)
			require.False(t, done)
			require.NotNil(t, w, "a step that leaves blocks for the next starts watching")
			defer w.Stop()
			require.NoError(t, s.Verify(ctx), "after the first step")
			for _, k := range keys[:deleteStep] {
				gone(k)
			}
			got, err := s.Reservation(ctx, res.ID)
			require.NoError(t, err)
			assert.Equal(t, uint64((n-deleteStep)*10), got.Used, "a smaller reservation")

			// Blocks written meanwhile, below where the steps are and above.
			late := []datastore.Key{datastore.NewKey("a/empty"), datastore.NewKey("a/full"), datastore.NewKey("z/full")}
			require.NoError(t, s.PutBlock(ctx, res.ID, late[0], nil))
			require.NoError(t, s.PutBlock(ctx, res.ID, late[1], []byte("late")))
			require.NoError(t, s.PutBlock(ctx, res.ID, late[2], []byte("late")))

			// An interrupted delete (the process restarted) is finished by
			// a repeated one; its steps start from the start.
			next, done, err = s.deleteStep(ctx, res.ID, next, &w)
			require.NoError(t, err)
			require.False(t, done)
			require.NoError(t, s.Verify(ctx), "after the second step")
			require.NoError(t, s.DeleteReservation(ctx, res.ID))
			require.NoError(t, s.Verify(ctx))
			for _, k := range append(keys, late...) {
				gone(k)
			}
			_, err = s.Reservation(ctx, res.ID)
			assert.ErrorIs(t, err, ErrNotFound)
			a2, err := s.Availability(ctx, a.ID)
			require.NoError(t, err)
			assert.Equal(t, a.TotalSize, a2.TotalSize)
			assert.Equal(t, a.TotalSize, a2.Size, "the offer is whole again")
			assert.Zero(t, r.Quota().Used)
			_ = next

			// The last step of one delete finds what was written below
			// where it had got to.
			res, err = s.ReserveSlot(ctx, stowage.Slot{RequestID: stowage.RequestID{2}, Ask: stowage.StorageAsk{SlotSize: 1 << 19, Duration: 10, Reward: one, Collateral: one}})
			require.NoError(t, err)
			require.NoError(t, PutBlocksForTest(ctx, s, res.ID, keys, make([]byte, 10)))
			var w2 owner.Watch
			next, done, err = s.deleteStep(ctx, res.ID, "", &w2)
			require.NoError(t, err)
			require.False(t, done)
			require.NotNil(t, w2)
			defer w2.Stop()
			w = w2
			assert.False(t, w.Hit(), "the delete's own steps put nothing in the index")
			require.NoError(t, s.PutBlock(ctx, res.ID, late[0], nil))
			require.NoError(t, s.PutBlock(ctx, res.ID, late[1], []byte("late")))
			assert.True(t, w.Hit())
			for !done {
				next, done, err = s.deleteStep(ctx, res.ID, next, &w)
				require.NoError(t, err)
				require.NoError(t, s.Verify(ctx))
			}
			for _, k := range append(keys, late...) {
				gone(k)
			}
			assert.Zero(t, r.Quota().Used)
		})
	}
}

// A big delete racing PutBlocks into the same reservation (empty blocks
// too, below and above where its steps are): the books balance after, and
// nothing is left of the reservation.
func TestDeleteReservation_RacingPutBlocks(t *testing.T) {
	ctx := t.Context()
	r, err := repo.Open(ctx, t.TempDir(), repo.WithNoSync(), repo.WithQuotaMaxBytes(1<<30))
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	s := New(r)
	one := *uint256.NewInt(1)
	_, err = s.AddAvailability(ctx, Availability{TotalSize: 1 << 20, Duration: 10, MinPrice: one, MaxCollateral: one})
	require.NoError(t, err)
	res, err := s.ReserveSlot(ctx, stowage.Slot{RequestID: stowage.RequestID{1}, Ask: stowage.StorageAsk{SlotSize: 1 << 19, Duration: 10, Reward: one, Collateral: one}})
	require.NoError(t, err)
	keys := make([]datastore.Key, 4*deleteStep)
	for i := range keys {
		keys[i] = datastore.NewKey(fmt.Sprintf("m/%05d", i))
	}
	require.NoError(t, PutBlocksForTest(ctx, s, res.ID, keys, make([]byte, 10)))

	deleted := make(chan error, 1)
	go func() { deleted <- s.DeleteReservation(ctx, res.ID) }()
	for i := 0; ; i++ {
		select {
		case err := <-deleted:
			require.NoError(t, err)
			require.NoError(t, s.Verify(ctx))
			assert.Zero(t, r.Quota().Used)
			_, err = s.Reservation(ctx, res.ID)
			assert.ErrorIs(t, err, ErrNotFound)
			return
		default:
		}
		for _, k := range []string{fmt.Sprintf("a/%d", i), fmt.Sprintf("z/%d", i)} {
			data := []byte("late")
			if i%2 == 0 {
				data = nil
			}
			if err := s.PutBlock(ctx, res.ID, datastore.NewKey(k), data); err != nil {
				require.ErrorIs(t, err, ErrNotFound)
			}
		}
	}
}

package reservations_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// Blocks written while their reservation is deleted either are deleted
// with it or fail with ErrNotFound: none is left behind, and every byte
// goes back to the availability.
func TestPutBlock_ConcurrentWithDeleteReservationLeavesNothing(t *testing.T) {
	s, r, _ := newStore(t, 1<<20)
	a := mustAvailability(t, s, 10_000)
	res, err := s.ReserveSlot(t.Context(), slotOf(1, 0, 5000))
	require.NoError(t, err)
	ctx := context.Background()
	const n = 100
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			err := s.PutBlock(ctx, res.ID, blockKey(i), make([]byte, 10))
			if err != nil && !errors.Is(err, reservations.ErrNotFound) {
				t.Errorf("block %d: %v", i, err)
			}
		})
	}
	wg.Go(func() {
		<-start
		assert.NoError(t, s.DeleteReservation(ctx, res.ID))
	})
	close(start)
	wg.Wait()

	assert.Equal(t, repo.Quota{Max: 1 << 20, Used: 0, Reserved: 10_000}, r.Quota())
	for i := range n {
		ok, err := r.HasBlock(t.Context(), blockKey(i))
		require.NoError(t, err)
		assert.False(t, ok, "block %d", i)
	}
	got := availability(t, s, a.ID)
	assert.Equal(t, got.TotalSize, got.Size)
	requireInvariant(t, s)
}

// A call whose ctx is done before it starts changes nothing.
func TestByteLoop_CancelledContextChangesNothing(t *testing.T) {
	s, r, ds := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	res, err := s.ReserveSlot(t.Context(), slotOf(1, 0, 50))
	require.NoError(t, err)
	require.NoError(t, s.PutBlock(t.Context(), res.ID, blockKey(0), make([]byte, 10)))
	before := r.Quota()
	snapshot := func() map[string]string {
		q, err := ds.Query(t.Context(), queryAll())
		require.NoError(t, err)
		es, err := q.Rest()
		require.NoError(t, err)
		m := map[string]string{}
		for _, e := range es {
			m[e.Key] = string(e.Value)
		}
		return m
	}
	records := snapshot()

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = s.ReserveSlot(ctx, slotOf(1, 1, 10))
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, s.PutBlock(ctx, res.ID, blockKey(1), []byte("x")), context.Canceled)
	assert.ErrorIs(t, s.DeleteReservation(ctx, res.ID), context.Canceled)
	_, err = s.ReclaimExpired(ctx, slotEnd)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.ModifyAvailability(ctx, a.ID, func(a *reservations.Availability) error {
		a.TotalSize++
		return nil
	})
	assert.ErrorIs(t, err, context.Canceled)

	assert.Equal(t, before, r.Quota())
	assert.Equal(t, records, snapshot())
	ok, err := r.HasBlock(t.Context(), datastore.NewKey("/b/1"))
	require.NoError(t, err)
	assert.False(t, ok)
	requireInvariant(t, s)
}

package reservations_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/reservations"
)

// Failure injection at every write of a scripted scenario lives in package
// stowagetest, which runs it on the in-memory map, a namespaced store and
// LevelDB.

// Hundreds of goroutines race for one availability: exactly as many
// reservations succeed as fit, never more.
func TestCreateReservation_ConcurrentNeverOvercommits(t *testing.T) {
	s, _, _ := newStore(t, 1<<20)
	const slot, fits = 10, 37
	a := mustAvailability(t, s, slot*fits+slot-1) // room for 37 and a bit
	var wg sync.WaitGroup
	var ok, outOfBounds atomic.Int64
	for i := range 300 {
		wg.Go(func() {
			_, err := s.CreateReservation(context.Background(), a.ID, anySlot(reqID(1), uint64(i), slot))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, reservations.ErrNoAvailability):
				outOfBounds.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(fits), ok.Load())
	assert.Equal(t, int64(300-fits), outOfBounds.Load())
	got, err := s.Availability(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(slot-1), got.Size)
	rs, err := s.ReservationsOf(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Len(t, rs, fits)
	requireInvariant(t, s)
}

// Many goroutines create, release and delete reservations on a few
// availabilities while Verify runs alongside: the invariant always holds.
func TestMixedOperations_ConcurrentKeepInvariant(t *testing.T) {
	s, r, _ := newStore(t, 1<<20)
	var avails []reservations.Availability
	for range 4 {
		avails = append(avails, mustAvailability(t, s, 2000))
	}
	ctx := context.Background()
	var wg sync.WaitGroup
	var created atomic.Int64
	for g := range 64 {
		wg.Go(func() {
			a := avails[g%len(avails)]
			for i := range 20 {
				res, err := s.CreateReservation(ctx, a.ID, anySlot(reqID(byte(g)), uint64(i), 50))
				if errors.Is(err, reservations.ErrNoAvailability) {
					continue
				}
				if !assert.NoError(t, err) {
					return
				}
				created.Add(1)
				assert.NoError(t, s.Release(ctx, res.ID, 20))
				assert.NoError(t, s.Release(ctx, res.ID, 5))
				if i%3 != 0 {
					assert.NoError(t, s.DeleteReservation(ctx, res.ID))
				}
			}
		})
	}
	stop := make(chan struct{})
	verified := make(chan error, 1)
	go func() {
		var err error
		for {
			select {
			case <-stop:
				verified <- err
				return
			default:
			}
			if e := s.Verify(ctx); e != nil && err == nil {
				err = e
			}
		}
	}()
	wg.Wait()
	close(stop)
	require.NoError(t, <-verified, "invariant broken during the run")
	requireInvariant(t, s)

	rs, err := s.Reservations(ctx)
	require.NoError(t, err)
	var held uint64
	for _, x := range rs {
		held += x.Size
	}
	as, err := s.Availabilities(ctx)
	require.NoError(t, err)
	var free uint64
	for _, a := range as {
		free += a.Size
	}
	assert.Equal(t, r.Quota().Reserved, held+free)
	assert.Equal(t, uint64(8000)-r.Quota().Reserved, uint64(created.Load())*25, "every reservation released 25 bytes to the quota")
	assert.Positive(t, created.Load())
}

package reservations_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// stressFor is how long the listing stress runs: a couple of seconds, or
// STOWAGE_STRESS_SECONDS.
func stressFor(t *testing.T) time.Duration {
	if s := os.Getenv("STOWAGE_STRESS_SECONDS"); s != "" {
		n, err := strconv.Atoi(s)
		require.NoError(t, err)
		return time.Duration(n) * time.Second
	}
	return 2 * time.Second
}

// Issue 17 item 5: listings read one state. 32 goroutines create and
// delete availabilities and reservations while 8 list everything; no
// listing reports corruption, none fails, and the books balance after.
func TestListings_ConsistentWhileOthersChange(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) (*reservations.Store, *repo.Repo){
		"leveldb": func(t *testing.T) (*reservations.Store, *repo.Repo) {
			r, err := repo.Open(t.Context(), t.TempDir(), repo.WithNoSync(), repo.WithQuotaMaxBytes(1<<40))
			require.NoError(t, err)
			t.Cleanup(func() { _ = r.Close() })
			return reservations.New(r), r
		},
		"map": func(t *testing.T) (*reservations.Store, *repo.Repo) {
			s, r, _ := newStore(t, 1<<40)
			return s, r
		},
	} {
		t.Run(name, func(t *testing.T) {
			s, _ := open(t)
			ctx := context.Background()
			deadline := time.Now().Add(stressFor(t))
			var stop atomic.Bool
			var wg sync.WaitGroup
			var changes, lists atomic.Int64
			for w := range 32 {
				wg.Go(func() {
					for i := 0; !stop.Load(); i++ {
						a, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 1000, Duration: 1000, MinPrice: u(1), MaxCollateral: u(100)})
						if err != nil {
							t.Error(err)
							return
						}
						req := stowage.RequestID{byte(w), byte(i), byte(i >> 8), byte(i >> 16)}
						var rs []reservations.Reservation
						for j := range 2 {
							r, err := s.CreateReservation(ctx, a.ID, anySlot(req, uint64(j), 100))
							if err != nil {
								t.Error(err)
								return
							}
							rs = append(rs, r)
						}
						for _, r := range rs {
							if err := s.DeleteReservation(ctx, r.ID); err != nil {
								t.Error(err)
								return
							}
						}
						if err := s.DeleteAvailability(ctx, a.ID); err != nil {
							t.Error(err)
							return
						}
						changes.Add(1)
					}
				})
			}
			errs := make(chan error, 8)
			for range 8 {
				wg.Go(func() {
					for !stop.Load() {
						as, err := s.Availabilities(ctx)
						if err != nil {
							errs <- err
							return
						}
						for _, a := range as {
							if _, err := s.ReservationsOf(ctx, a.ID); err != nil {
								errs <- err
								return
							}
						}
						rs, err := s.Reservations(ctx)
						if err != nil {
							errs <- err
							return
						}
						for _, r := range rs {
							if _, _, err := s.ReservationForSlot(ctx, r.RequestID, r.SlotIndex); err != nil {
								errs <- err
								return
							}
						}
						lists.Add(1)
					}
				})
			}
			for time.Now().Before(deadline) && len(errs) == 0 {
				select {
				case <-time.After(50 * time.Millisecond):
				case <-t.Context().Done():
				}
			}
			stop.Store(true)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Errorf("listing: %v (corrupt: %v)", err, errors.Is(err, reservations.ErrCorrupt))
			}
			require.NoError(t, s.Verify(ctx))
			t.Logf("%d create/delete cycles, %d full listings", changes.Load(), lists.Load())
			require.Positive(t, lists.Load())
		})
	}
}

package reservations_test

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// Issue 22: Verify reads a snapshot. Beside 8 writers on a store of
// 20,000 reservations every Verify passes, the writers complete changes
// while a Verify is reading (the hook waits for them: a Verify that held
// changes off would never see them), and a record broken behind the
// store's back is still reported.
func TestVerify_BesideWritersOnASnapshot(t *testing.T) {
	r, s, aids := buildFixture(t, t.TempDir(), 20, 20_000)
	ctx := context.Background()
	progress := make(chan struct{})
	var stop atomic.Bool
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				res, err := s.CreateReservation(ctx, aids[w], anySlot(stowage.RequestID{0xaa, byte(w)}, uint64(i), 10))
				if err != nil {
					t.Error(err)
					return
				}
				if err := s.DeleteReservation(ctx, res.ID); err != nil {
					t.Error(err)
					return
				}
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		})
	}
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()

	// While a Verify reads, wait for 16 completions.
	var during atomic.Int64
	reservations.SetVerifyHook(func() {
		deadline := time.After(30 * time.Second) // a bound on a hang, not a measurement
		for n := 0; n < 16; n++ {
			select {
			case <-progress:
				during.Add(1)
			case <-deadline:
				t.Error("no writer completed a change while Verify was reading")
				return
			}
		}
	})
	t.Cleanup(func() { reservations.SetVerifyHook(nil) })
	for range 2 {
		during.Store(0)
		require.NoError(t, s.Verify(ctx))
		require.Positive(t, during.Load())
	}
	reservations.SetVerifyHook(nil)

	// A byID entry for a reservation that does not exist, written behind
	// the store's back while the writers go on.
	ghost := reservations.ReservationID(uuid.Must(uuid.NewV7()))
	key := datastore.NewKey("/meta/sales/byid/" + ghost.String())
	require.NoError(t, r.Datastore().Put(ctx, key, []byte(aids[0].String())))
	err := s.Verify(ctx)
	require.ErrorIs(t, err, reservations.ErrInvariant)
	require.ErrorContains(t, err, "index names reservation "+ghost.String()+", which does not exist")
	require.NoError(t, r.Datastore().Delete(ctx, key))
	require.NoError(t, s.Verify(ctx))
}

// endsAt sets slot's Expiry so that slot.Ends(), the ValidUntil of its
// reservation, is at.
func endsAt(slot *stowage.Slot, at time.Time) {
	slot.Expiry = at.Add(-time.Duration(slot.Ask.Duration) * time.Second)
}

// A missing or stray expiry index entry is reported.
func TestVerify_ReportsTheExpiryIndex(t *testing.T) {
	r, err := repo.Open(t.Context(), t.TempDir(), repo.WithNoSync(), repo.WithQuotaMaxBytes(1<<30))
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	s := reservations.New(r)
	ctx := t.Context()
	mustAvailability(t, s, 1000)
	slot := slotOf(1, 0, 10)
	endsAt(&slot, time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC))
	res, err := s.ReserveSlot(ctx, slot)
	require.NoError(t, err)
	requireInvariant(t, s)
	entries := reservations.IndexEntriesForTest(res)
	require.Len(t, entries, 1)
	require.NoError(t, r.Datastore().Delete(ctx, entries[0].Key))
	err = s.Verify(ctx)
	require.ErrorIs(t, err, reservations.ErrInvariant)
	require.ErrorContains(t, err, "is not indexed by its expiry")
	// Back, plus one for a time the reservation does not expire at.
	require.NoError(t, r.Datastore().Put(ctx, entries[0].Key, entries[0].Value))
	other := res
	other.ValidUntil = other.ValidUntil.Add(time.Second)
	stray := reservations.IndexEntriesForTest(other)[0]
	require.NoError(t, r.Datastore().Put(ctx, stray.Key, stray.Value))
	err = s.Verify(ctx)
	require.ErrorIs(t, err, reservations.ErrInvariant)
	require.ErrorContains(t, err, "names no reservation that expires then")
}

// ReclaimExpired against a model: reservations that expire, have expired
// or never expire (ValidUntil zero), the clock moving on, and restarts.
// Each sweep deletes exactly those whose ValidUntil is set and not after
// now; the index stays consistent (Verify checks it).
func TestReclaimExpired_Model(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	open := func() (*repo.Repo, *reservations.Store) {
		r, err := repo.Open(ctx, dir, repo.WithNoSync(), repo.WithQuotaMaxBytes(1<<30))
		require.NoError(t, err)
		return r, reservations.New(r)
	}
	r, s := open()
	defer func() { _ = r.Close() }()
	mustAvailability(t, s, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	model := map[reservations.ReservationID]time.Time{}
	for step := range 200 {
		switch k := rng.IntN(10); {
		case k < 6: // a new reservation
			slot := slotOf(2, uint64(step), 10)
			switch rng.IntN(3) {
			case 0: // never expires
			case 1: // already expired
				endsAt(&slot, now.Add(-time.Duration(rng.IntN(100)+1)*time.Second))
			default:
				endsAt(&slot, now.Add(time.Duration(rng.IntN(100))*time.Second))
			}
			res, err := s.ReserveSlot(ctx, slot)
			require.NoError(t, err)
			model[res.ID] = slot.Ends()
		case k < 8: // the clock moves on, a sweep
			now = now.Add(time.Duration(rng.IntN(30)) * time.Second)
			want := 0
			for id, until := range model {
				if !until.IsZero() && !until.After(now) {
					want++
					delete(model, id)
				}
			}
			n, err := s.ReclaimExpired(ctx, now)
			require.NoError(t, err)
			require.Equal(t, want, n, "step %d", step)
		case k < 9: // one deleted by hand
			for id := range model {
				require.NoError(t, s.DeleteReservation(ctx, id))
				delete(model, id)
				break
			}
		default: // a restart
			require.NoError(t, r.Close())
			r, s = open()
		}
		rs, err := s.Reservations(ctx)
		require.NoError(t, err)
		require.Len(t, rs, len(model), "step %d", step)
		for _, res := range rs {
			until, ok := model[res.ID]
			require.True(t, ok)
			require.True(t, until.Equal(res.ValidUntil))
		}
		require.NoError(t, s.Verify(ctx), "step %d", step)
	}
}

// A datastore of layout 2 (no expiry index) gets its index on open.
func TestReclaimExpired_IndexesLayout2(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	r, err := repo.Open(ctx, dir, repo.WithNoSync(), repo.WithQuotaMaxBytes(1<<30))
	require.NoError(t, err)
	s := reservations.New(r)
	mustAvailability(t, s, 1000)
	slot := slotOf(3, 0, 10)
	endsAt(&slot, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	res, err := s.ReserveSlot(ctx, slot)
	require.NoError(t, err)
	// Back to layout 2, behind the store's back.
	require.NoError(t, r.Datastore().Delete(ctx, reservations.IndexEntriesForTest(res)[0].Key))
	require.NoError(t, r.Datastore().Put(ctx, datastore.NewKey("/meta/sales/layout"), []byte("2")))
	require.NoError(t, r.Close())

	r, err = repo.Open(ctx, dir, repo.WithNoSync(), repo.WithQuotaMaxBytes(1<<30))
	require.NoError(t, err)
	defer func() { _ = r.Close() }()
	s = reservations.New(r)
	require.NoError(t, s.Verify(ctx))
	n, err := s.ReclaimExpired(ctx, slot.Ends())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	_, found, err := s.ReservationForSlot(ctx, slot.RequestID, slot.Index)
	require.NoError(t, err)
	require.False(t, found)
	require.NoError(t, s.Verify(ctx))
}

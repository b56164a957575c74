package pgds_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/pgds"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// sharedStore opens a repo in shared mode on its own connection pool, as
// one host of a fleet would.
func sharedStore(t testing.TB, url string) (*reservations.Store, *repo.Repo) {
	t.Helper()
	ds, err := pgds.Open(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { ds.Close() })
	r, err := repo.New(t.Context(), ds, repo.WithShared(), repo.WithQuotaMaxBytes(1<<20))
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return reservations.New(r), r
}

// Hosts sharing one database never reserve more than an availability has,
// nor one slot twice, and the books balance.
func TestShared_HostsNeverOvercommit(t *testing.T) {
	_, url := openDS(t)
	first, _ := sharedStore(t, url)
	a, err := first.AddAvailability(t.Context(), reservations.Availability{TotalSize: 1000, Duration: 100})
	require.NoError(t, err)

	const hosts, perHost = 3, 8
	var won, slotWon atomic.Int64
	var wg sync.WaitGroup
	for h := range hosts {
		s, _ := sharedStore(t, url)
		for g := range perHost {
			wg.Go(func() {
				ask := stowage.StorageAsk{Slots: 1, SlotSize: 30, Duration: 10}
				_, err := s.ReserveSlot(context.Background(), stowage.Slot{RequestID: stowage.RequestID{1}, Index: uint64(h*perHost + g), Ask: ask})
				if err == nil {
					won.Add(1)
				} else {
					assert.ErrorIs(t, err, reservations.ErrNoAvailability)
				}
				_, err = s.ReserveSlot(context.Background(), stowage.Slot{RequestID: stowage.RequestID{2}, Index: 0, Ask: stowage.StorageAsk{Slots: 1, SlotSize: 1, Duration: 1}})
				switch {
				case err == nil:
					slotWon.Add(1)
				case errors.Is(err, reservations.ErrSlotReserved), errors.Is(err, reservations.ErrNoAvailability):
				default:
					t.Errorf("reserve the contended slot: %v", err)
				}
			})
		}
	}
	wg.Wait()
	assert.Equal(t, int64(1), slotWon.Load(), "one slot, one reservation across the fleet")
	got, err := first.Availability(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(1000)-uint64(won.Load())*30-1, got.Size)
	require.NoError(t, first.Verify(t.Context()))
}

// The whole life of a slot's bytes works in shared mode.
func TestShared_ByteLoop(t *testing.T) {
	_, url := openDS(t)
	s, r := sharedStore(t, url)
	ctx := t.Context()
	a, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 1000, Duration: 100, MaxCollateral: *uint256.NewInt(100), TotalCollateral: *uint256.NewInt(50)})
	require.NoError(t, err)
	res, err := s.ReserveSlot(ctx, stowage.Slot{RequestID: stowage.RequestID{1}, Ask: stowage.StorageAsk{Slots: 1, SlotSize: 300, Duration: 10, Collateral: *uint256.NewInt(20)}})
	require.NoError(t, err)
	require.NoError(t, s.PutBlock(ctx, res.ID, datastore.NewKey("/b/1"), make([]byte, 100)))
	require.NoError(t, s.PutBlock(ctx, res.ID, datastore.NewKey("/b/2"), make([]byte, 100)))
	assert.Equal(t, uint64(200), r.Quota().Used)
	require.NoError(t, s.Verify(ctx))
	require.NoError(t, s.DeleteReservation(ctx, res.ID))
	got, err := s.Availability(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, got.TotalSize, got.Size)
	assert.Equal(t, got.TotalCollateral, got.FreeCollateral)
	assert.Equal(t, repo.Quota{Max: 1 << 20, Used: 0, Reserved: 1000}, r.Quota())
	require.NoError(t, s.Verify(ctx))
	require.NoError(t, r.Verify(ctx))
}

// A host deletes the blocks another host wrote for its reservation, empty
// ones too (they add nothing to Used): in shared mode no host trusts what
// it remembers of a reservation's blocks.
func TestShared_DeleteFindsBlocksOfAnotherHost(t *testing.T) {
	_, url := openDS(t)
	maker, r := sharedStore(t, url)
	writer, _ := sharedStore(t, url)
	ctx := t.Context()
	_, err := maker.AddAvailability(ctx, reservations.Availability{TotalSize: 1000, Duration: 100})
	require.NoError(t, err)
	res, err := maker.ReserveSlot(ctx, stowage.Slot{RequestID: stowage.RequestID{1}, Ask: stowage.StorageAsk{Slots: 1, SlotSize: 300, Duration: 10}})
	require.NoError(t, err)
	empty := datastore.NewKey("/b/empty")
	require.NoError(t, writer.PutBlock(ctx, res.ID, empty, nil))
	require.NoError(t, maker.DeleteReservation(ctx, res.ID))
	has, err := r.HasBlock(ctx, empty)
	require.NoError(t, err)
	assert.False(t, has, "the other host's empty block went with the reservation")
	require.NoError(t, maker.Verify(ctx))
}

package reservations_test

import (
	"context"
	"testing"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

func u(n uint64) uint256.Int { return *uint256.NewInt(n) }

func reqID(b byte) stowage.RequestID { return stowage.RequestID{b} }

// newStore returns a Store over an in-memory datastore with the given quota.
func newStore(t testing.TB, max uint64, opts ...reservations.Option) (*reservations.Store, *repo.Repo, datastore.Batching) {
	t.Helper()
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	r, err := repo.New(t.Context(), ds, repo.WithQuotaMaxBytes(max))
	require.NoError(t, err)
	return reservations.New(r, opts...), r, ds
}

// mustAvailability creates an availability with generous terms.
func mustAvailability(t testing.TB, s *reservations.Store, size uint64) reservations.Availability {
	t.Helper()
	a, err := s.AddAvailability(t.Context(), reservations.Availability{TotalSize: size, Duration: 1000, MinPrice: u(1), MaxCollateral: u(100)})
	require.NoError(t, err)
	return a
}

func requireInvariant(t testing.TB, s *reservations.Store) {
	t.Helper()
	require.NoError(t, s.Verify(t.Context()))
}

// anySlot is slot index of request req, of size bytes, on terms that
// mustAvailability's availabilities take: it lasts a second, pays 2^40,
// asks no collateral and has no Expiry.
func anySlot(req stowage.RequestID, index, size uint64) stowage.Slot {
	return stowage.Slot{RequestID: req, Index: index, Ask: stowage.StorageAsk{Slots: index + 1, SlotSize: size, Duration: 1, Reward: u(1 << 40)}}
}

// replaceAvailability stores a in place of the availability with a.ID, as
// a host that edits a copy it read earlier does: ModifyAvailability with a
// function that replaces the whole record.
func replaceAvailability(ctx context.Context, s *reservations.Store, a reservations.Availability) error {
	_, err := s.ModifyAvailability(ctx, a.ID, func(cur *reservations.Availability) error {
		*cur = a
		return nil
	})
	return err
}

// findSlot is a slot of size bytes lasting duration seconds that pays
// price over its duration (a multiple of duration) and asks collateral.
func findSlot(size, duration uint64, price, collateral uint256.Int) stowage.Slot {
	var reward uint256.Int
	if duration > 0 {
		reward.Div(&price, uint256.NewInt(duration))
	}
	return stowage.Slot{Ask: stowage.StorageAsk{Slots: 1, SlotSize: size, Duration: duration, Reward: reward, Collateral: collateral}}
}

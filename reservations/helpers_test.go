package reservations_test

import (
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
	a, err := s.CreateAvailability(t.Context(), size, 1000, u(1), u(100))
	require.NoError(t, err)
	return a
}

func requireInvariant(t testing.TB, s *reservations.Store) {
	t.Helper()
	require.NoError(t, s.Verify(t.Context()))
}

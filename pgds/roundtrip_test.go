package pgds_test

import (
	"testing"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/pgds"
	"github.com/stowage/stowage/pgds/internal/pgtest"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// roundTripBudget is what each kind of change of a repo in shared mode on
// pgds may cost in round trips, as the package documentation lists it.
var roundTripBudget = map[string]uint64{
	"AddAvailability":         3,
	"ReserveSlot":             5,
	"Store.PutBlock":          6,
	"Release":                 5,
	"ModifyAvailability":      3,
	"DeleteReservation":       7,
	"Availability (a read)":   1,
	"ReservationForSlot":      4, // one read-only transaction: its reads see one state
	"repo.PutBlock":           3,
	"repo.GetBlock (a read)":  1,
	"repo.Reserve (counters)": 2,
}

// Each kind of change takes at most the round trips documented, counted by
// Datastore.RoundTrips.
func TestRoundTrips_PerChangeAsDocumented(t *testing.T) {
	ctx := t.Context()
	url := pgtest.URL(t)
	ds, err := pgds.Open(ctx, url)
	require.NoError(t, err)
	defer ds.Close()
	r, err := repo.New(ctx, ds, repo.WithShared(), repo.WithQuotaMaxBytes(1<<20))
	require.NoError(t, err)
	defer r.Close()
	s := reservations.New(r)

	got := map[string]uint64{}
	count := func(name string, f func() error) {
		t.Helper()
		before := ds.RoundTrips()
		require.NoError(t, f(), name)
		got[name] = ds.RoundTrips() - before
	}
	var a reservations.Availability
	count("AddAvailability", func() (err error) {
		a, err = s.AddAvailability(ctx, pinnedAvailability(0, 1<<16))
		return err
	})
	req := stowage.RequestID{1}
	var res reservations.Reservation
	count("ReserveSlot", func() (err error) {
		res, err = s.ReserveSlot(ctx, stowage.Slot{RequestID: req,
			Ask: stowage.StorageAsk{Slots: 1, SlotSize: 4096, Duration: 100, Reward: *uint256.NewInt(1)}})
		return err
	})
	count("Store.PutBlock", func() error {
		return s.PutBlock(ctx, res.ID, datastore.NewKey("/b/1"), make([]byte, 1024))
	})
	count("Release", func() error { return s.Release(ctx, res.ID, 1) })
	count("ModifyAvailability", func() error {
		_, err := s.ModifyAvailability(ctx, a.ID, func(a *reservations.Availability) error {
			a.TotalSize++
			a.Size++
			return nil
		})
		return err
	})
	count("Availability (a read)", func() error { _, err := s.Availability(ctx, a.ID); return err })
	count("ReservationForSlot", func() error { _, _, err := s.ReservationForSlot(ctx, req, 0); return err })
	count("DeleteReservation", func() error { return s.DeleteReservation(ctx, res.ID) })
	count("repo.PutBlock", func() error { return r.PutBlock(ctx, datastore.NewKey("/x"), []byte("x")) })
	count("repo.GetBlock (a read)", func() error { _, err := r.GetBlock(ctx, datastore.NewKey("/x")); return err })
	count("repo.Reserve (counters)", func() error { return r.Reserve(ctx, 10) })

	t.Logf("round trips per change: %v", got)
	for name, n := range got {
		assert.LessOrEqual(t, n, roundTripBudget[name], "%s takes more round trips than documented", name)
	}
	assert.Len(t, got, len(roundTripBudget))
}

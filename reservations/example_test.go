package reservations_test

import (
	"context"
	"fmt"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

func Example() {
	ctx := context.Background()
	r, err := repo.New(ctx, dssync.MutexWrap(datastore.NewMapDatastore()), repo.WithQuotaMaxBytes(10_000))
	if err != nil {
		panic(err)
	}
	store := reservations.New(r)

	// Offer 4000 bytes for requests of up to an hour.
	a, err := store.CreateAvailability(ctx, 4000, 3600, *uint256.NewInt(100), *uint256.NewInt(50))
	if err != nil {
		panic(err)
	}
	fmt.Println("repo reserved:", r.Quota().Reserved)

	// A slot of 1500 bytes paying 200 per slot with collateral 10 matches.
	found, ok, err := store.FindAvailability(ctx, 1500, 600, *uint256.NewInt(200), *uint256.NewInt(10))
	if err != nil || !ok {
		panic("no availability")
	}
	res, err := store.CreateReservation(ctx, found.ID, 1500, stowage.RequestID{1}, 0)
	if err != nil {
		panic(err)
	}
	a, _ = store.Availability(ctx, a.ID)
	fmt.Println("availability free:", a.Size, "reservation:", res.Size)

	// Download 1000 bytes: release them, then write the block.
	if err := store.Release(ctx, res.ID, a.ID, 1000); err != nil {
		panic(err)
	}
	if err := r.PutBlock(ctx, datastore.NewKey("block"), make([]byte, 1000)); err != nil {
		panic(err)
	}

	// The sale ends: the 500 unwritten bytes return to the availability.
	if err := store.DeleteReservation(ctx, res.ID, a.ID); err != nil {
		panic(err)
	}
	a, _ = store.Availability(ctx, a.ID)
	q := r.Quota()
	fmt.Println("availability free:", a.Size, "used:", q.Used, "reserved:", q.Reserved)
	fmt.Println("invariant:", store.Verify(ctx) == nil)
	// Output:
	// repo reserved: 4000
	// availability free: 2500 reservation: 1500
	// availability free: 3000 used: 1000 reserved: 3000
	// invariant: true
}

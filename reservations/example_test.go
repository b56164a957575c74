package reservations_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// The life of a slot's bytes: offered, reserved, written, given back.
func Example() {
	ctx := context.Background()
	r, err := repo.New(ctx, dssync.MutexWrap(datastore.NewMapDatastore()), repo.WithQuotaMaxBytes(10_000))
	if err != nil {
		panic(err)
	}
	store := reservations.New(r)

	// Offer 4000 bytes for slots of up to an hour paying at least 100.
	a, err := store.AddAvailability(ctx, reservations.Availability{
		TotalSize: 4000, Duration: 3600, MinPrice: *uint256.NewInt(100), MaxCollateral: *uint256.NewInt(50),
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("repo reserved:", r.Quota().Reserved)

	// A slot of 1500 bytes for 10 minutes paying 1 per second.
	slot := stowage.Slot{RequestID: stowage.RequestID{1}, Index: 0, Ask: stowage.StorageAsk{
		Slots: 1, SlotSize: 1500, Duration: 600, Reward: *uint256.NewInt(1), Collateral: *uint256.NewInt(10),
	}}
	res, err := store.ReserveSlot(ctx, slot)
	if err != nil {
		panic(err)
	}
	a, _ = store.Availability(ctx, a.ID)
	fmt.Println("availability free:", a.Size, "reservation:", res.Size)

	// Download: each block's bytes move from the reservation to the disk.
	for i := range 2 {
		key := datastore.NewKey(fmt.Sprintf("block/%d", i))
		if err := store.PutBlock(ctx, res.ID, key, make([]byte, 500)); err != nil {
			panic(err)
		}
	}
	res, _ = store.Reservation(ctx, res.ID)
	q := r.Quota()
	fmt.Println("reservation size:", res.Size, "used:", res.Used, "repo used:", q.Used, "reserved:", q.Reserved)

	// The sale ends: blocks deleted, the offer whole again.
	if err := store.DeleteReservation(ctx, res.ID); err != nil {
		panic(err)
	}
	a, _ = store.Availability(ctx, a.ID)
	q = r.Quota()
	fmt.Println("availability free:", a.Size, "of", a.TotalSize, "repo used:", q.Used, "reserved:", q.Reserved)
	fmt.Println("books balance:", store.Verify(ctx) == nil)
	// Output:
	// repo reserved: 4000
	// availability free: 2500 reservation: 1500
	// reservation size: 500 used: 1000 repo used: 1000 reserved: 3000
	// availability free: 4000 of 4000 repo used: 0 reserved: 4000
	// books balance: true
}

// ReserveSlot says which term ruled a slot out, so an operator knows what
// to change.
func ExampleNoAvailabilityError() {
	ctx := context.Background()
	r, _ := repo.New(ctx, dssync.MutexWrap(datastore.NewMapDatastore()), repo.WithQuotaMaxBytes(1<<30))
	store := reservations.New(r)
	_, _ = store.AddAvailability(ctx, reservations.Availability{TotalSize: 1 << 20, Duration: 3600})

	_, err := store.ReserveSlot(ctx, stowage.Slot{RequestID: stowage.RequestID{1}, Ask: stowage.StorageAsk{
		Slots: 1, SlotSize: 4 << 20, Duration: 600,
	}, Expiry: time.Unix(1e9, 0)})
	var none *reservations.NoAvailabilityError
	fmt.Println(errors.As(err, &none), errors.Is(err, reservations.ErrNoAvailability))
	fmt.Println(none.Term)
	fmt.Println(none.Detail)
	// Output:
	// true true
	// size
	// the slot needs 4 MiB, the largest free is 1 MiB
}

// A slot's reservation is valid until slot.Ends(): its Expiry plus its
// duration. An availability with Until takes only slots that end by then;
// FindAvailability says which one ReserveSlot would take, and
// CreateReservation checks the same terms on the availability the host
// picks.
func ExampleStore_FindAvailability() {
	ctx := context.Background()
	r, _ := repo.New(ctx, dssync.MutexWrap(datastore.NewMapDatastore()), repo.WithQuotaMaxBytes(1<<30))
	store := reservations.New(r)
	until := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	bounded, _ := store.AddAvailability(ctx, reservations.Availability{TotalSize: 1 << 20, Duration: 24 * 3600, Until: until})

	slot := stowage.Slot{RequestID: stowage.RequestID{1}, Ask: stowage.StorageAsk{Slots: 1, SlotSize: 1 << 10, Duration: 3600},
		Expiry: until.Add(-2 * time.Hour)}
	fmt.Println("the slot ends", slot.Ends().Format(time.RFC3339))
	a, err := store.FindAvailability(ctx, slot)
	fmt.Println(a.ID == bounded.ID, err)

	late := slot
	late.Expiry = until // ends an hour after the availability's Until
	_, err = store.CreateReservation(ctx, bounded.ID, late)
	var none *reservations.NoAvailabilityError
	fmt.Println(errors.As(err, &none), none.Term)

	res, _ := store.ReserveSlot(ctx, slot)
	fmt.Println("valid until", res.ValidUntil.Format(time.RFC3339))
	// Output:
	// the slot ends 2030-05-31T23:00:00Z
	// true <nil>
	// true until
	// valid until 2030-05-31T23:00:00Z
}

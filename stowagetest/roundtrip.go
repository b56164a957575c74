package stowagetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/reservations"
)

// SubtestCountersRoundTrip checks that the repo's counters and blocks read
// back as written: see the package doc.
func SubtestCountersRoundTrip(t *testing.T, open func(t testing.TB) datastore.Batching, opts ...Option) {
	countersRoundTrip(t, apply(opts), open)
}

func countersRoundTrip(t testing.TB, c *config, open func(t testing.TB) datastore.Batching) {
	ctx := t.Context()
	s := c.open(t, open)
	r := c.newRepo(t, s)
	check(t, r.Reserve(ctx, 1000), "reserve")
	check(t, r.Release(ctx, 10), "release")
	check(t, r.PutBlock(ctx, datastore.NewKey("/b/1"), make([]byte, 77)), "put block")
	check(t, r.PutBlock(ctx, datastore.NewKey("/b/1"), make([]byte, 33)), "overwrite block")
	check(t, r.PutBlock(ctx, datastore.NewKey("/b/2"), make([]byte, 5)), "put block")
	check(t, r.DeleteBlock(ctx, datastore.NewKey("/b/2")), "delete block")
	want := r.Quota()
	if want.Used != 33 || want.Reserved != 990 {
		t.Fatalf("quota in memory = %+v, want Used 33, Reserved 990", want)
	}
	fresh := c.newRepo(t, s)
	if got := fresh.Quota(); got != want {
		t.Fatalf("quota read back = %+v, want %+v", got, want)
	}
	check(t, fresh.Verify(ctx), "verify a fresh repo (does GetSize or Query report the stored length?)")
	if _, err := fresh.GetBlock(ctx, datastore.NewKey("/b/2")); !errors.Is(err, datastore.ErrNotFound) {
		t.Fatalf("get of a deleted block: %v, want datastore.ErrNotFound", err)
	}
	if b, err := fresh.GetBlock(ctx, datastore.NewKey("/b/1")); err != nil || len(b) != 33 {
		t.Fatalf("get of an overwritten block: %d bytes, %v; want 33 bytes", len(b), err)
	}
}

// SubtestRecordsRoundTrip checks that every kind of record reads back, in
// order, from a fresh Store: see the package doc.
func SubtestRecordsRoundTrip(t *testing.T, open func(t testing.TB) datastore.Batching, opts ...Option) {
	recordsRoundTrip(t, apply(opts), open)
}

func recordsRoundTrip(t testing.TB, c *config, open func(t testing.TB) datastore.Batching) {
	ctx := t.Context()
	sts := c.open(t, open)
	s := reservations.New(c.newRepo(t, sts))
	one := *uint256.NewInt(1)
	a1, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 5000, Duration: 100, MinPrice: one, MaxCollateral: one})
	check(t, err, "create availability")
	a2, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 7000, Duration: 100, MinPrice: one, MaxCollateral: one})
	check(t, err, "add availability")
	var made []reservations.Reservation
	for i := range 5 {
		a := []reservations.Availability{a1, a2}[i%2]
		res, err := s.CreateReservation(ctx, a.ID, slotOf(stowage.RequestID{byte(i)}, uint64(i), 100))
		check(t, err, "create reservation")
		made = append(made, res)
	}
	slot, err := s.ReserveSlot(ctx, stowage.Slot{RequestID: stowage.RequestID{9}, Index: 3,
		Ask: stowage.StorageAsk{SlotSize: 200, Duration: 10, Reward: one}})
	check(t, err, "reserve slot")
	block := datastore.NewKey("/slot/9/3/0")
	check(t, s.PutBlock(ctx, slot.ID, block, bytes.Repeat([]byte{7}, 150)), "put block of a reservation")
	check(t, s.Release(ctx, made[0].ID, 40), "release")
	check(t, s.PutBlock(ctx, made[1].ID, datastore.NewKey("/r1/0"), make([]byte, 60)), "put block of a reservation")
	check(t, s.DeleteReservation(ctx, made[1].ID), "delete a reservation with a block")
	_, err = s.ModifyAvailability(ctx, a2.ID, func(a *reservations.Availability) error {
		a.TotalSize += 500
		return nil
	})
	check(t, err, "modify availability")

	// A fresh Store reads everything from the datastore.
	fresh := reservations.New(c.newRepo(t, sts))
	check(t, fresh.Verify(ctx), "verify a fresh store")
	as, err := fresh.Availabilities(ctx)
	check(t, err, "list availabilities")
	if len(as) != 2 || as[0].ID != a1.ID || as[1].ID != a2.ID || as[1].TotalSize != 7500 {
		t.Fatalf("availabilities = %v, want [%s %s] in creation order, the second of 7500 bytes (does Query honour Prefix and order?)", as, a1.ID, a2.ID)
	}
	rs, err := fresh.Reservations(ctx)
	check(t, err, "list reservations")
	if len(rs) != 5 {
		t.Fatalf("%d reservations read back, want 5", len(rs))
	}
	of, err := fresh.ReservationsOf(ctx, a1.ID)
	check(t, err, "list reservations of one availability")
	want := 3
	if slot.AvailabilityID == a1.ID {
		want++
	}
	if len(of) != want || of[0].ID != made[0].ID || of[0].Size != 60 {
		t.Fatalf("reservations of %s = %v, want %d, the first %s holding 60 bytes", a1.ID, of, want, made[0].ID)
	}
	got, ok, err := fresh.ReservationForSlot(ctx, stowage.RequestID{9}, 3)
	check(t, err, "reservation for slot")
	if !ok || got.ID != slot.ID || got.Used != 150 || got.Size != 50 {
		t.Fatalf("reservation for slot = %+v, %v; want %s with Used 150, Size 50", got, ok, slot.ID)
	}
	check(t, fresh.DeleteReservation(ctx, slot.ID), "delete a reservation with a block, on a fresh store")
	if _, err := c.newRepo(t, sts).GetBlock(ctx, block); !errors.Is(err, datastore.ErrNotFound) {
		t.Fatalf("block of a deleted reservation: %v, want datastore.ErrNotFound", err)
	}
	check(t, reservations.New(c.newRepo(t, sts)).Verify(ctx), "verify")
}

// SubtestConcurrentReservationsNeverOvercommit checks that concurrent
// reservations from one availability take no more than it offers.
func SubtestConcurrentReservationsNeverOvercommit(t *testing.T, open func(t testing.TB) datastore.Batching, opts ...Option) {
	concurrentReservations(t, apply(opts), open)
}

func concurrentReservations(t testing.TB, c *config, open func(t testing.TB) datastore.Batching) {
	s := reservations.New(c.newRepo(t, c.open(t, open)))
	a, err := s.AddAvailability(t.Context(), reservations.Availability{TotalSize: 1000, Duration: 100, MinPrice: *uint256.NewInt(1), MaxCollateral: *uint256.NewInt(1)})
	check(t, err, "create availability")
	var ok atomic.Int64
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			_, err := s.CreateReservation(context.Background(), a.ID, slotOf(stowage.RequestID{}, uint64(i), 30))
			if err == nil {
				ok.Add(1)
			} else if !errors.Is(err, reservations.ErrNoAvailability) {
				t.Errorf("create reservation: %v", err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1000/30 {
		t.Fatalf("%d reservations of 30 bytes made on 1000 bytes, want %d", ok.Load(), 1000/30)
	}
	check(t, s.Verify(t.Context()), "verify")
}

package reservations_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/reservations"
)

var slotEnd = time.Date(2031, 6, 1, 0, 0, 0, 0, time.UTC)

// termCase is an availability failing exactly one term for the slot of
// 40 bytes made by termSlot.
type termCase struct {
	term   reservations.Term
	avail  reservations.Availability
	slot   func(*stowage.Slot)
	detail string
}

func termSlot() stowage.Slot {
	s := slotOf(1, 0, 40)
	s.Expiry = slotEnd.Add(-100 * time.Second) // it lasts 100 s: Ends() is slotEnd
	return s
}

// generous is an availability of size bytes taking termSlot.
func generous(size uint64) reservations.Availability {
	return reservations.Availability{TotalSize: size, Duration: 100, MinPrice: u(100), MaxCollateral: u(5)}
}

func termCases() []termCase {
	with := func(size uint64, f func(*reservations.Availability)) reservations.Availability {
		a := generous(size)
		f(&a)
		return a
	}
	return []termCase{
		{term: reservations.TermDisabled, avail: with(50, func(a *reservations.Availability) { a.Disabled = true }),
			detail: "disabled"},
		{term: reservations.TermUntil, avail: with(50, func(a *reservations.Availability) { a.Until = slotEnd.Add(-time.Hour) }),
			detail: "the slot's contract runs to 2031-06-01T00:00:00Z"},
		{term: reservations.TermUntil, avail: with(50, func(a *reservations.Availability) { a.Until = slotEnd }),
			slot: func(s *stowage.Slot) { s.Expiry = time.Time{} }, detail: "runs to no end"},
		{term: reservations.TermSize, avail: generous(30), detail: "the slot needs 40 B, the largest free is 30 B"},
		{term: reservations.TermDuration, avail: with(50, func(a *reservations.Availability) { a.Duration = 99 }),
			detail: "the slot lasts 1m40s"},
		{term: reservations.TermPrice, avail: with(50, func(a *reservations.Availability) { a.MinPrice = u(101) }),
			detail: "the slot pays 100"},
		{term: reservations.TermCollateral, avail: with(50, func(a *reservations.Availability) { a.MaxCollateral = u(4) }),
			detail: "the slot asks 5 collateral"},
		{term: reservations.TermBudget, avail: with(50, func(a *reservations.Availability) { a.TotalCollateral = u(4) }),
			detail: "has 4 left of its budget"},
	}
}

// An availability failing one term is skipped, though best fit would
// pick it.
func TestReserveSlot_SkipsAvailabilityFailingATerm(t *testing.T) {
	for _, c := range termCases() {
		t.Run(string(c.term), func(t *testing.T) {
			s, _, _ := newStore(t, 1000)
			bad, err := s.AddAvailability(t.Context(), c.avail)
			require.NoError(t, err)
			fit, err := s.AddAvailability(t.Context(), generous(100))
			require.NoError(t, err)
			slot := termSlot()
			if c.slot != nil {
				c.slot(&slot)
			}
			res, err := s.ReserveSlot(t.Context(), slot)
			require.NoError(t, err)
			assert.Equal(t, fit.ID, res.AvailabilityID)
			assert.Equal(t, bad, availability(t, s, bad.ID), "untouched")
			requireInvariant(t, s)
		})
	}
}

// With only the failing availability, the error names the term and the
// figures.
func TestReserveSlot_NoAvailabilityNamesTheTerm(t *testing.T) {
	for _, c := range termCases() {
		t.Run(string(c.term), func(t *testing.T) {
			s, r, _ := newStore(t, 1000)
			_, err := s.AddAvailability(t.Context(), c.avail)
			require.NoError(t, err)
			slot := termSlot()
			if c.slot != nil {
				c.slot(&slot)
			}
			before := r.Quota()
			_, err = s.ReserveSlot(t.Context(), slot)
			require.ErrorIs(t, err, reservations.ErrNoAvailability)
			var nae *reservations.NoAvailabilityError
			require.ErrorAs(t, err, &nae)
			assert.Equal(t, c.term, nae.Term)
			assert.Contains(t, err.Error(), string(c.term)+": ")
			assert.Contains(t, nae.Detail, c.detail)
			assert.Equal(t, before, r.Quota())
			_, ok, err := s.ReservationForSlot(t.Context(), slot.RequestID, slot.Index)
			require.NoError(t, err)
			assert.False(t, ok)
		})
	}
}

func TestReserveSlot_NoAvailabilityMessages(t *testing.T) {
	cases := []struct {
		name   string
		avails []reservations.Availability
		size   uint64
		term   reservations.Term
		msg    string
	}{
		{name: "none", term: reservations.TermNone, size: 1, msg: "none: there is no availability"},
		{name: "size", avails: []reservations.Availability{generous(1 << 20), generous(1 << 10)}, size: 4 << 20,
			term: reservations.TermSize, msg: "size: the slot needs 4 MiB, the largest free is 1 MiB"},
		{name: "closest fails fewest terms", size: 40, term: reservations.TermCollateral, avails: []reservations.Availability{
			{TotalSize: 100, Duration: 1, MinPrice: u(1000), MaxCollateral: u(5)}, // duration, price
			{TotalSize: 100, Duration: 100, MinPrice: u(1), MaxCollateral: u(1)},  // collateral
		}, msg: "collateral: the slot asks 5 collateral"},
		{name: "size before duration", size: 40, term: reservations.TermSize, avails: []reservations.Availability{
			{TotalSize: 10, Duration: 1, MinPrice: u(1), MaxCollateral: u(5)},
		}, msg: "size: the slot needs 40 B, the largest free is 10 B"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _, _ := newStore(t, 1<<30)
			for _, a := range c.avails {
				_, err := s.AddAvailability(t.Context(), a)
				require.NoError(t, err)
			}
			_, err := s.ReserveSlot(t.Context(), slotOf(1, 0, c.size))
			var nae *reservations.NoAvailabilityError
			require.ErrorAs(t, err, &nae)
			assert.Equal(t, c.term, nae.Term)
			assert.Contains(t, err.Error(), c.msg)
		})
	}
}

// Terms exactly met are met.
func TestReserveSlot_TakesTermsMetExactly(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	a, err := s.AddAvailability(t.Context(), reservations.Availability{
		TotalSize: 40, Duration: 100, MinPrice: u(100), MaxCollateral: u(5), Until: slotEnd, TotalCollateral: u(5),
	})
	require.NoError(t, err)
	res, err := s.ReserveSlot(t.Context(), termSlot())
	require.NoError(t, err)
	assert.Equal(t, a.ID, res.AvailabilityID)
	got := availability(t, s, a.ID)
	assert.Equal(t, uint64(0), got.Size)
	assert.True(t, got.FreeCollateral.IsZero())
	requireInvariant(t, s)
}

func TestReserveSlot_PicksBestFitThenOldest(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	big := mustAvailability(t, s, 100)
	older := mustAvailability(t, s, 50)
	newer := mustAvailability(t, s, 50)
	mustAvailability(t, s, 30) // too small

	var got []reservations.AvailabilityID
	for i := range 3 {
		res, err := s.ReserveSlot(t.Context(), slotOf(1, uint64(i), 40))
		require.NoError(t, err)
		got = append(got, res.AvailabilityID)
	}
	assert.Equal(t, []reservations.AvailabilityID{older.ID, newer.ID, big.ID}, got)
	// The same rule as FindAvailability.
	found, err := s.FindAvailability(t.Context(), findSlot(40, 100, u(100), u(5)))
	require.NoError(t, err)
	assert.Equal(t, big.ID, found.ID)
	requireInvariant(t, s)
}

func TestReserveSlot_ReservationFields(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	a, err := s.AddAvailability(t.Context(), reservations.Availability{
		TotalSize: 100, Duration: 100, MinPrice: u(1), MaxCollateral: u(10), TotalCollateral: u(12),
	})
	require.NoError(t, err)
	slot := slotOf(3, 7, 40)
	slot.Expiry = slotEnd.Add(-100 * time.Second) // it lasts 100 s
	res, err := s.ReserveSlot(t.Context(), slot)
	require.NoError(t, err)
	assert.Equal(t, a.ID, res.AvailabilityID)
	assert.Equal(t, uint64(40), res.Size)
	assert.Equal(t, uint64(40), res.SlotSize)
	assert.Equal(t, uint64(0), res.Used)
	assert.Equal(t, u(5), res.Collateral, "taken from the budget")
	assert.True(t, slotEnd.Equal(res.ValidUntil))
	assert.Equal(t, reqID(3), res.RequestID)
	assert.Equal(t, uint64(7), res.SlotIndex)

	got := availability(t, s, a.ID)
	assert.Equal(t, uint64(60), got.Size)
	assert.Equal(t, uint64(100), got.TotalSize)
	assert.Equal(t, u(7), got.FreeCollateral)
	assert.Equal(t, uint64(100), r.Quota().Reserved, "bytes move within Reserved")

	stored, err := s.Reservation(t.Context(), res.ID)
	require.NoError(t, err)
	assert.True(t, slotEnd.Equal(stored.ValidUntil))
	stored.ValidUntil = res.ValidUntil
	assert.Equal(t, res, stored)
	bySlot, ok, err := s.ReservationForSlot(t.Context(), reqID(3), 7)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, res.ID, bySlot.ID)
	requireInvariant(t, s)
}

func TestReserveSlot_TakesCollateralFromBudget(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	a, err := s.AddAvailability(t.Context(), reservations.Availability{
		TotalSize: 100, Duration: 100, MinPrice: u(1), MaxCollateral: u(10), TotalCollateral: u(12),
	})
	require.NoError(t, err)
	first, err := s.ReserveSlot(t.Context(), slotOf(1, 0, 10))
	require.NoError(t, err)
	_, err = s.ReserveSlot(t.Context(), slotOf(1, 1, 10))
	require.NoError(t, err)
	assert.Equal(t, u(2), availability(t, s, a.ID).FreeCollateral)
	_, err = s.ReserveSlot(t.Context(), slotOf(1, 2, 10))
	var nae *reservations.NoAvailabilityError
	require.ErrorAs(t, err, &nae)
	assert.Equal(t, reservations.TermBudget, nae.Term)

	require.NoError(t, s.DeleteReservation(t.Context(), first.ID))
	assert.Equal(t, u(7), availability(t, s, a.ID).FreeCollateral, "collateral comes back")
	_, err = s.ReserveSlot(t.Context(), slotOf(1, 2, 10))
	require.NoError(t, err)
	requireInvariant(t, s)
}

func TestReserveSlot_SlotAlreadyReserved(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	_, err := s.ReserveSlot(t.Context(), slotOf(1, 0, 10))
	require.NoError(t, err)
	_, err = s.CreateReservation(t.Context(), a.ID, anySlot(reqID(2), 0, 10))
	require.NoError(t, err)

	_, err = s.ReserveSlot(t.Context(), slotOf(1, 0, 10))
	assert.ErrorIs(t, err, reservations.ErrSlotReserved)
	_, err = s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 10))
	assert.ErrorIs(t, err, reservations.ErrSlotReserved, "a slot taken by ReserveSlot")
	_, err = s.ReserveSlot(t.Context(), slotOf(2, 0, 10))
	assert.ErrorIs(t, err, reservations.ErrSlotReserved, "a slot taken by CreateReservation")
	_, err = s.ReserveSlot(t.Context(), slotOf(1, 1, 10))
	assert.NoError(t, err, "another index of the request is free")

	assert.Equal(t, uint64(70), availability(t, s, a.ID).Size)
	assert.Equal(t, uint64(100), r.Quota().Reserved)
	requireInvariant(t, s)
}

// Hundreds of goroutines reserve slots of one availability: exactly as
// many succeed as fit.
func TestReserveSlot_ConcurrentNeverOvercommits(t *testing.T) {
	s, _, _ := newStore(t, 1<<20)
	const slot, fits, n = 10, 37, 200
	a := mustAvailability(t, s, slot*fits+slot-1)
	var wg sync.WaitGroup
	var ok, none atomic.Int64
	for i := range n {
		wg.Go(func() {
			_, err := s.ReserveSlot(context.Background(), slotOf(1, uint64(i), slot))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, reservations.ErrNoAvailability):
				none.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(fits), ok.Load())
	assert.Equal(t, int64(n-fits), none.Load())
	assert.Equal(t, uint64(slot-1), availability(t, s, a.ID).Size)
	rs, err := s.ReservationsOf(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Len(t, rs, fits)
	requireInvariant(t, s)
}

// Many goroutines reserve the same slot: one wins.
func TestReserveSlot_ConcurrentOneSlotOneWinner(t *testing.T) {
	s, _, _ := newStore(t, 1<<20)
	a := mustAvailability(t, s, 10_000)
	const n = 50
	var wg sync.WaitGroup
	var ok, taken atomic.Int64
	for range n {
		wg.Go(func() {
			_, err := s.ReserveSlot(context.Background(), slotOf(9, 3, 10))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, reservations.ErrSlotReserved):
				taken.Add(1)
			default:
				t.Errorf("unexpected error: %v", err)
			}
		})
	}
	wg.Wait()
	assert.Equal(t, int64(1), ok.Load())
	assert.Equal(t, int64(n-1), taken.Load())
	assert.Equal(t, uint64(9990), availability(t, s, a.ID).Size)
	rs, err := s.ReservationsOf(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Len(t, rs, 1)
	requireInvariant(t, s)
}

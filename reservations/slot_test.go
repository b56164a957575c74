package reservations_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/reservations"
)

// CreateReservation checks every term exactly as ReserveSlot does, on the
// availability it is given: a failing one is named in a
// *NoAvailabilityError and nothing is written.
func TestCreateReservation_ChecksEveryTermAsReserveSlot(t *testing.T) {
	for _, c := range termCases() {
		t.Run(string(c.term), func(t *testing.T) {
			s, r, ds := newStore(t, 1000)
			bad, err := s.AddAvailability(t.Context(), c.avail)
			require.NoError(t, err)
			fit, err := s.AddAvailability(t.Context(), generous(100))
			require.NoError(t, err)
			slot := termSlot()
			if c.slot != nil {
				c.slot(&slot)
			}
			before, quota := snapshot(t, ds), r.Quota()
			_, err = s.CreateReservation(t.Context(), bad.ID, slot)
			var none *reservations.NoAvailabilityError
			require.ErrorAs(t, err, &none)
			assert.ErrorIs(t, err, reservations.ErrNoAvailability)
			assert.Equal(t, c.term, none.Term)
			assert.Contains(t, none.Detail, c.detail)
			assert.Equal(t, before, snapshot(t, ds), "nothing written")

			res, err := s.CreateReservation(t.Context(), fit.ID, slot)
			require.NoError(t, err)
			assert.Equal(t, fit.ID, res.AvailabilityID)
			assert.True(t, slot.Ends().Equal(res.ValidUntil), "ValidUntil is slot.Ends()")
			assert.Equal(t, quota, r.Quota(), "the bytes move within Reserved")
			requireInvariant(t, s)
		})
	}
}

func TestCreateReservation_UnknownTakenOrEmpty(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	_, err := s.CreateReservation(t.Context(), reservations.AvailabilityID{1}, anySlot(reqID(1), 0, 10))
	assert.ErrorIs(t, err, reservations.ErrNotFound)
	_, err = s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 10))
	require.NoError(t, err)
	_, err = s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 10))
	assert.ErrorIs(t, err, reservations.ErrSlotReserved)
	_, err = s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 1, 0))
	assert.ErrorIs(t, err, reservations.ErrInvalidSize)
	assert.Equal(t, uint64(90), availability(t, s, a.ID).Size)
	requireInvariant(t, s)
}

// FindAvailability answers what ReserveSlot then takes, skipping an
// availability that fails a term, and answers as ReserveSlot would when
// nothing fits.
func TestFindAvailability_IsWhatReserveSlotTakes(t *testing.T) {
	for _, c := range termCases() {
		t.Run(string(c.term), func(t *testing.T) {
			s, _, _ := newStore(t, 1000)
			_, err := s.AddAvailability(t.Context(), c.avail)
			require.NoError(t, err)
			slot := termSlot()
			if c.slot != nil {
				c.slot(&slot)
			}
			_, err = s.FindAvailability(t.Context(), slot)
			var none *reservations.NoAvailabilityError
			require.ErrorAs(t, err, &none)
			assert.Equal(t, c.term, none.Term)

			fit, err := s.AddAvailability(t.Context(), generous(100))
			require.NoError(t, err)
			found, err := s.FindAvailability(t.Context(), slot)
			require.NoError(t, err)
			assert.Equal(t, fit, found)
			res, err := s.ReserveSlot(t.Context(), slot)
			require.NoError(t, err)
			assert.Equal(t, found.ID, res.AvailabilityID)
		})
	}
}

// An availability with Until takes a slot whose contract ends by then:
// FindAvailability and ReserveSlot check Until against slot.Ends().
func TestFindAvailability_TakesSlotsEndingByUntil(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	bounded := generous(100)
	bounded.Until = slotEnd
	a, err := s.AddAvailability(t.Context(), bounded)
	require.NoError(t, err)

	slot := termSlot() // ends at slotEnd exactly
	found, err := s.FindAvailability(t.Context(), slot)
	require.NoError(t, err)
	assert.Equal(t, a.ID, found.ID)
	assert.True(t, slotEnd.Equal(found.Until))

	later := slot
	later.Expiry = later.Expiry.Add(time.Second)
	_, err = s.FindAvailability(t.Context(), later)
	var none *reservations.NoAvailabilityError
	require.ErrorAs(t, err, &none)
	assert.Equal(t, reservations.TermUntil, none.Term)

	never := slot
	never.Expiry = time.Time{}
	_, err = s.FindAvailability(t.Context(), never)
	require.ErrorAs(t, err, &none)
	assert.Equal(t, reservations.TermUntil, none.Term, "a slot without Expiry never ends")

	res, err := s.ReserveSlot(t.Context(), slot)
	require.NoError(t, err)
	assert.Equal(t, a.ID, res.AvailabilityID)
	assert.True(t, slotEnd.Equal(res.ValidUntil))
}

func TestFindAvailability_SlotReservedOrEmpty(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	mustAvailability(t, s, 100)
	_, err := s.ReserveSlot(t.Context(), anySlot(reqID(1), 0, 10))
	require.NoError(t, err)
	_, err = s.FindAvailability(t.Context(), anySlot(reqID(1), 0, 10))
	assert.ErrorIs(t, err, reservations.ErrSlotReserved)
	_, err = s.FindAvailability(t.Context(), anySlot(reqID(1), 1, 0))
	assert.ErrorIs(t, err, reservations.ErrInvalidSize)
	_, err = s.FindAvailability(t.Context(), anySlot(reqID(1), 1, 10))
	assert.NoError(t, err)
}

// A reservation is valid until its slot's Ends(): Expiry + Ask.Duration.
// A slot without Expiry gives a reservation that never expires, which
// ReclaimExpired never takes.
func TestReserveSlot_ValidUntilIsSlotEnds(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	mustAvailability(t, s, 100)
	expiry := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	slot := stowage.Slot{RequestID: reqID(1), Ask: stowage.StorageAsk{Slots: 2, SlotSize: 10, Duration: 600, Reward: u(1)}, Expiry: expiry}
	timed, err := s.ReserveSlot(t.Context(), slot)
	require.NoError(t, err)
	assert.True(t, expiry.Add(10*time.Minute).Equal(timed.ValidUntil), "%s", timed.ValidUntil)

	slot.Index, slot.Expiry = 1, time.Time{}
	never, err := s.ReserveSlot(t.Context(), slot)
	require.NoError(t, err)
	assert.True(t, never.ValidUntil.IsZero())

	n, err := s.ReclaimExpired(t.Context(), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	_, err = s.Reservation(t.Context(), timed.ID)
	assert.ErrorIs(t, err, reservations.ErrNotFound)
	got, err := s.Reservation(t.Context(), never.ID)
	require.NoError(t, err, "a reservation without ValidUntil is never reclaimed")
	assert.Equal(t, never, got)
	requireInvariant(t, s)
}

// Until may not move before the end of a reservation the availability
// holds, one that never ends included.
func TestModifyAvailability_UntilBeforeAReservationsEndIsRefused(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	a, err := s.AddAvailability(t.Context(), generous(100))
	require.NoError(t, err)
	_, err = s.ReserveSlot(t.Context(), termSlot()) // ends at slotEnd
	require.NoError(t, err)
	until := func(u time.Time) error {
		_, err := s.ModifyAvailability(t.Context(), a.ID, func(a *reservations.Availability) error {
			a.Until = u
			return nil
		})
		return err
	}
	assert.ErrorIs(t, until(slotEnd.Add(-time.Second)), reservations.ErrUntilTooEarly)
	assert.True(t, availability(t, s, a.ID).Until.IsZero(), "unchanged")
	require.NoError(t, until(slotEnd))
	require.NoError(t, until(time.Time{}))

	never := termSlot()
	never.Index, never.Expiry = 1, time.Time{}
	_, err = s.ReserveSlot(t.Context(), never)
	require.NoError(t, err)
	assert.ErrorIs(t, until(slotEnd.Add(24*time.Hour)), reservations.ErrUntilTooEarly, "a reservation that never ends")
	requireInvariant(t, s)
}

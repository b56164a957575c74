package reservations_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

func TestAvailability_JSONRoundTrip(t *testing.T) {
	a := reservations.Availability{
		ID: reservations.AvailabilityID(uuid.Must(uuid.NewV7())), Size: 1 << 40, Duration: 3600,
		MinPrice: u(12345678901234567890), MaxCollateral: u(7),
	}
	a.MinPrice.Lsh(&a.MinPrice, 100) // bigger than any uint64
	b, err := json.Marshal(a)
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(b, &raw))
	assert.Equal(t, a.MinPrice.Dec(), raw["minPrice"], "amounts are decimal strings")
	assert.Equal(t, "7", raw["maxCollateral"])
	assert.Equal(t, a.ID.String(), raw["id"])
	assert.EqualValues(t, 1<<40, raw["size"], "sizes are numbers")

	var back reservations.Availability
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, a, back)
}

func TestReservation_JSONRoundTrip(t *testing.T) {
	r := reservations.Reservation{
		ID:             reservations.ReservationID(uuid.Must(uuid.NewV7())),
		AvailabilityID: reservations.AvailabilityID(uuid.Must(uuid.NewV7())),
		Size:           99, RequestID: reqID(0xab), SlotIndex: 3,
	}
	b, err := json.Marshal(r)
	require.NoError(t, err)
	var raw map[string]any
	require.NoError(t, json.Unmarshal(b, &raw))
	assert.Equal(t, r.RequestID.String(), raw["requestId"])
	assert.Equal(t, r.AvailabilityID.String(), raw["availabilityId"])
	assert.EqualValues(t, 3, raw["slotIndex"])

	var back reservations.Reservation
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, r, back)
}

func TestIDs_ParseRoundTrip(t *testing.T) {
	a := reservations.AvailabilityID(uuid.Must(uuid.NewV7()))
	back, err := reservations.ParseAvailabilityID(a.String())
	require.NoError(t, err)
	assert.Equal(t, a, back)
	_, err = reservations.ParseReservationID("not-a-uuid")
	assert.ErrorIs(t, err, reservations.ErrInvalidID)
}

func TestAddAvailability_StoresRecordAtDocumentedKey(t *testing.T) {
	s, _, ds := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	b, err := ds.Get(t.Context(), datastore.NewKey("/meta/sales/reservations/"+a.ID.String()))
	require.NoError(t, err)
	var stored reservations.Availability
	require.NoError(t, json.Unmarshal(b, &stored))
	assert.Equal(t, a, stored)
	assert.Equal(t, datastore.NewKey("/meta/sales/reservations/"+a.ID.String()), reservations.KeyOf(a))
}

func TestAddAvailability_UniqueTimeOrderedIDs(t *testing.T) {
	s, _, _ := newStore(t, 1<<20)
	var ids []reservations.AvailabilityID
	for range 50 {
		ids = append(ids, mustAvailability(t, s, 1).ID)
	}
	seen := map[reservations.AvailabilityID]bool{}
	for _, id := range ids {
		assert.False(t, seen[id], "duplicate id %s", id)
		seen[id] = true
		assert.Equal(t, uuid.Version(7), uuid.UUID(id).Version())
	}
	assert.True(t, slices.IsSortedFunc(ids, func(a, b reservations.AvailabilityID) int {
		return slices.Compare(a[:], b[:])
	}), "ids are in creation order")
}

func TestAddAvailability_ReservesInRepo(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	mustAvailability(t, s, 300)
	assert.Equal(t, uint64(300), r.Quota().Reserved)
	assert.Equal(t, uint64(700), r.Available())
	requireInvariant(t, s)
}

func TestAddAvailability_QuotaTooSmall(t *testing.T) {
	s, r, ds := newStore(t, 100)
	_, err := s.AddAvailability(t.Context(), reservations.Availability{TotalSize: 101, Duration: 1, MinPrice: u(1), MaxCollateral: u(1)})
	require.ErrorIs(t, err, repo.ErrQuotaNotEnough)
	require.ErrorIs(t, err, repo.ErrQuotaNotEnough)
	assert.Equal(t, uint64(0), r.Quota().Reserved)
	as, err := s.Availabilities(t.Context())
	require.NoError(t, err)
	assert.Empty(t, as, "nothing is written")
	n, err := ds.Query(t.Context(), queryAll())
	require.NoError(t, err)
	entries, err := n.Rest()
	require.NoError(t, err)
	assert.Empty(t, entries)
}

func TestAddAvailability_ZeroSize(t *testing.T) {
	s, _, _ := newStore(t, 100)
	_, err := s.AddAvailability(t.Context(), reservations.Availability{TotalSize: 0, Duration: 1, MinPrice: u(1), MaxCollateral: u(1)})
	assert.ErrorIs(t, err, reservations.ErrInvalidSize)
}

func TestAddAvailability_CallsHook(t *testing.T) {
	got := make(chan reservations.Availability, 1)
	s, _, _ := newStore(t, 1000, reservations.WithOnAvailabilityAdded(func(_ context.Context, a reservations.Availability) {
		got <- a
	}))
	a := mustAvailability(t, s, 10)
	assert.Equal(t, a, <-got)
}

func TestAddAvailability_HookPanicDoesNotCorruptState(t *testing.T) {
	var logs bytes.Buffer
	s, _, _ := newStore(t, 1000, reservations.WithOnAvailabilityAdded(func(context.Context, reservations.Availability) {
		panic("hook exploded")
	}), reservations.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	a, err := s.AddAvailability(t.Context(), reservations.Availability{TotalSize: 10, Duration: 1, MinPrice: u(1), MaxCollateral: u(1)})
	require.NoError(t, err)
	stored, err := s.Availability(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, a, stored)
	requireInvariant(t, s)
	assert.Contains(t, logs.String(), "hook exploded", "the panic is logged")
}

func TestModifyAvailability_ReplaceChangesTermsAndSize(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	a := mustAvailability(t, s, 100)

	a.Duration, a.MinPrice, a.MaxCollateral, a.Size = 50, u(9), u(99), 250
	require.NoError(t, replaceAvailability(t.Context(), s, a))
	got, err := s.Availability(t.Context(), a.ID)
	require.NoError(t, err)
	a.TotalSize = 250 // moves with Size
	assert.Equal(t, a, got)
	assert.Equal(t, uint64(250), r.Quota().Reserved, "growing reserves the difference")

	a.Size = 40
	require.NoError(t, replaceAvailability(t.Context(), s, a))
	assert.Equal(t, uint64(40), r.Quota().Reserved, "shrinking releases the difference")
	requireInvariant(t, s)
}

func TestModifyAvailability_ReplaceGrowBeyondQuota(t *testing.T) {
	s, r, _ := newStore(t, 100)
	a := mustAvailability(t, s, 60)
	a.Size, a.Duration = 101, 5
	err := replaceAvailability(t.Context(), s, a)
	require.ErrorIs(t, err, repo.ErrQuotaNotEnough)
	require.ErrorIs(t, err, repo.ErrQuotaNotEnough)
	got, err := s.Availability(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(60), got.Size)
	assert.Equal(t, uint64(1000), got.Duration, "a failed update changes nothing")
	assert.Equal(t, uint64(60), r.Quota().Reserved)
}

func TestModifyAvailability_ReplaceUnknown(t *testing.T) {
	s, _, _ := newStore(t, 100)
	err := replaceAvailability(t.Context(), s, reservations.Availability{ID: reservations.AvailabilityID(uuid.New()), Size: 1})
	assert.ErrorIs(t, err, reservations.ErrNotFound)
}

func TestDeleteAvailability_ReturnsBytesToQuota(t *testing.T) {
	s, r, _ := newStore(t, 100)
	a := mustAvailability(t, s, 60)
	require.NoError(t, s.DeleteAvailability(t.Context(), a.ID))
	assert.Equal(t, uint64(0), r.Quota().Reserved)
	_, err := s.Availability(t.Context(), a.ID)
	assert.ErrorIs(t, err, reservations.ErrNotFound)
	assert.ErrorIs(t, s.DeleteAvailability(t.Context(), a.ID), reservations.ErrNotFound)
}

func TestDeleteAvailability_RefusedWithReservations(t *testing.T) {
	s, r, _ := newStore(t, 100)
	a := mustAvailability(t, s, 60)
	res, err := s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 10))
	require.NoError(t, err)
	require.ErrorIs(t, s.DeleteAvailability(t.Context(), a.ID), reservations.ErrHasReservations)
	assert.Equal(t, uint64(60), r.Quota().Reserved)

	require.NoError(t, s.DeleteReservation(t.Context(), res.ID))
	require.NoError(t, s.DeleteAvailability(t.Context(), a.ID))
	assert.Equal(t, uint64(0), r.Quota().Reserved)
}

func TestCreateReservation_ShrinksAvailability(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	res, err := s.CreateReservation(t.Context(), a.ID, anySlot(reqID(7), 2, 30))
	require.NoError(t, err)
	assert.Equal(t, a.ID, res.AvailabilityID)
	assert.Equal(t, uint64(30), res.Size)
	assert.Equal(t, reqID(7), res.RequestID)
	assert.Equal(t, uint64(2), res.SlotIndex)

	got, err := s.Availability(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(70), got.Size)
	assert.Equal(t, uint64(100), r.Quota().Reserved, "bytes move, the quota does not change")

	stored, err := s.Reservation(t.Context(), res.ID)
	require.NoError(t, err)
	assert.Equal(t, res, stored)
	requireInvariant(t, s)
}

func TestCreateReservation_TooLarge(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	_, err := s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 101))
	var none *reservations.NoAvailabilityError
	require.ErrorAs(t, err, &none)
	assert.Equal(t, reservations.TermSize, none.Term)
	got, err := s.Availability(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(100), got.Size)

	// Exactly the free size fits.
	_, err = s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 100))
	require.NoError(t, err)
}

func TestCreateReservation_UnknownAvailability(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	_, err := s.CreateReservation(t.Context(), reservations.AvailabilityID(uuid.New()), anySlot(reqID(1), 0, 1))
	assert.ErrorIs(t, err, reservations.ErrNotFound)
}

func TestCreateReservation_ZeroSize(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	_, err := s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 0))
	assert.ErrorIs(t, err, reservations.ErrInvalidSize)
}

func TestRelease_Partial(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	res, err := s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 40))
	require.NoError(t, err)
	require.NoError(t, s.Release(t.Context(), res.ID, 15))
	got, err := s.Reservation(t.Context(), res.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(25), got.Size)
	assert.Equal(t, uint64(85), r.Quota().Reserved)
	assert.True(t, r.HasAvailable(915), "released bytes are free for the blocks")
	requireInvariant(t, s)
}

func TestRelease_TooMuch(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	res, err := s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 40))
	require.NoError(t, err)
	require.ErrorIs(t, s.Release(t.Context(), res.ID, 41), reservations.ErrBytesOutOfBounds)
	got, err := s.Reservation(t.Context(), res.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(40), got.Size)
	assert.Equal(t, uint64(100), r.Quota().Reserved)
}

func TestRelease_UnknownReservation(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	mustAvailability(t, s, 100)
	err := s.Release(t.Context(), reservations.ReservationID(uuid.New()), 1)
	assert.ErrorIs(t, err, reservations.ErrNotFound)
}

func TestDeleteReservation_ReturnsBytesToAvailability(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	res, err := s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 40))
	require.NoError(t, err)
	require.NoError(t, s.Release(t.Context(), res.ID, 10))
	require.NoError(t, s.DeleteReservation(t.Context(), res.ID))

	got, err := s.Availability(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(90), got.Size, "the 30 unwritten bytes return")
	assert.Equal(t, uint64(90), r.Quota().Reserved)
	_, err = s.Reservation(t.Context(), res.ID)
	assert.ErrorIs(t, err, reservations.ErrNotFound)
	requireInvariant(t, s)

	require.NoError(t, s.DeleteReservation(t.Context(), res.ID), "deleting again succeeds")
	requireInvariant(t, s)
}

func TestList_AllAvailabilitiesAndReservations(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	a1 := mustAvailability(t, s, 100)
	a2 := mustAvailability(t, s, 200)
	r1, err := s.CreateReservation(t.Context(), a1.ID, anySlot(reqID(1), 0, 10))
	require.NoError(t, err)
	r2, err := s.CreateReservation(t.Context(), a2.ID, anySlot(reqID(1), 1, 20))
	require.NoError(t, err)
	r3, err := s.CreateReservation(t.Context(), a1.ID, anySlot(reqID(2), 0, 30))
	require.NoError(t, err)

	as, err := s.Availabilities(t.Context())
	require.NoError(t, err)
	require.Len(t, as, 2)
	assert.Equal(t, []reservations.AvailabilityID{a1.ID, a2.ID}, []reservations.AvailabilityID{as[0].ID, as[1].ID})
	assert.Equal(t, uint64(60), as[0].Size)

	rs, err := s.Reservations(t.Context())
	require.NoError(t, err)
	assert.Equal(t, []reservations.Reservation{r1, r2, r3}, rs)

	of, err := s.ReservationsOf(t.Context(), a1.ID)
	require.NoError(t, err)
	assert.Equal(t, []reservations.Reservation{r1, r3}, of)

	got, err := s.Availability(t.Context(), a2.ID)
	require.NoError(t, err)
	assert.Equal(t, a2.ID, got.ID)
	_, err = s.Availability(t.Context(), reservations.AvailabilityID(uuid.New()))
	assert.ErrorIs(t, err, reservations.ErrNotFound)
}

func TestFindAvailability_Matches(t *testing.T) {
	s, _, _ := newStore(t, 10_000)
	a, err := s.AddAvailability(t.Context(), reservations.Availability{TotalSize: 100, Duration: 60, MinPrice: u(600), MaxCollateral: u(5)})
	require.NoError(t, err)

	cases := []struct {
		name              string
		size, duration    uint64
		price, collateral uint64
		term              reservations.Term // none: found
	}{
		{"exact limits", 100, 60, 600, 5, ""},
		{"well inside", 1, 1, 1000, 0, ""},
		{"too big", 101, 60, 600, 5, reservations.TermSize},
		{"too long", 100, 61, 610, 5, reservations.TermDuration},
		{"pays too little", 100, 60, 540, 5, reservations.TermPrice},
		{"too much collateral", 100, 60, 600, 6, reservations.TermCollateral},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := s.FindAvailability(t.Context(), findSlot(c.size, c.duration, u(c.price), u(c.collateral)))
			if c.term == "" {
				require.NoError(t, err)
				assert.Equal(t, a, got)
				return
			}
			var none *reservations.NoAvailabilityError
			require.ErrorAs(t, err, &none)
			assert.Equal(t, c.term, none.Term)
		})
	}
}

func TestFindAvailability_PicksBestFitThenOldest(t *testing.T) {
	s, _, _ := newStore(t, 10_000)
	big := mustAvailability(t, s, 1000)
	small1 := mustAvailability(t, s, 200)
	mustAvailability(t, s, 200)
	mustAvailability(t, s, 50) // too small

	got, err := s.FindAvailability(t.Context(), findSlot(100, 1, u(1), u(1)))
	require.NoError(t, err)
	assert.Equal(t, small1.ID, got.ID)

	got, err = s.FindAvailability(t.Context(), findSlot(500, 1, u(1), u(1)))
	require.NoError(t, err)
	assert.Equal(t, big.ID, got.ID)
}

func TestAvailable_ReflectsRepo(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	mustAvailability(t, s, 400)
	assert.Equal(t, uint64(600), r.Available())
	assert.True(t, r.HasAvailable(600))
	assert.False(t, r.HasAvailable(601))
}

func TestKeys_MatchDocumentedLayout(t *testing.T) {
	a := reservations.Availability{ID: reservations.AvailabilityID(uuid.Must(uuid.NewV7()))}
	r := reservations.Reservation{ID: reservations.ReservationID(uuid.Must(uuid.NewV7())), AvailabilityID: a.ID}
	assert.Equal(t, "/meta/sales/reservations/"+a.ID.String(), reservations.KeyOf(a).String())
	assert.Equal(t, "/meta/sales/reservations/"+a.ID.String()+"/"+r.ID.String(), reservations.KeyOf(r).String())
	assert.Equal(t, reservations.RecordsPrefix, datastore.NewKey("/meta/sales/reservations"))
}

func TestModifyAvailability_ChangesRelativeToCurrent(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	_, err := s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 30))
	require.NoError(t, err)

	// a is stale (Size 100); a relative change sees the current 70.
	got, err := s.ModifyAvailability(t.Context(), a.ID, func(cur *reservations.Availability) error {
		assert.Equal(t, uint64(70), cur.Size)
		cur.Size += 25
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, uint64(95), got.Size)
	assert.Equal(t, uint64(125), r.Quota().Reserved)
	requireInvariant(t, s)
}

func TestModifyAvailability_AbortsOnError(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	boom := errors.New("boom")
	_, err := s.ModifyAvailability(t.Context(), a.ID, func(cur *reservations.Availability) error {
		cur.Size = 1
		return boom
	})
	require.ErrorIs(t, err, boom)
	_, err = s.ModifyAvailability(t.Context(), a.ID, func(cur *reservations.Availability) error {
		cur.ID = reservations.AvailabilityID(uuid.New())
		return nil
	})
	require.ErrorIs(t, err, reservations.ErrInvalidID)
	got, err := s.Availability(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, a, got)
	assert.Equal(t, uint64(100), r.Quota().Reserved)
}

// Giving bytes back while reservations are being carved out never loses or
// duplicates a byte.
func TestModifyAvailability_ConcurrentWithReservations(t *testing.T) {
	s, r, _ := newStore(t, 1<<20)
	a := mustAvailability(t, s, 10_000)
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			_, err := s.CreateReservation(context.Background(), a.ID, anySlot(reqID(1), uint64(i), 100))
			assert.NoError(t, err)
		})
		wg.Go(func() {
			_, err := s.ModifyAvailability(context.Background(), a.ID, func(cur *reservations.Availability) error {
				cur.Size += 10
				return nil
			})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	got, err := s.Availability(t.Context(), a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(10_000-50*100+50*10), got.Size)
	assert.Equal(t, uint64(10_000+50*10), r.Quota().Reserved)
	requireInvariant(t, s)
}

// Once loaded, the list of availabilities is kept in memory; every change
// shows in it, and a fresh Store reading the datastore sees the same.
func TestAvailabilities_FollowChangesAfterFirstLoad(t *testing.T) {
	s, r, _ := newStore(t, 10_000)
	a := mustAvailability(t, s, 100)
	as, err := s.Availabilities(t.Context())
	require.NoError(t, err)
	require.Len(t, as, 1)

	b := mustAvailability(t, s, 200)
	_, err = s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 40))
	require.NoError(t, err)
	require.NoError(t, s.DeleteAvailability(t.Context(), b.ID))
	c := mustAvailability(t, s, 300)

	as, err = s.Availabilities(t.Context())
	require.NoError(t, err)
	fresh, err := reservations.New(r).Availabilities(t.Context())
	require.NoError(t, err)
	assert.Equal(t, fresh, as)
	require.Len(t, as, 2)
	assert.Equal(t, a.ID, as[0].ID)
	assert.Equal(t, uint64(60), as[0].Size)
	assert.Equal(t, c.ID, as[1].ID)
	requireInvariant(t, s)
}

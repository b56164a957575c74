package reservations_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// slotOf is a slot of size bytes with terms every availability made by
// mustAvailability accepts: 100 s, price 100, collateral 5.
func slotOf(req byte, index, size uint64) stowage.Slot {
	return stowage.Slot{
		RequestID: reqID(req), Index: index,
		Ask: stowage.StorageAsk{Slots: 1, SlotSize: size, Duration: 100, Reward: u(1), Collateral: u(5)},
	}
}

func availability(t testing.TB, s *reservations.Store, id reservations.AvailabilityID) reservations.Availability {
	t.Helper()
	a, err := s.Availability(t.Context(), id)
	require.NoError(t, err)
	return a
}

func TestAddAvailability_TotalSizeIsTheOffer(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	ctx := t.Context()
	for _, a := range []reservations.Availability{
		{TotalSize: 100, Duration: 1},
		{Size: 100, TotalSize: 100, Duration: 1},
		{TotalSize: 100, Duration: 1, Disabled: true},
	} {
		got, err := s.AddAvailability(ctx, a)
		require.NoError(t, err)
		assert.Equal(t, uint64(100), got.TotalSize)
		assert.Equal(t, uint64(100), got.Size, "all of the offer is free")
		assert.Equal(t, got, availability(t, s, got.ID))
	}
	assert.Equal(t, uint64(300), r.Quota().Reserved)

	_, err := s.AddAvailability(ctx, reservations.Availability{Size: 50, TotalSize: 100})
	assert.ErrorIs(t, err, reservations.ErrInvalidSize, "both set and different")
	_, err = s.AddAvailability(ctx, reservations.Availability{Duration: 1})
	assert.ErrorIs(t, err, reservations.ErrInvalidSize)
	_, err = s.AddAvailability(ctx, reservations.Availability{Size: 100, Duration: 1})
	assert.ErrorIs(t, err, reservations.ErrInvalidSize, "Size is not the offer")
	assert.Equal(t, uint64(300), r.Quota().Reserved)
	requireInvariant(t, s)
}

func TestAddAvailability_KeepsTermsAndStartsTheBudgetFull(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	until := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	a, err := s.AddAvailability(t.Context(), reservations.Availability{
		TotalSize: 100, Duration: 60, MinPrice: u(3), MaxCollateral: u(9),
		Disabled: true, Until: until, TotalCollateral: u(70), FreeCollateral: u(1),
	})
	require.NoError(t, err)
	assert.True(t, a.Disabled)
	assert.True(t, until.Equal(a.Until))
	assert.Equal(t, u(70), a.TotalCollateral)
	assert.Equal(t, u(70), a.FreeCollateral, "FreeCollateral starts at TotalCollateral")
	got := availability(t, s, a.ID)
	assert.True(t, until.Equal(got.Until))
	got.Until = a.Until
	assert.Equal(t, a, got)
	requireInvariant(t, s)
}

func TestAddAvailability_QuotaTooSmallWritesNothing(t *testing.T) {
	s, r, ds := newStore(t, 100)
	_, err := s.AddAvailability(t.Context(), reservations.Availability{TotalSize: 101, Duration: 1})
	require.ErrorIs(t, err, repo.ErrQuotaNotEnough)
	require.ErrorIs(t, err, repo.ErrQuotaNotEnough)
	assert.Equal(t, repo.Quota{Max: 100}, r.Quota())
	res, err := ds.Query(t.Context(), queryAll())
	require.NoError(t, err)
	entries, err := res.Rest()
	require.NoError(t, err)
	assert.Empty(t, entries)
}

// held returns an availability of 100 bytes of which a reservation holds 30.
func held(t *testing.T) (*reservations.Store, *repo.Repo, reservations.Availability) {
	t.Helper()
	s, r, _ := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	_, err := s.ReserveSlot(t.Context(), slotOf(1, 0, 30))
	require.NoError(t, err)
	a = availability(t, s, a.ID)
	require.Equal(t, uint64(70), a.Size)
	require.Equal(t, uint64(100), a.TotalSize)
	return s, r, a
}

func TestModifyAvailability_ReplaceSizeAndTotalSizeMoveTogether(t *testing.T) {
	s, r, a := held(t)
	ctx := t.Context()

	a.Size += 10
	require.NoError(t, replaceAvailability(ctx, s, a))
	got := availability(t, s, a.ID)
	assert.Equal(t, uint64(80), got.Size)
	assert.Equal(t, uint64(110), got.TotalSize, "a change of Size moves TotalSize")
	assert.Equal(t, uint64(110), r.Quota().Reserved)

	got.TotalSize -= 50
	require.NoError(t, replaceAvailability(ctx, s, got))
	got = availability(t, s, a.ID)
	assert.Equal(t, uint64(30), got.Size, "a change of TotalSize moves Size")
	assert.Equal(t, uint64(60), got.TotalSize)
	assert.Equal(t, uint64(60), r.Quota().Reserved)

	got.Size, got.TotalSize = got.Size+5, got.TotalSize+5
	require.NoError(t, replaceAvailability(ctx, s, got), "both by the same amount")
	got = availability(t, s, a.ID)
	assert.Equal(t, uint64(35), got.Size)
	assert.Equal(t, uint64(65), got.TotalSize)
	requireInvariant(t, s)
}

func TestModifyAvailability_ReplaceInconsistentChangeIsStale(t *testing.T) {
	s, r, a := held(t)
	a.Size, a.TotalSize = a.Size+10, a.TotalSize+20
	err := replaceAvailability(t.Context(), s, a)
	assert.ErrorIs(t, err, reservations.ErrInvalidSize)
	assert.Equal(t, uint64(100), availability(t, s, a.ID).TotalSize)
	assert.Equal(t, uint64(100), r.Quota().Reserved)
}

// A copy read before a reservation took bytes, then grown through
// TotalSize, shows its Size changed by a different amount: caught.
func TestModifyAvailability_ReplaceStaleCopyWithTotalSizeChangedIsCaught(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	stale := mustAvailability(t, s, 100)
	_, err := s.ReserveSlot(t.Context(), slotOf(1, 0, 30))
	require.NoError(t, err)
	stale.TotalSize += 50
	err = replaceAvailability(t.Context(), s, stale)
	assert.ErrorIs(t, err, reservations.ErrInvalidSize)
	got := availability(t, s, stale.ID)
	assert.Equal(t, uint64(70), got.Size)
	assert.Equal(t, uint64(100), got.TotalSize)
	assert.Equal(t, uint64(100), r.Quota().Reserved)
	requireInvariant(t, s)
}

func TestModifyAvailability_ReplaceShrinkBelowHeldIsOutOfBounds(t *testing.T) {
	s, r, a := held(t)
	a.TotalSize = 29
	err := replaceAvailability(t.Context(), s, a)
	assert.ErrorIs(t, err, reservations.ErrBytesOutOfBounds)
	assert.Equal(t, uint64(100), r.Quota().Reserved)

	a.TotalSize = 30 // exactly what is held: nothing free
	require.NoError(t, replaceAvailability(t.Context(), s, a))
	got := availability(t, s, a.ID)
	assert.Equal(t, uint64(0), got.Size)
	assert.Equal(t, uint64(30), r.Quota().Reserved)
	requireInvariant(t, s)
}

func TestModifyAvailability_CollateralBudgetBelowHeldIsOutOfBounds(t *testing.T) {
	s, _, _ := newStore(t, 1000)
	a, err := s.AddAvailability(t.Context(), reservations.Availability{
		TotalSize: 100, Duration: 1000, MinPrice: u(1), MaxCollateral: u(100), TotalCollateral: u(20),
	})
	require.NoError(t, err)
	_, err = s.ReserveSlot(t.Context(), slotOf(1, 0, 10)) // takes 5
	require.NoError(t, err)
	_, err = s.ReserveSlot(t.Context(), slotOf(1, 1, 10)) // takes 5
	require.NoError(t, err)

	_, err = s.ModifyAvailability(t.Context(), a.ID, func(a *reservations.Availability) error {
		a.TotalCollateral = u(9)
		return nil
	})
	assert.ErrorIs(t, err, reservations.ErrBytesOutOfBounds)
	got := availability(t, s, a.ID)
	assert.Equal(t, u(20), got.TotalCollateral)
	assert.Equal(t, u(10), got.FreeCollateral)

	got, err = s.ModifyAvailability(t.Context(), a.ID, func(a *reservations.Availability) error {
		a.TotalCollateral = u(12)
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, u(2), got.FreeCollateral, "FreeCollateral follows TotalCollateral")
	assert.Equal(t, got, availability(t, s, a.ID))
	requireInvariant(t, s)
}

func TestModifyAvailability_SizeAndTotalSizeMoveTogether(t *testing.T) {
	s, r, a := held(t)
	got, err := s.ModifyAvailability(t.Context(), a.ID, func(a *reservations.Availability) error {
		a.TotalSize += 25
		return nil
	})
	require.NoError(t, err)
	assert.Equal(t, uint64(95), got.Size)
	assert.Equal(t, uint64(125), got.TotalSize)
	_, err = s.ModifyAvailability(t.Context(), a.ID, func(a *reservations.Availability) error {
		a.Size -= 95
		return nil
	})
	require.NoError(t, err)
	got = availability(t, s, a.ID)
	assert.Equal(t, uint64(0), got.Size)
	assert.Equal(t, uint64(30), got.TotalSize)
	assert.Equal(t, uint64(30), r.Quota().Reserved)
	_, err = s.ModifyAvailability(t.Context(), a.ID, func(a *reservations.Availability) error {
		a.Size, a.TotalSize = 10, 50
		return nil
	})
	assert.ErrorIs(t, err, reservations.ErrInvalidSize)
	requireInvariant(t, s)
}

// A time a record cannot hold (JSON times have years 0 to 9999) is refused
// with ErrInvalidTime, and nothing is written.
func TestTimeOutOfRange_IsRefusedAndWritesNothing(t *testing.T) {
	far := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	s, r, ds := newStore(t, 1000)
	_, err := s.AddAvailability(t.Context(), reservations.Availability{TotalSize: 100, Duration: 1000, Until: far})
	require.ErrorIs(t, err, reservations.ErrInvalidTime)
	res, err := ds.Query(t.Context(), queryAll())
	require.NoError(t, err)
	entries, err := res.Rest()
	require.NoError(t, err)
	assert.Empty(t, entries)

	a := mustAvailability(t, s, 100)
	_, err = s.ModifyAvailability(t.Context(), a.ID, func(a *reservations.Availability) error {
		a.Until = far
		return nil
	})
	require.ErrorIs(t, err, reservations.ErrInvalidTime)
	slot := slotOf(1, 0, 30)
	slot.Expiry = far
	_, err = s.ReserveSlot(t.Context(), slot)
	require.ErrorIs(t, err, reservations.ErrInvalidTime)
	assert.Equal(t, a, availability(t, s, a.ID))
	assert.Equal(t, repo.Quota{Max: 1000, Reserved: 100}, r.Quota())
	requireInvariant(t, s)
}

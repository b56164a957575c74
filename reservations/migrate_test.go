package reservations_test

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

type firstRound struct {
	ds    datastore.Batching
	aid   reservations.AvailabilityID
	rids  []reservations.ReservationID
	other reservations.AvailabilityID // without reservations
}

// writeFirstRound writes records as the first release did: availabilities
// with no totalSize, reservations with no slotSize, used or indexes, and
// the Reserved counter the sum of their sizes.
func writeFirstRound(t *testing.T) firstRound {
	t.Helper()
	ctx := t.Context()
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	f := firstRound{
		ds:    ds,
		aid:   reservations.AvailabilityID(uuid.Must(uuid.NewV7())),
		other: reservations.AvailabilityID(uuid.Must(uuid.NewV7())),
	}
	put := func(key string, value string) {
		require.NoError(t, ds.Put(ctx, datastore.NewKey(key), []byte(value)))
	}
	avail := func(id reservations.AvailabilityID, size uint64) {
		put("/meta/sales/reservations/"+id.String(), fmt.Sprintf(
			`{"id":%q,"size":%d,"duration":3600,"minPrice":"10","maxCollateral":"50"}`, id, size))
	}
	avail(f.aid, 70)
	avail(f.other, 40)
	for i, size := range []uint64{20, 5} {
		rid := reservations.ReservationID(uuid.Must(uuid.NewV7()))
		f.rids = append(f.rids, rid)
		put("/meta/sales/reservations/"+f.aid.String()+"/"+rid.String(), fmt.Sprintf(
			`{"id":%q,"availabilityId":%q,"size":%d,"requestId":%q,"slotIndex":%d}`, rid, f.aid, size, reqID(7), i))
	}
	require.NoError(t, ds.Put(ctx, repo.ReservedKey, binary.BigEndian.AppendUint64(nil, 70+40+20+5)))
	return f
}

func openFirstRound(t *testing.T, ds datastore.Batching) (*reservations.Store, *repo.Repo) {
	t.Helper()
	r, err := repo.New(t.Context(), ds, repo.WithQuotaMaxBytes(1000))
	require.NoError(t, err)
	return reservations.New(r), r
}

func TestFirstRoundRecords_TotalSizeIsSizePlusHeld(t *testing.T) {
	f := writeFirstRound(t)
	s, r := openFirstRound(t, f.ds)
	a := availability(t, s, f.aid)
	assert.Equal(t, uint64(70), a.Size)
	assert.Equal(t, uint64(95), a.TotalSize, "Size + what its reservations hold")
	assert.Equal(t, u(10), a.MinPrice)
	assert.Equal(t, u(50), a.MaxCollateral)
	o := availability(t, s, f.other)
	assert.Equal(t, uint64(40), o.TotalSize)
	assert.Equal(t, uint64(135), r.Quota().Reserved)
	requireInvariant(t, s)

	as, err := s.Availabilities(t.Context())
	require.NoError(t, err)
	assert.Len(t, as, 2, "availabilities are indexed")
}

func TestFirstRoundRecords_ReservationsFoundByIDAndSlot(t *testing.T) {
	f := writeFirstRound(t)
	s, _ := openFirstRound(t, f.ds)
	res, err := s.Reservation(t.Context(), f.rids[0], f.aid)
	require.NoError(t, err)
	assert.Equal(t, uint64(20), res.Size)
	assert.Equal(t, uint64(20), res.SlotSize)
	assert.Equal(t, uint64(0), res.Used)

	got, ok, err := s.ReservationForSlot(t.Context(), reqID(7), 1)
	require.NoError(t, err)
	require.True(t, ok)
	assert.Equal(t, f.rids[1], got.ID)
	_, err = s.ReserveSlot(t.Context(), slotOf(7, 1, 1))
	assert.ErrorIs(t, err, reservations.ErrSlotReserved, "the slot index knows the old reservation")
	requireInvariant(t, s)
}

func TestFirstRoundRecords_DeleteReservationGivesBytesBack(t *testing.T) {
	f := writeFirstRound(t)
	s, r := openFirstRound(t, f.ds)
	for _, rid := range f.rids {
		require.NoError(t, s.DeleteReservation(t.Context(), rid, f.aid))
	}
	a := availability(t, s, f.aid)
	assert.Equal(t, uint64(95), a.Size)
	assert.Equal(t, a.TotalSize, a.Size, "the offer is whole again")
	assert.Equal(t, uint64(135), r.Quota().Reserved)
	requireInvariant(t, s)
}

// The migrated layout is written: a repo reopened on the datastore reads it
// as it is, and a Store of the first change sees the same.
func TestFirstRoundRecords_MigrationIsDurable(t *testing.T) {
	f := writeFirstRound(t)
	s, _ := openFirstRound(t, f.ds)
	require.NoError(t, s.Verify(t.Context()))
	s2, _ := openFirstRound(t, f.ds)
	assert.Equal(t, uint64(95), availability(t, s2, f.aid).TotalSize)
	requireInvariant(t, s2)
}

package reservations_test

import (
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/ipfs/go-datastore/query"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/reservations"
)

func queryAll() query.Query { return query.Query{} }

// A corrupt record is reported by every operation that reads it, by the
// Store that wrote it as by a new one.
func TestCorruptAvailabilityRecord_IsReported(t *testing.T) {
	s0, r, ds := newStore(t, 1000)
	a := mustAvailability(t, s0, 100)
	require.NoError(t, ds.Put(t.Context(), reservations.KeyOf(a), []byte(`{"id": "`)))
	assert.ErrorIs(t, s0.Verify(t.Context()), reservations.ErrCorrupt)
	s := reservations.New(r)

	_, err := s.Availability(t.Context(), a.ID)
	assert.ErrorIs(t, err, reservations.ErrCorrupt)
	_, err = s.Availabilities(t.Context())
	assert.ErrorIs(t, err, reservations.ErrCorrupt)
	_, err = s.FindAvailability(t.Context(), findSlot(1, 1, u(1), u(1)))
	assert.ErrorIs(t, err, reservations.ErrCorrupt)
	_, err = s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 1))
	assert.ErrorIs(t, err, reservations.ErrCorrupt)
	assert.ErrorIs(t, s.DeleteAvailability(t.Context(), a.ID), reservations.ErrCorrupt)
	assert.ErrorIs(t, s.Verify(t.Context()), reservations.ErrCorrupt)
	assert.Equal(t, uint64(100), r.Quota().Reserved, "nothing changed")
}

func TestCorruptReservationRecord_IsReported(t *testing.T) {
	s0, r, ds := newStore(t, 1000)
	a := mustAvailability(t, s0, 100)
	res, err := s0.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 10))
	require.NoError(t, err)
	require.NoError(t, ds.Put(t.Context(), reservations.KeyOf(res), []byte(`{"size": -1}`)))
	s := reservations.New(r)

	assert.ErrorIs(t, s.Release(t.Context(), res.ID, 1), reservations.ErrCorrupt)
	assert.ErrorIs(t, s.DeleteReservation(t.Context(), res.ID), reservations.ErrCorrupt)
	_, err = s.Reservations(t.Context())
	assert.ErrorIs(t, err, reservations.ErrCorrupt)
	assert.Equal(t, uint64(100), r.Quota().Reserved)
}

func TestRecordUnderWrongKey_IsReported(t *testing.T) {
	s, _, ds := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	b, err := ds.Get(t.Context(), reservations.KeyOf(a))
	require.NoError(t, err)
	other := reservations.AvailabilityID(uuid.New())
	require.NoError(t, ds.Put(t.Context(), reservations.RecordsPrefix.ChildString(other.String()), b))
	_, err = s.Availability(t.Context(), other)
	assert.ErrorIs(t, err, reservations.ErrCorrupt)
}

// A record changed behind the Store's back unbalances the books; Verify
// says by how much, and the next change works from the record as it is.
func TestVerify_ReportsRecordsChangedBehindItsBack(t *testing.T) {
	s, _, ds := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	changed := a
	changed.Size, changed.TotalSize = 90, 90
	b, err := json.Marshal(&changed)
	require.NoError(t, err)
	require.NoError(t, ds.Put(t.Context(), reservations.KeyOf(a), b))
	err = s.Verify(t.Context())
	require.ErrorIs(t, err, reservations.ErrInvariant)
	assert.Contains(t, err.Error(), "difference +10")
	_, err = s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 95))
	assert.ErrorIs(t, err, reservations.ErrNoAvailability, "the change re-read the record")
}

func TestVerify_ReportsDifference(t *testing.T) {
	s, r, _ := newStore(t, 1000)
	mustAvailability(t, s, 100)
	requireInvariant(t, s)

	// Bytes reserved behind the Store's back break the invariant.
	require.NoError(t, r.Reserve(t.Context(), 7))
	err := s.Verify(t.Context())
	require.ErrorIs(t, err, reservations.ErrInvariant)
	assert.Contains(t, err.Error(), "difference +7")
}

func TestVerify_ReportsOrphanReservation(t *testing.T) {
	s, _, ds := newStore(t, 1000)
	a := mustAvailability(t, s, 100)
	_, err := s.CreateReservation(t.Context(), a.ID, anySlot(reqID(1), 0, 10))
	require.NoError(t, err)
	require.NoError(t, ds.Delete(t.Context(), reservations.KeyOf(a)))
	err = s.Verify(t.Context())
	require.ErrorIs(t, err, reservations.ErrInvariant)
	assert.Contains(t, err.Error(), "missing availability")
}

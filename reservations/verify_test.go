package reservations_test

import (
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/google/uuid"
	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// books is a store with every kind of record: an availability with a
// collateral budget, a reservation holding 60 bytes and collateral 5, and
// two blocks of 10 bytes it wrote.
type books struct {
	s   *reservations.Store
	r   *repo.Repo
	ds  datastore.Batching
	a   reservations.Availability
	res reservations.Reservation
}

func newBooks(t *testing.T) books {
	t.Helper()
	s, r, _ := newStore(t, 1000)
	ctx := t.Context()
	a, err := s.AddAvailability(ctx, reservations.Availability{
		TotalSize: 100, Duration: 100, MinPrice: u(1), MaxCollateral: u(10), TotalCollateral: u(20),
	})
	require.NoError(t, err)
	res, err := s.ReserveSlot(ctx, slotOf(1, 0, 60))
	require.NoError(t, err)
	for i := range 2 {
		require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(i), make([]byte, 10)))
	}
	requireInvariant(t, s)
	return books{s: s, r: r, ds: r.Datastore(), a: availability(t, s, a.ID), res: reservation(t, s, res)}
}

func (b books) put(t *testing.T, key string, value []byte) {
	t.Helper()
	require.NoError(t, b.ds.Put(t.Context(), datastore.NewKey(key), value))
}

func (b books) del(t *testing.T, key string) {
	t.Helper()
	require.NoError(t, b.ds.Delete(t.Context(), datastore.NewKey(key)))
}

func (b books) putAvailability(t *testing.T, f func(*reservations.Availability)) {
	t.Helper()
	a := b.a
	f(&a)
	v, err := json.Marshal(a)
	require.NoError(t, err)
	require.NoError(t, b.ds.Put(t.Context(), reservations.KeyOf(a), v))
}

func (b books) putReservation(t *testing.T, f func(*reservations.Reservation)) {
	t.Helper()
	r := b.res
	f(&r)
	v, err := json.Marshal(r)
	require.NoError(t, err)
	require.NoError(t, b.ds.Put(t.Context(), reservations.KeyOf(r), v))
}

// Each invariant broken behind the Store's back is reported, with the
// difference.
func TestVerify_ReportsEachBrokenInvariant(t *testing.T) {
	stray := uuid.Must(uuid.NewV7()).String()
	cases := []struct {
		name    string
		breakIt func(t *testing.T, b books)
		is      error
		msg     string
	}{
		{"1 reserved sum", func(t *testing.T, b books) {
			b.putReservation(t, func(r *reservations.Reservation) { r.Size += 7 })
			b.putAvailability(t, func(a *reservations.Availability) { a.TotalSize += 7 })
		}, reservations.ErrInvariant, "repo reserved 80, availabilities hold 40 (1 records), reservations hold 47 (1 records): difference -7"},
		{"2 totalSize", func(t *testing.T, b books) {
			b.putAvailability(t, func(a *reservations.Availability) { a.TotalSize += 5 })
		}, reservations.ErrInvariant, "has totalSize 105, size 40 and its reservations hold 60: difference +5"},
		{"3 used vs stored blocks", func(t *testing.T, b books) {
			b.put(t, "/blocks/stray", []byte("abc"))
		}, repo.ErrInvariant, "used 20, 3 stored blocks hold 23: difference -3"},
		{"3 reservation used vs its blocks", func(t *testing.T, b books) {
			b.put(t, "/meta/sales/blocks/"+b.res.ID.String()+"/b/1", []byte("13"))
		}, reservations.ErrInvariant, "has used 20, its blocks hold 23: difference -3"},
		{"3 indexed block missing", func(t *testing.T, b books) {
			b.del(t, "/blocks/b/0")
			b.put(t, "/meta/quota/used", binary.BigEndian.AppendUint64(nil, 10))
		}, reservations.ErrInvariant, "block /b/0 is not stored with the size its reservation recorded"},
		{"4 collateral budget", func(t *testing.T, b books) {
			b.putAvailability(t, func(a *reservations.Availability) { a.FreeCollateral = u(16) })
		}, reservations.ErrInvariant, "collateral budget of 20, 16 free and its reservations hold 5"},
		{"5 counters on disk", func(t *testing.T, b books) {
			b.put(t, "/meta/quota/reserved", binary.BigEndian.AppendUint64(nil, 81))
		}, repo.ErrInvariant, "counters on disk (used 20, reserved 81) differ from memory (used 20, reserved 80)"},
		{"no index by ID", func(t *testing.T, b books) {
			b.del(t, "/meta/sales/byid/"+b.res.ID.String())
		}, reservations.ErrInvariant, "is not indexed by its ID"},
		{"index by ID of nothing", func(t *testing.T, b books) {
			b.put(t, "/meta/sales/byid/"+stray, []byte(b.a.ID.String()))
		}, reservations.ErrInvariant, "index names reservation " + stray + ", which does not exist"},
		{"no slot index", func(t *testing.T, b books) {
			b.del(t, "/meta/sales/slots/"+reqID(1).String()+"/0")
		}, reservations.ErrInvariant, "slot 0 of " + reqID(1).String() + " does not name its reservation"},
		{"slot index of nothing", func(t *testing.T, b books) {
			b.put(t, "/meta/sales/slots/"+reqID(1).String()+"/5", []byte(b.a.ID.String()+"/"+stray))
		}, reservations.ErrInvariant, "names no reservation"},
		{"availability not indexed", func(t *testing.T, b books) {
			b.del(t, "/meta/sales/availabilities/"+b.a.ID.String())
		}, reservations.ErrInvariant, "1 availabilities, 0 indexed"},
		{"index of no availability", func(t *testing.T, b books) {
			b.put(t, "/meta/sales/availabilities/"+stray, nil)
		}, reservations.ErrInvariant, "the index names availability " + stray + ", which does not exist"},
		{"blocks of no reservation", func(t *testing.T, b books) {
			b.put(t, "/meta/sales/blocks/"+stray+"/b/0", []byte("10"))
		}, reservations.ErrInvariant, "blocks are indexed for reservation " + stray},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBooks(t)
			c.breakIt(t, b)
			err := b.s.Verify(t.Context())
			require.ErrorIs(t, err, c.is)
			assert.Contains(t, err.Error(), c.msg)
		})
	}
}

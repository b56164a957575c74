package reservations_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// model is the simplest possible bookkeeping of what the Store must do.
type model struct {
	max, reserved, used uint64
	avail               map[reservations.AvailabilityID]*modelAvail
	res                 map[reservations.ReservationID]*modelRes
}

type modelAvail struct{ size, total uint64 }

type modelRes struct {
	avail      reservations.AvailabilityID
	size, used uint64
	req        stowage.RequestID
	index      uint64
	blocks     map[datastore.Key]uint64
}

// held is what the reservations of an availability hold.
func (m *model) held(id reservations.AvailabilityID) uint64 {
	var n uint64
	for _, x := range m.res {
		if x.avail == id {
			n += x.size + x.used
		}
	}
	return n
}

// bestFit is ReserveSlot's choice among the model's availabilities (all
// on terms every slot of the test meets): the least free bytes that fit,
// the oldest on a tie.
func (m *model) bestFit(size uint64) (reservations.AvailabilityID, bool) {
	var best reservations.AvailabilityID
	found := false
	for id, a := range m.avail {
		if a.size < size {
			continue
		}
		if !found || a.size < m.avail[best].size || a.size == m.avail[best].size && bytes.Compare(id[:], best[:]) < 0 {
			best, found = id, true
		}
	}
	return best, found
}

func modelBlockKey(id reservations.ReservationID, i int) datastore.Key {
	return datastore.NewKey(fmt.Sprintf("/m/%s/%d", id, i))
}

// Random operations against the Store and the model agree step by step:
// which succeed, with which error, and every size afterwards.
func TestStore_MatchesModel(t *testing.T) {
	const max = 10_000
	s, r, _ := newStore(t, max)
	m := model{max: max, avail: map[reservations.AvailabilityID]*modelAvail{}, res: map[reservations.ReservationID]*modelRes{}}
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := t.Context()

	pickAvail := func() (reservations.AvailabilityID, bool) {
		for id := range m.avail { // map order is random enough
			return id, true
		}
		return reservations.AvailabilityID{}, false
	}
	pickRes := func() (reservations.ReservationID, *modelRes, bool) {
		for id, x := range m.res {
			return id, x, true
		}
		return reservations.ReservationID{}, nil, false
	}

	done := map[string]int{} // successful operations, so the test is not vacuous
	for step := range 4000 {
		switch op := rng.IntN(9); op {
		case 0: // create availability
			size := rng.Uint64N(3000) + 1
			a, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: size, Duration: 100, MinPrice: u(1), MaxCollateral: u(1)})
			if m.reserved+m.used+size > m.max {
				require.ErrorIs(t, err, repo.ErrQuotaNotEnough, "step %d", step)
				break
			}
			require.NoError(t, err, "step %d", step)
			m.avail[a.ID] = &modelAvail{size: size, total: size}
			done["create availability"]++
			m.reserved += size
		case 1: // create reservation
			id, ok := pickAvail()
			if !ok {
				break
			}
			size := rng.Uint64N(800) + 1
			res, err := s.CreateReservation(ctx, id, anySlot(reqID(1), uint64(step), size))
			if size > m.avail[id].size {
				require.ErrorIs(t, err, reservations.ErrNoAvailability, "step %d", step)
				break
			}
			require.NoError(t, err, "step %d", step)
			m.avail[id].size -= size
			m.res[res.ID] = &modelRes{avail: id, size: size, req: reqID(1), index: uint64(step), blocks: map[datastore.Key]uint64{}}
			done["create reservation"]++
		case 2: // release: the bytes leave the offer for good
			id, x, ok := pickRes()
			if !ok {
				break
			}
			n := rng.Uint64N(x.size + 2)
			err := s.Release(ctx, id, n)
			if n > x.size {
				require.ErrorIs(t, err, reservations.ErrBytesOutOfBounds, "step %d", step)
				break
			}
			require.NoError(t, err, "step %d", step)
			x.size -= n
			m.reserved -= n
			m.avail[x.avail].total -= n
			done["release"]++
		case 3: // delete reservation: Size + Used go back to the availability
			id, x, ok := pickRes()
			if !ok {
				break
			}
			require.NoError(t, s.DeleteReservation(ctx, id), "step %d", step)
			m.avail[x.avail].size += x.size + x.used
			m.reserved += x.used
			m.used -= x.used
			for k := range x.blocks {
				has, err := r.HasBlock(ctx, k)
				require.NoError(t, err)
				require.False(t, has, "step %d: block %s deleted", step, k)
			}
			delete(m.res, id)
			if x.used > 0 {
				done["delete reservation with blocks"]++
			}
		case 4: // resize availability, through Size or TotalSize
			id, ok := pickAvail()
			if !ok {
				break
			}
			a, err := s.Availability(ctx, id)
			require.NoError(t, err)
			ma, held := m.avail[id], m.held(id)
			require.Equal(t, ma.total, a.TotalSize, "step %d", step)
			var size uint64
			if rng.IntN(2) == 0 {
				a.Size = rng.Uint64N(3000)
				size = a.Size
			} else {
				a.TotalSize = rng.Uint64N(3000)
				if a.TotalSize < held {
					require.ErrorIs(t, replaceAvailability(ctx, s, a), reservations.ErrBytesOutOfBounds, "step %d", step)
					break
				}
				size = a.TotalSize - held
			}
			err = replaceAvailability(ctx, s, a)
			if size > ma.size && m.reserved+m.used+(size-ma.size) > m.max {
				require.ErrorIs(t, err, repo.ErrQuotaNotEnough, "step %d", step)
				break
			}
			require.NoError(t, err, "step %d", step)
			m.reserved = m.reserved - ma.size + size
			ma.size, ma.total = size, held+size
			done["resize"]++
		case 5: // delete availability
			id, ok := pickAvail()
			if !ok {
				break
			}
			err := s.DeleteAvailability(ctx, id)
			hasRes := false
			for _, x := range m.res {
				hasRes = hasRes || x.avail == id
			}
			if hasRes {
				require.True(t, errors.Is(err, reservations.ErrHasReservations), "step %d: %v", step, err)
				break
			}
			require.NoError(t, err, "step %d", step)
			m.reserved -= m.avail[id].size
			delete(m.avail, id)
			done["delete availability"]++
		case 6: // reserve a slot
			size := rng.Uint64N(800) + 1
			slot := stowage.Slot{RequestID: reqID(2), Index: uint64(step),
				Ask: stowage.StorageAsk{SlotSize: size, Duration: 50, Reward: u(1), Collateral: u(1)}}
			if _, x, ok := pickRes(); ok && rng.IntN(8) == 0 {
				slot.RequestID, slot.Index = x.req, x.index
				_, err := s.ReserveSlot(ctx, slot)
				require.ErrorIs(t, err, reservations.ErrSlotReserved, "step %d", step)
				break
			}
			res, err := s.ReserveSlot(ctx, slot)
			id, ok := m.bestFit(size)
			if !ok {
				require.ErrorIs(t, err, reservations.ErrNoAvailability, "step %d", step)
				break
			}
			require.NoError(t, err, "step %d", step)
			require.Equal(t, id, res.AvailabilityID, "step %d: best fit", step)
			m.avail[id].size -= size
			m.res[res.ID] = &modelRes{avail: id, size: size, req: slot.RequestID, index: slot.Index, blocks: map[datastore.Key]uint64{}}
			done["reserve slot"]++
		case 7, 8: // write a block: Size -> Used, Reserved -> Used
			id, x, ok := pickRes()
			if !ok {
				break
			}
			if other, y, ok := pickRes(); ok && other != id && len(y.blocks) > 0 && rng.IntN(8) == 0 {
				for k := range y.blocks {
					err := s.PutBlock(ctx, id, k, []byte{1})
					require.ErrorIs(t, err, reservations.ErrBlockExists, "step %d", step)
					break
				}
				break
			}
			key := modelBlockKey(id, rng.IntN(4))
			n := rng.Uint64N(300) + 1
			old := x.blocks[key]
			err := s.PutBlock(ctx, id, key, make([]byte, n))
			if n > old && n-old > x.size {
				require.ErrorIs(t, err, reservations.ErrBytesOutOfBounds, "step %d", step)
				break
			}
			require.NoError(t, err, "step %d", step)
			x.size, x.used = x.size+old-n, x.used+n-old
			m.reserved, m.used = m.reserved+old-n, m.used+n-old
			if n < old {
				done["shrink block"]++
			}
			x.blocks[key] = n
			done["put block"]++
		}
		require.Equal(t, repo.Quota{Max: max, Used: m.used, Reserved: m.reserved}, r.Quota(), "step %d", step)
		if step%500 == 0 {
			requireInvariant(t, s)
		}
	}

	as, err := s.Availabilities(ctx)
	require.NoError(t, err)
	require.Len(t, as, len(m.avail))
	for _, a := range as {
		assert.Equal(t, m.avail[a.ID].size, a.Size)
		assert.Equal(t, m.avail[a.ID].total, a.TotalSize)
		assert.Equal(t, m.avail[a.ID].size+m.held(a.ID), a.TotalSize)
	}
	rs, err := s.Reservations(ctx)
	require.NoError(t, err)
	require.Len(t, rs, len(m.res))
	for _, x := range rs {
		assert.Equal(t, m.res[x.ID].size, x.Size)
		assert.Equal(t, m.res[x.ID].used, x.Used)
	}
	requireInvariant(t, s)
	for _, op := range []string{"create availability", "create reservation", "release", "delete reservation with blocks",
		"resize", "delete availability", "reserve slot", "put block", "shrink block"} {
		assert.Positive(t, done[op], op)
	}
	t.Log(done)
}

package reservations_test

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// model is the simplest possible bookkeeping of what the Store must do.
type model struct {
	max, reserved uint64
	avail         map[reservations.AvailabilityID]uint64
	res           map[reservations.ReservationID]modelRes
}

type modelRes struct {
	avail reservations.AvailabilityID
	size  uint64
}

// Random operations against the Store and the model agree step by step:
// which succeed, with which error, and every size afterwards.
func TestStore_MatchesModel(t *testing.T) {
	const max = 10_000
	s, r, _ := newStore(t, max)
	m := model{max: max, avail: map[reservations.AvailabilityID]uint64{}, res: map[reservations.ReservationID]modelRes{}}
	rng := rand.New(rand.NewPCG(1, 2))
	ctx := t.Context()

	pickAvail := func() (reservations.AvailabilityID, bool) {
		for id := range m.avail { // map order is random enough
			return id, true
		}
		return reservations.AvailabilityID{}, false
	}
	pickRes := func() (reservations.ReservationID, modelRes, bool) {
		for id, x := range m.res {
			return id, x, true
		}
		return reservations.ReservationID{}, modelRes{}, false
	}

	for step := range 3000 {
		switch op := rng.IntN(6); op {
		case 0: // create availability
			size := rng.Uint64N(3000) + 1
			a, err := s.CreateAvailability(ctx, size, 100, u(1), u(1))
			if m.reserved+size > m.max {
				require.ErrorIs(t, err, repo.ErrQuotaNotEnough, "step %d", step)
				break
			}
			require.NoError(t, err, "step %d", step)
			m.avail[a.ID] = size
			m.reserved += size
		case 1: // create reservation
			id, ok := pickAvail()
			if !ok {
				break
			}
			size := rng.Uint64N(800) + 1
			res, err := s.CreateReservation(ctx, id, size, reqID(1), uint64(step))
			if size > m.avail[id] {
				require.ErrorIs(t, err, reservations.ErrBytesOutOfBounds, "step %d", step)
				break
			}
			require.NoError(t, err, "step %d", step)
			m.avail[id] -= size
			m.res[res.ID] = modelRes{avail: id, size: size}
		case 2: // release
			id, x, ok := pickRes()
			if !ok {
				break
			}
			n := rng.Uint64N(x.size + 2)
			err := s.Release(ctx, id, x.avail, n)
			if n > x.size {
				require.ErrorIs(t, err, reservations.ErrBytesOutOfBounds, "step %d", step)
				break
			}
			require.NoError(t, err, "step %d", step)
			x.size -= n
			m.res[id] = x
			m.reserved -= n
		case 3: // delete reservation
			id, x, ok := pickRes()
			if !ok {
				break
			}
			require.NoError(t, s.DeleteReservation(ctx, id, x.avail), "step %d", step)
			m.avail[x.avail] += x.size
			delete(m.res, id)
		case 4: // update availability size
			id, ok := pickAvail()
			if !ok {
				break
			}
			a, err := s.Availability(ctx, id)
			require.NoError(t, err)
			old := a.Size
			a.Size = rng.Uint64N(3000)
			err = s.UpdateAvailability(ctx, a)
			if a.Size > old && m.reserved+(a.Size-old) > m.max {
				require.ErrorIs(t, err, repo.ErrQuotaNotEnough, "step %d", step)
				break
			}
			require.NoError(t, err, "step %d", step)
			m.reserved = m.reserved - old + a.Size
			m.avail[id] = a.Size
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
			m.reserved -= m.avail[id]
			delete(m.avail, id)
		}
		require.Equal(t, m.reserved, r.Quota().Reserved, "step %d", step)
	}

	as, err := s.Availabilities(ctx)
	require.NoError(t, err)
	require.Len(t, as, len(m.avail))
	for _, a := range as {
		assert.Equal(t, m.avail[a.ID], a.Size)
	}
	rs, err := s.Reservations(ctx)
	require.NoError(t, err)
	require.Len(t, rs, len(m.res))
	for _, x := range rs {
		assert.Equal(t, m.res[x.ID].size, x.Size)
	}
	requireInvariant(t, s)
}

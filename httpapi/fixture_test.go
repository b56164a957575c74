package httpapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/holiman/uint256"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/reservations"
	"github.com/stowage/stowage/slotqueue"
)

// The calls of this file are those whose shape the v1 surface changes
// (the slot type, queue items), kept apart so the change is made once.

// reserve reserves slot index of request req, of size bytes asking
// collateral, lasting 60 seconds from expiry (zero: no expiry).
func reserve(ctx context.Context, s *reservations.Store, req byte, index, size, collateral uint64, expiry time.Time) (reservations.Reservation, error) {
	return s.ReserveSlot(ctx, stowage.Slot{
		RequestID: stowage.RequestID{req},
		Index:     index,
		Ask: stowage.StorageAsk{
			Slots: index + 1, SlotSize: size, Duration: 60,
			Reward: *uint256.NewInt(1000), Collateral: *uint256.NewInt(collateral),
		},
		Expiry: expiry,
	})
}

// newPausedQueue returns a running, paused queue holding n items.
func newPausedQueue(t *testing.T, n int) *slotqueue.Queue {
	t.Helper()
	q, err := slotqueue.New(func(context.Context, slotqueue.Item) error { return nil })
	require.NoError(t, err)
	q.Pause()
	q.Start()
	t.Cleanup(q.Stop)
	ask := stowage.StorageAsk{Slots: uint64(n), SlotSize: 1024, Duration: 3600, Reward: *uint256.NewInt(7), Collateral: *uint256.NewInt(3)}
	items, err := slotqueue.ItemsForRequest(stowage.RequestID{9}, ask, time.Time{})
	require.NoError(t, err)
	require.NoError(t, q.Push(items...))
	return q
}

// unreserve deletes a reservation, giving its bytes back.
func unreserve(ctx context.Context, s *reservations.Store, r reservations.Reservation) error {
	return s.DeleteReservation(ctx, r.ID)
}

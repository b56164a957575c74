// The v1 public API contract (see doc.go): each line fails to compile if
// a name or a signature changes.

package apicheck

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/httpapi"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
	"github.com/stowage/stowage/slotqueue"
	"github.com/stowage/stowage/statemachine"
)

type ctx = context.Context

var (
	_ func() string                                                     = stowage.RequestID{}.String
	_ func() ([]byte, error)                                            = stowage.RequestID{}.MarshalText
	_ func([]byte) error                                                = (&stowage.RequestID{}).UnmarshalText
	_ func() uint256.Int                                                = stowage.StorageAsk{}.PricePerSlot
	_ uint64                                                            = repo.DefaultQuotaMaxBytes
	_ error                                                             = repo.ErrQuotaNotEnough
	_ error                                                             = repo.ErrReleaseExceedsReserved
	_ func() uint64                                                     = repo.Quota{}.Available
	_ func(uint64) repo.Option                                          = repo.WithQuotaMaxBytes
	_ func(ctx, datastore.Batching, ...repo.Option) (*repo.Repo, error) = repo.New
	_ func(ctx, string, ...repo.Option) (*repo.Repo, error)             = repo.Open
	_ func(*repo.Repo) error                                            = (*repo.Repo).Close
	_ func(*repo.Repo) datastore.Batching                               = (*repo.Repo).Datastore
	_ func(*repo.Repo) repo.Quota                                       = (*repo.Repo).Quota
	_ func(*repo.Repo) uint64                                           = (*repo.Repo).Available
	_ func(*repo.Repo, uint64) bool                                     = (*repo.Repo).HasAvailable
	_ func(*repo.Repo, ctx, uint64) error                               = (*repo.Repo).Reserve
	_ func(*repo.Repo, ctx, uint64) error                               = (*repo.Repo).Release
	_ func(*repo.Repo, ctx, datastore.Key, []byte) error                = (*repo.Repo).PutBlock
	_ func(*repo.Repo, ctx, datastore.Key) ([]byte, error)              = (*repo.Repo).GetBlock
	_ func(*repo.Repo, ctx, datastore.Key) (bool, error)                = (*repo.Repo).HasBlock
	_ func(*repo.Repo, ctx, datastore.Key) error                        = (*repo.Repo).DeleteBlock

	_                                                                                                 = reservations.AvailabilityID(uuid.UUID{})
	_                                                                                                 = reservations.ReservationID(uuid.UUID{})
	_ error                                                                                           = reservations.ErrNotFound
	_ error                                                                                           = reservations.ErrBytesOutOfBounds
	_ error                                                                                           = reservations.ErrHasReservations
	_                                                                                                 = reservations.Availability{ID: reservations.AvailabilityID{}, Size: 1, Duration: 1, MinPrice: uint256.Int{}, MaxCollateral: uint256.Int{}}
	_                                                                                                 = reservations.Reservation{ID: reservations.ReservationID{}, AvailabilityID: reservations.AvailabilityID{}, Size: 1, RequestID: stowage.RequestID{}, SlotIndex: uint64(1)}
	_ func(func(ctx, reservations.Availability)) reservations.Option                                  = reservations.WithOnAvailabilityAdded
	_ func(*slog.Logger) reservations.Option                                                          = reservations.WithLogger
	_ func(*repo.Repo, ...reservations.Option) *reservations.Store                                    = reservations.New
	_ func(*reservations.Store, ctx, reservations.AvailabilityID) error                               = (*reservations.Store).DeleteAvailability
	_ func(*reservations.Store, ctx, reservations.AvailabilityID) (reservations.Availability, error)  = (*reservations.Store).Availability
	_ func(*reservations.Store, ctx) ([]reservations.Availability, error)                             = (*reservations.Store).Availabilities
	_ func(*reservations.Store, ctx) ([]reservations.Reservation, error)                              = (*reservations.Store).Reservations
	_ func(*reservations.Store, ctx, reservations.AvailabilityID) ([]reservations.Reservation, error) = (*reservations.Store).ReservationsOf

	// Additions of the second round: repo and reservations.
	_ error                       = repo.ErrClosed
	_ error                       = repo.ErrWriteFailed
	_ func(*repo.Repo, ctx) error = (*repo.Repo).Verify

	_ error = reservations.ErrNoAvailability
	_ error = reservations.ErrSlotReserved
	_       = reservations.Availability{TotalSize: 1, Disabled: true, Until: time.Time{}, TotalCollateral: uint256.Int{}, FreeCollateral: uint256.Int{}}
	_       = reservations.Reservation{SlotSize: 1, Used: 1, Collateral: uint256.Int{}, ValidUntil: time.Time{}}

	_ func(*reservations.Store, ctx, reservations.Availability) (reservations.Availability, error)      = (*reservations.Store).AddAvailability
	_ func(*reservations.Store, ctx, stowage.RequestID, uint64) (reservations.Reservation, bool, error) = (*reservations.Store).ReservationForSlot
	_ func(*reservations.Store, ctx, reservations.ReservationID, datastore.Key, []byte) error           = (*reservations.Store).PutBlock
	_ func(*reservations.Store, ctx, time.Time) (int, error)                                            = (*reservations.Store).ReclaimExpired
	_ func(*reservations.Store, ctx) error                                                              = (*reservations.Store).Verify

	// Third round (v1): one slot, one way to do each thing.
	_       = stowage.Slot{RequestID: stowage.RequestID{}, Index: uint64(1), Ask: stowage.StorageAsk{}, Expiry: time.Time{}}
	_ error = repo.ErrInvalidKey

	_ func(*reservations.Store, ctx, reservations.AvailabilityID, func(*reservations.Availability) error) (reservations.Availability, error) = (*reservations.Store).ModifyAvailability
	_ func(*reservations.Store, ctx, stowage.Slot) (reservations.Availability, error)                                                        = (*reservations.Store).FindAvailability
	_ func(*reservations.Store, ctx, stowage.Slot) (reservations.Reservation, error)                                                         = (*reservations.Store).ReserveSlot
	_ func(*reservations.Store, ctx, reservations.AvailabilityID, stowage.Slot) (reservations.Reservation, error)                            = (*reservations.Store).CreateReservation
	_ func(*reservations.Store, ctx, reservations.ReservationID) (reservations.Reservation, error)                                           = (*reservations.Store).Reservation
	_ func(*reservations.Store, ctx, reservations.ReservationID, uint64) error                                                               = (*reservations.Store).Release
	_ func(*reservations.Store, ctx, reservations.ReservationID) error                                                                       = (*reservations.Store).DeleteReservation

	_                                                                                  = slotqueue.DefaultMaxWorkers + slotqueue.DefaultMaxSize
	_ error                                                                            = slotqueue.ErrNotRunning
	_ error                                                                            = slotqueue.ErrItemExists
	_ error                                                                            = slotqueue.ErrSlotsOutOfRange
	_                                                                                  = slotqueue.Item{Slot: stowage.Slot{}, Seen: true}
	_ func(stowage.RequestID, stowage.StorageAsk, time.Time) ([]slotqueue.Item, error) = slotqueue.ItemsForRequest
	_ func(slotqueue.Item) uint256.Int                                                 = slotqueue.Item.Profitability
	_ func(slotqueue.Item, slotqueue.Item) bool                                        = slotqueue.Item.Less
	_ slotqueue.ProcessFunc                                                            = func(ctx, slotqueue.Item) error { return nil }
	_ func(int) slotqueue.Option                                                       = slotqueue.WithMaxWorkers
	_ func(int) slotqueue.Option                                                       = slotqueue.WithMaxSize
	_ func(slotqueue.ProcessFunc, ...slotqueue.Option) (*slotqueue.Queue, error)       = slotqueue.New
	_ func(*slotqueue.Queue)                                                           = (*slotqueue.Queue).Start
	_ func(*slotqueue.Queue)                                                           = (*slotqueue.Queue).Stop
	_ func(*slotqueue.Queue) bool                                                      = (*slotqueue.Queue).Running
	_ func(*slotqueue.Queue, ...slotqueue.Item) error                                  = (*slotqueue.Queue).Push
	_ func(*slotqueue.Queue, stowage.RequestID, uint64)                                = (*slotqueue.Queue).Delete
	_ func(*slotqueue.Queue, stowage.RequestID)                                        = (*slotqueue.Queue).DeleteRequest
	_ func(*slotqueue.Queue, stowage.RequestID, uint64) bool                           = (*slotqueue.Queue).Contains
	_ func(*slotqueue.Queue, stowage.RequestID, uint64) (slotqueue.Item, bool)         = (*slotqueue.Queue).Item
	_ func(*slotqueue.Queue) int                                                       = (*slotqueue.Queue).Len
	_ func(*slotqueue.Queue) int                                                       = (*slotqueue.Queue).Cap
	_ func(*slotqueue.Queue) int                                                       = (*slotqueue.Queue).ActiveWorkers
	_ func(*slotqueue.Queue) []slotqueue.Item                                          = (*slotqueue.Queue).Items
	_ error                                                                            = slotqueue.ErrRequeue
	_ error                                                                            = slotqueue.ErrEvicted
	_ error                                                                            = slotqueue.ErrExpired
	_                                                                                  = slotqueue.Item{Seen: true}
	_ func(func(slotqueue.Item, error)) slotqueue.Option                               = slotqueue.WithOnDrop
	_ func(func() time.Time) slotqueue.Option                                          = slotqueue.WithClock
	_ func(func(slotqueue.Item, error)) slotqueue.Option                               = slotqueue.WithOnError
	_ func(*slotqueue.Queue)                                                           = (*slotqueue.Queue).Pause
	_ func(*slotqueue.Queue)                                                           = (*slotqueue.Queue).Resume
	_ func(*slotqueue.Queue) bool                                                      = (*slotqueue.Queue).Paused
	_ func(*slotqueue.Queue, ctx) error                                                = (*slotqueue.Queue).WaitIdle
	_ func(*slotqueue.Queue) slotqueue.Stats                                           = (*slotqueue.Queue).Stats
	_                                                                                  = slotqueue.Stats{Waiting: 1, Busy: 1, Pushed: 1, Processed: 1, Failed: 1, Requeued: 1, Evicted: 1, Expired: 1}

	_ func(*slog.Logger) statemachine.Option                                                                             = statemachine.WithLogger
	_ func(func(*statemachine.Machine[int], statemachine.State[int], error) statemachine.State[int]) statemachine.Option = statemachine.WithOnError[int]
	_ func(int, ...statemachine.Option) *statemachine.Machine[int]                                                       = statemachine.New[int]
	_ func(*statemachine.Machine[int]) int                                                                               = (*statemachine.Machine[int]).Subject
	_ func(*statemachine.Machine[int], statemachine.State[int])                                                          = (*statemachine.Machine[int]).Start
	_ func(*statemachine.Machine[int], statemachine.Event[int])                                                          = (*statemachine.Machine[int]).Schedule
	_ func(*statemachine.Machine[int])                                                                                   = (*statemachine.Machine[int]).Stop
	_ func(*statemachine.Machine[int]) statemachine.State[int]                                                           = (*statemachine.Machine[int]).State
	_ func(*statemachine.Machine[int]) <-chan struct{}                                                                   = (*statemachine.Machine[int]).Done
	_ func(*statemachine.Machine[int]) error                                                                             = (*statemachine.Machine[int]).Err
	_ func(*statemachine.Machine[int]) statemachine.State[int]                                                           = (*statemachine.Machine[int]).Last
	_ func(*statemachine.Machine[int], ctx) error                                                                        = (*statemachine.Machine[int]).WaitIdle
	_ func(*statemachine.Machine[int], func(statemachine.State[int]) string) (string, bool)                              = statemachine.Query[int, string]
	_ statemachine.Event[int]                                                                                            = func(statemachine.State[int]) statemachine.State[int] { return nil }
)

type st struct{}

func (st) Run(ctx, *statemachine.Machine[int]) (statemachine.State[int], error) { return nil, nil }
func (st) OnError(error) statemachine.State[int]                                { return nil }

var _ statemachine.State[int] = st{}
var _ statemachine.ErrorHandler[int] = st{}

func (st) Final() {}

var _ statemachine.Final = st{}

// Third round (v1): the operator's HTTP API, and the stats promstowage reads
// (promstowage is a module of its own; its test checks its names).
var (
	_ func(*reservations.Store, *repo.Repo, ...httpapi.Option) http.Handler = httpapi.New
	_ func(*slotqueue.Queue) httpapi.Option                                 = httpapi.WithQueue
	_ func(string) httpapi.Option                                           = httpapi.WithToken
	_ func(*slog.Logger) httpapi.Option                                     = httpapi.WithLogger
	_ func(*repo.Repo) repo.Stats                                           = (*repo.Repo).Stats
	_ func(*repo.Repo, ctx) (uint64, error)                                 = (*repo.Repo).CountBlocks
	_                                                                       = repo.Stats{
		Commits: 0, Changes: 0, WriteFailures: 0, Conflicts: 0,
		CommitSeconds: repo.Histogram{Bounds: []float64{}, Counts: []uint64{}, Count: 0, Sum: 0},
		GroupSize:     repo.Histogram{}, RetriesPerCall: []uint64{},
	}
)

// Third round (v1): the repo's public transaction.
var (
	_ func(*repo.Repo, ctx, func(*repo.Tx) error) error                      = (*repo.Repo).Update
	_ func(*repo.Repo, ctx, func(*repo.Tx) error) error                      = (*repo.Repo).View
	_ func(*repo.Tx, datastore.Key) ([]byte, error)                          = (*repo.Tx).Get
	_ func(*repo.Tx, datastore.Key) (bool, error)                            = (*repo.Tx).Has
	_ func(*repo.Tx, datastore.Key, []byte) error                            = (*repo.Tx).Put
	_ func(*repo.Tx, datastore.Key) error                                    = (*repo.Tx).Delete
	_ func(*repo.Tx, datastore.Key, func(datastore.Key, []byte) error) error = (*repo.Tx).Scan
	_ func(*repo.Tx, uint64) error                                           = (*repo.Tx).Reserve
	_ func(*repo.Tx, uint64) error                                           = (*repo.Tx).Release
	_ func(*repo.Tx, datastore.Key, []byte) error                            = (*repo.Tx).PutBlock
	_ func(*repo.Tx, datastore.Key) error                                    = (*repo.Tx).DeleteBlock
	_ func(*repo.Tx) repo.Quota                                              = (*repo.Tx).Quota
	_ error                                                                  = repo.ErrReservedKey
	_ error                                                                  = repo.ErrReadOnly
	_ error                                                                  = repo.ErrPanic
)

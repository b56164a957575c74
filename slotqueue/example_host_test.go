package slotqueue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
	"github.com/stowage/stowage/slotqueue"
	"github.com/stowage/stowage/statemachine"
)

// sale is the subject of one slot's state machine.
type sale struct {
	store *reservations.Store
	res   reservations.Reservation
}

type (
	saleMachine = statemachine.Machine[*sale]
	saleState   = statemachine.State[*sale]
)

// storing writes the slot's three blocks; each PutBlock moves its bytes
// from the reservation to the repo's used bytes.
type storing struct{}

func (storing) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	for i := range 3 {
		key := datastore.NewKey(fmt.Sprintf("%s/%d/%d", s.res.RequestID, s.res.SlotIndex, i))
		if err := s.store.PutBlock(ctx, s.res.ID, key, make([]byte, s.res.SlotSize/3)); err != nil {
			return nil, err // to the machine's WithOnError
		}
	}
	return done{}, nil
}

// done ends the sale: its reservation is deleted (its blocks too) and every
// byte goes back to the offer. The error that led here (set by the
// machine's WithOnError) and a failed delete are the machine's Err.
type done struct{ err error }

func (done) Final() {}

func (st done) Run(ctx context.Context, m *saleMachine) (saleState, error) {
	s := m.Subject()
	return nil, errors.Join(st.err, s.store.DeleteReservation(ctx, s.res.ID))
}

// A small host, end to end: a queue of two workers is given 20 slots; each
// worker reserves its slot with ReserveSlot, passing item.Slot on as it is,
// and runs a state machine for the sale, which stores three blocks and
// deletes the reservation. Slots that are too big or pay too little are
// ignored; a failed sale's error reaches WithOnError, nothing is dropped.
func Example_host() {
	ctx := context.Background()
	// In memory for the example; repo.Open(ctx, dir) keeps it in LevelDB.
	r, err := repo.New(ctx, dssync.MutexWrap(datastore.NewMapDatastore()), repo.WithQuotaMaxBytes(1<<20))
	if err != nil {
		panic(err)
	}
	defer r.Close()
	store := reservations.New(r)
	offer, err := store.AddAvailability(ctx, reservations.Availability{
		TotalSize: 1 << 20, Duration: 3600, MinPrice: *uint256.NewInt(3600), MaxCollateral: *uint256.NewInt(100),
	})
	if err != nil {
		panic(err)
	}

	var mu sync.Mutex
	count := map[string]int{}
	tally := func(what string) {
		mu.Lock()
		defer mu.Unlock()
		count[what]++
	}
	q, err := slotqueue.New(func(ctx context.Context, it slotqueue.Item) error {
		res, err := store.ReserveSlot(ctx, it.Slot)
		if errors.Is(err, reservations.ErrNoAvailability) {
			tally("ignored") // too big, or too cheap
			return nil
		} else if err != nil {
			return err
		}
		m := statemachine.New(&sale{store: store, res: res}, statemachine.WithOnError(
			func(_ *saleMachine, _ saleState, err error) saleState { return done{err: err} }))
		m.Start(storing{})
		<-m.Done() // the worker is busy until the sale ends
		if err := m.Err(); err != nil {
			return err
		}
		tally("served")
		return nil
	}, slotqueue.WithMaxWorkers(2), slotqueue.WithOnError(func(it slotqueue.Item, err error) {
		fmt.Println("slot", it.Index, "failed:", err)
	}))
	if err != nil {
		panic(err)
	}
	q.Start()
	defer q.Stop()

	// 20 slots of four requests: 64 KiB slots paying 2 per second (fit),
	// 2 MiB slots (too big) and slots paying too little.
	expiry := time.Now().Add(time.Hour)
	for i, ask := range []stowage.StorageAsk{
		{Slots: 8, SlotSize: 64 << 10, Duration: 3600, Reward: *uint256.NewInt(2)},
		{Slots: 4, SlotSize: 2 << 20, Duration: 3600, Reward: *uint256.NewInt(2)},
		{Slots: 4, SlotSize: 64 << 10, Duration: 3600, Reward: *uint256.NewInt(0)},
		{Slots: 4, SlotSize: 96 << 10, Duration: 1800, Reward: *uint256.NewInt(4)},
	} {
		items, err := slotqueue.ItemsForRequest(stowage.RequestID{byte(i + 1)}, ask, expiry)
		if err != nil {
			panic(err)
		}
		if err := q.Push(items...); err != nil {
			panic(err)
		}
	}
	if err := q.WaitIdle(ctx); err != nil {
		panic(err)
	}
	fmt.Println("served:", count["served"], "ignored:", count["ignored"])
	a, err := store.Availability(ctx, offer.ID)
	if err != nil {
		panic(err)
	}
	fmt.Println("free:", a.Size, "of", a.TotalSize, "bytes; used:", r.Quota().Used)
	fmt.Println("verify:", store.Verify(ctx))
	// Output:
	// served: 12 ignored: 8
	// free: 1048576 of 1048576 bytes; used: 0
	// verify: <nil>
}

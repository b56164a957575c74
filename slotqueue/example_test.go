package slotqueue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/slotqueue"
)

// A queue with one worker serves the slots of two requests, the better
// paying request first. The slots of one request tie, and each queue serves
// them in an order of its own, so that hosts do not all race for slot 0.
func Example() {
	var wg sync.WaitGroup
	q, err := slotqueue.New(func(ctx context.Context, it slotqueue.Item) error {
		defer wg.Done()
		fmt.Printf("request %x\n", it.RequestID[0])
		return nil
	}, slotqueue.WithMaxWorkers(1))
	if err != nil {
		panic(err)
	}
	q.Start()
	defer q.Stop()

	cheap := stowage.StorageAsk{Slots: 2, SlotSize: 1 << 20, Duration: 3600, Reward: *uint256.NewInt(1)}
	rich := stowage.StorageAsk{Slots: 3, SlotSize: 1 << 20, Duration: 3600, Reward: *uint256.NewInt(5)}
	a, err := slotqueue.ItemsForRequest(stowage.RequestID{0xa}, cheap, time.Time{}) // no expiry
	if err != nil {
		panic(err)
	}
	b, err := slotqueue.ItemsForRequest(stowage.RequestID{0xb}, rich, time.Time{})
	if err != nil {
		panic(err)
	}
	wg.Add(len(a) + len(b))
	// One push: the worker sees all five slots at once.
	if err := q.Push(append(a, b...)...); err != nil {
		panic(err)
	}
	wg.Wait()
	// Output:
	// request b
	// request b
	// request b
	// request a
	// request a
}

func ExampleItem_Less() {
	generous := slotqueue.Item{Slot: stowage.Slot{Ask: stowage.StorageAsk{Duration: 100, Reward: *uint256.NewInt(1000), Collateral: *uint256.NewInt(1)}}}
	stingy := slotqueue.Item{Slot: stowage.Slot{Ask: stowage.StorageAsk{Duration: 1, Reward: *uint256.NewInt(1), Collateral: *uint256.NewInt(100000)}}}
	p := generous.Profitability()
	fmt.Println("profitability:", p.Dec())
	fmt.Println("generous first:", generous.Less(stingy))
	fmt.Println("stingy first:", stingy.Less(generous))
	// Output:
	// profitability: 100000
	// generous first: true
	// stingy first: false
}

// A full queue drops its lowest-priority item, which may be the one pushed.
func ExampleQueue_Push_full() {
	busy, done := make(chan struct{}), make(chan struct{})
	q, err := slotqueue.New(func(ctx context.Context, it slotqueue.Item) error {
		if it.Index == 99 {
			close(busy)
			<-done // keep the only worker busy so that pushed items wait
		}
		return nil
	}, slotqueue.WithMaxWorkers(1), slotqueue.WithMaxSize(3))
	if err != nil {
		panic(err)
	}
	q.Start()
	defer q.Stop()
	defer close(done)
	id := stowage.RequestID{1}
	if err := q.Push(slotqueue.Item{Slot: stowage.Slot{RequestID: id, Index: 99}}); err != nil {
		panic(err)
	}
	<-busy

	push := func(slot, reward uint64) {
		ask := stowage.StorageAsk{Duration: 10, Reward: *uint256.NewInt(reward)}
		it := slotqueue.Item{Slot: stowage.Slot{RequestID: id, Index: slot, Ask: ask}}
		if err := q.Push(it); err != nil {
			panic(err)
		}
	}
	push(0, 20)
	push(1, 10)
	push(2, 30)
	push(3, 25) // drops slot 1
	push(4, 5)  // dropped at once
	for _, it := range q.Items() {
		fmt.Println("slot", it.Index, "reward", it.Ask.Reward.Uint64())
	}
	// Output:
	// slot 2 reward 30
	// slot 3 reward 25
	// slot 0 reward 20
}

// A host serves a slot only while an availability has room for it. A slot
// it cannot serve yet goes back to the queue with ErrRequeue, marked Seen;
// once only seen slots wait, the queue takes nothing (instead of spinning on
// them) until the host adds room and calls Resume.
func Example_requeue() {
	var mu sync.Mutex
	room := 1 // slots the host's availabilities can take
	q, err := slotqueue.New(func(ctx context.Context, it slotqueue.Item) error {
		mu.Lock()
		defer mu.Unlock()
		if room == 0 {
			fmt.Println("no room for slot", it.Index)
			return fmt.Errorf("slot %d: %w", it.Index, slotqueue.ErrRequeue)
		}
		room--
		fmt.Println("serving slot", it.Index)
		return nil
	}, slotqueue.WithMaxWorkers(1))
	if err != nil {
		panic(err)
	}
	// A restarting host queues its backlog before anything is served.
	q.Pause()
	q.Start()
	defer q.Stop()
	id := stowage.RequestID{1}
	for slot, reward := range []uint64{30, 20, 10} {
		ask := stowage.StorageAsk{Duration: 10, Reward: *uint256.NewInt(reward)}
		it := slotqueue.Item{Slot: stowage.Slot{RequestID: id, Index: uint64(slot), Ask: ask}}
		if err := q.Push(it); err != nil {
			panic(err)
		}
	}
	q.Resume()
	ctx := context.Background()
	if err := q.WaitIdle(ctx); err != nil { // only seen slots wait
		panic(err)
	}
	fmt.Println("waiting:", q.Len())

	// An availability is added: the seen slots get another try.
	mu.Lock()
	room = 2
	mu.Unlock()
	q.Resume()
	if err := q.WaitIdle(ctx); err != nil {
		panic(err)
	}
	st := q.Stats()
	fmt.Println("processed:", st.Processed, "requeued:", st.Requeued, "waiting:", st.Waiting)
	// Output:
	// serving slot 0
	// no room for slot 1
	// no room for slot 2
	// waiting: 2
	// serving slot 1
	// serving slot 2
	// processed: 5 requeued: 2 waiting: 0
}

// Every item the queue drops without processing it is reported, with the
// reason: evicted from a full queue, or expired.
func ExampleWithOnDrop() {
	var now atomic.Int64 // the host's clock, unix seconds
	now.Store(1000)
	q, err := slotqueue.New(func(ctx context.Context, it slotqueue.Item) error { return nil },
		slotqueue.WithMaxWorkers(1), slotqueue.WithMaxSize(2),
		slotqueue.WithClock(func() time.Time { return time.Unix(now.Load(), 0) }),
		slotqueue.WithOnDrop(func(it slotqueue.Item, reason error) {
			fmt.Println("dropped slot", it.Index, "because", reason)
		}))
	if err != nil {
		panic(err)
	}
	q.Pause() // keep the items waiting
	q.Start()
	defer q.Stop()
	id := stowage.RequestID{1}
	push := func(slot, reward uint64, expiry int64) {
		ask := stowage.StorageAsk{Duration: 10, Reward: *uint256.NewInt(reward)}
		it := slotqueue.Item{Slot: stowage.Slot{RequestID: id, Index: slot, Ask: ask, Expiry: time.Unix(expiry, 0)}}
		if err := q.Push(it); err != nil {
			panic(err)
		}
	}
	push(0, 10, 2000)
	push(1, 20, 1500)
	push(2, 30, 2000) // the queue holds 2: slot 0 goes
	push(3, 40, 900)  // expired already
	now.Store(1500)
	fmt.Println("waiting:", q.Len()) // slot 1 has expired meanwhile
	// Output:
	// dropped slot 0 because slotqueue: item evicted from a full queue
	// dropped slot 3 because slotqueue: item expired
	// dropped slot 1 because slotqueue: item expired
	// waiting: 1
}

// A failed item and its error reach the function set with WithOnError (and
// the logger): an error is never only a count in Stats.
func ExampleWithOnError() {
	q, err := slotqueue.New(func(ctx context.Context, it slotqueue.Item) error {
		if it.Index == 1 {
			return errors.New("disk on fire")
		}
		return nil
	}, slotqueue.WithMaxWorkers(1), slotqueue.WithOnError(func(it slotqueue.Item, err error) {
		fmt.Println("slot", it.Index, "failed:", err)
	}))
	if err != nil {
		panic(err)
	}
	q.Start()
	defer q.Stop()
	items, err := slotqueue.ItemsForRequest(stowage.RequestID{1}, stowage.StorageAsk{Slots: 3}, time.Time{})
	if err != nil {
		panic(err)
	}
	if err := q.Push(items...); err != nil {
		panic(err)
	}
	if err := q.WaitIdle(context.Background()); err != nil { // WaitIdle waits for the OnError calls too
		panic(err)
	}
	fmt.Println("failed:", q.Stats().Failed)
	// Output:
	// slot 1 failed: disk on fire
	// failed: 1
}

package slotqueue_test

import (
	"context"
	"fmt"
	"sync"

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
	a, err := slotqueue.ItemsForRequest(stowage.RequestID{0xa}, cheap, 1_800_000_000)
	if err != nil {
		panic(err)
	}
	b, err := slotqueue.ItemsForRequest(stowage.RequestID{0xb}, rich, 1_800_000_000)
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
	generous := slotqueue.Item{Duration: 100, Reward: *uint256.NewInt(1000), Collateral: *uint256.NewInt(1)}
	stingy := slotqueue.Item{Duration: 1, Reward: *uint256.NewInt(1), Collateral: *uint256.NewInt(100000)}
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
		if it.SlotIndex == 99 {
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
	if err := q.Push(slotqueue.Item{RequestID: id, SlotIndex: 99}); err != nil {
		panic(err)
	}
	<-busy

	push := func(slot uint16, reward uint64) {
		it := slotqueue.Item{RequestID: id, SlotIndex: slot, Duration: 10, Reward: *uint256.NewInt(reward)}
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
		fmt.Println("slot", it.SlotIndex, "reward", it.Reward.Uint64())
	}
	// Output:
	// slot 2 reward 30
	// slot 3 reward 25
	// slot 0 reward 20
}

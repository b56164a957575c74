// Package slotqueue decides which slot a storage host serves next: a bounded
// priority queue of slots, most profitable first, processed by a small pool
// of workers.
//
// A storage request is cut into slots, and a host may serve any of them. When
// the host learns of a request it pushes the request's slots
// ([ItemsForRequest]) onto a [Queue]; the queue hands them one at a time to a
// [ProcessFunc] (typically: reserve space and start a sale), never running
// more than MaxWorkers at once. An [Item] is a [stowage.Slot] (RequestID,
// Index, Ask, Expiry) plus a Seen flag: a worker builds nothing, it hands
// item.Slot on as it is.
//
//	q, err := slotqueue.New(func(ctx context.Context, it slotqueue.Item) error {
//		res, err := store.ReserveSlot(ctx, it.Slot)
//		if err != nil {
//			return err
//		}
//		return startSale(ctx, it.Slot, res)
//	}, slotqueue.WithMaxWorkers(2), slotqueue.WithOnError(func(it slotqueue.Item, err error) {
//		log.Printf("slot %d of %s: %v", it.Index, it.RequestID, err)
//	}))
//	if err != nil { ... }
//	q.Start()
//	defer q.Stop()
//	items, err := slotqueue.ItemsForRequest(id, ask, expiry) // expiry: a time.Time, zero for none
//	if err != nil { ... }
//	err = q.Push(items...)
//
// # Priority
//
// [Item.Less] orders slots: higher profitability (Duration × Reward) first,
// then lower collateral, then later expiry, then smaller slot size, each rule
// only breaking ties of the one before. Slots still tied (such as the slots
// of one request) are served in an order each queue draws at random when it
// is made, so hosts that learn of the same request each start on a different
// slot rather than all racing for slot 0. Within one queue that order is
// fixed: what it serves next and what it drops never depend on push order.
//
// # Bounds
//
// At most [Queue.Cap] items wait ([WithMaxSize]: default 128, at most
// 65535). Pushing one more
// drops the lowest-priority waiting item, which may be the one just pushed:
// a full queue never drops an item while keeping a lower one. Pushing a
// slot that is already waiting fails with [ErrItemExists]; a push is all or
// nothing.
//
// # Workers
//
// [Queue.Start] starts MaxWorkers workers (default 3). A free worker takes the
// highest-priority waiting item and calls the process function; it is busy
// until the function returns. An error or a panic from the process function
// goes, with its item, to the function set with [WithOnError] and to the
// logger ([WithLogger]), and the worker goes on: a failure is never only a
// count in [Queue.Stats]. [Queue.Stop] cancels the
// context passed to running process functions and waits for them to return;
// items still waiting stay queued, and a later Start serves them. Pushing to a
// stopped queue fails with [ErrNotRunning]. An item taken by a worker is no
// longer waiting; it comes back only if its process function asks for it.
//
// # Requeue, Seen and Resume
//
// A host often learns of more slots than it can serve right now: no
// availability fits. Its process function then returns an error wrapping
// [ErrRequeue]; the item goes back to the queue marked [Item.Seen] (unless
// its slot was deleted meanwhile). Seen items rank after every unseen one,
// and while the best waiting item is seen the workers take nothing: the
// queue waits instead of spinning on slots it cannot serve. An unseen item
// pushed meanwhile is served as usual. When the host can serve more (an
// availability is added or grows, a sale ends and gives its space back) it
// calls [Queue.Resume], which clears every Seen flag, so each waiting slot
// gets one more try:
//
//	q, err := slotqueue.New(func(ctx context.Context, it slotqueue.Item) error {
//		res, err := store.ReserveSlot(ctx, it.Slot)
//		if errors.Is(err, reservations.ErrNoAvailability) {
//			return fmt.Errorf("%w: %w", slotqueue.ErrRequeue, err)
//		} else if err != nil {
//			return err
//		}
//		return startSale(ctx, it.Slot, res)
//	})
//	...
//	_, err = store.AddAvailability(ctx, a)
//	q.Resume()
//
// [Queue.Pause] stops workers from taking items by hand, and Resume lets
// them go on. Both work whether or not the queue runs: a restarting host
// calls Pause, Start, pushes its backlog, then Resume, so that the best of
// the backlog is served first rather than whatever was pushed first.
//
// # Expiry and drops
//
// An item whose Expiry is at or before the queue's clock ([WithClock],
// default time.Now) is dropped: it is never handed to a worker, and never
// reported by Len, Items, Contains or Item. An item with a zero Expiry never
// expires (and ranks as the latest expiry of all). Each
// item dropped unprocessed, expired or evicted from a full queue, is passed to
// the function set with [WithOnDrop], with [ErrExpired] or [ErrEvicted];
// Push still returns nil.
//
// # Idle and metrics
//
// [Queue.WaitIdle] returns once no process function runs and no worker may
// take an item (none waits, the queue is paused or stopped, or only seen items
// wait): a host's tests and shutdown wait on it instead of polling.
// [Queue.Stats] reports how many items wait and are being processed, and
// counts pushes, process outcomes and drops; [Queue.Items] lists the waiting
// items in serving order, without changing anything (an operator's view of
// the queue).
//
// # Caveats
//
//   - A ProcessFunc must not call Stop: Stop waits for it. Nor must the
//     OnError function, which runs on the worker.
//   - The OnDrop function runs on the goroutine that caused the drop, after
//     the queue's lock is released: it may call the queue (not WaitIdle,
//     which waits for every drop to be reported), but the goroutine (a
//     Push, a worker) waits for it.
//   - The clock set with WithClock is called with the queue locked and must
//     not call the queue.
//   - Expiry is checked whenever the queue is called or a worker takes an
//     item, not on a timer: an idle queue reports an expired item the next
//     time it is used.
//   - Resume re-sorts the waiting items, O(n); the other operations are
//     O(log n).
//
// # Design
//
// The ordering, bounding, expiry and indexing are done by a synchronous
// core (a min-max heap in serving order, Go maps by slot and by request, and
// a heap by Expiry) that the workers only wrap: push, pop, drop and delete
// are O(log n), membership is O(1), and deleting a request costs
// O(k log n) for its k waiting slots.
package slotqueue

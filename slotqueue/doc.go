// Package slotqueue decides which slot a storage host serves next: a bounded
// priority queue of slots, most profitable first, processed by a small pool
// of workers.
//
// A storage request is cut into slots, and a host may serve any of them. When
// the host learns of a request it pushes the request's slots
// ([ItemsForRequest]) onto a [Queue]; the queue hands them one at a time to a
// [ProcessFunc] (typically: reserve space and start a sale), never running
// more than MaxWorkers at once.
//
//	q, err := slotqueue.New(func(ctx context.Context, it slotqueue.Item) error {
//		return startSale(ctx, it)
//	}, slotqueue.WithMaxWorkers(2))
//	if err != nil { ... }
//	q.Start()
//	defer q.Stop()
//	items, err := slotqueue.ItemsForRequest(id, ask, expiry)
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
// At most MaxSize items wait (default 128, at most 65535). Pushing one more
// drops the lowest-priority waiting item, which may be the one just pushed:
// a full queue never drops an item while keeping a lower one. Pushing a
// slot that is already waiting fails with [ErrItemExists]; a push is all or
// nothing.
//
// # Workers
//
// [Queue.Start] starts MaxWorkers workers (default 3). A free worker takes the
// highest-priority waiting item and calls the process function; it is busy
// until the function returns. Errors and panics from the process function are
// logged (see [WithLogger]) and the worker goes on. [Queue.Stop] cancels the
// context passed to running process functions and waits for them to return;
// items still waiting stay queued, and a later Start serves them. Pushing to a
// stopped queue fails with [ErrNotRunning]. Every item is processed at most
// once: an item being processed when Stop is called is not re-queued.
//
// # Design
//
// The ordering, bounding and indexing are done by a synchronous core (a
// min-max heap of items with Go maps by slot and by request) that the
// workers only wrap: push, pop, drop and delete are O(log n), membership is
// O(1), and deleting a request costs O(k log n) for its k waiting slots.
package slotqueue

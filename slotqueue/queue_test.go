package slotqueue_test

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holiman/uint256"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/slotqueue"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const waitFor = 5 * time.Second

func epoch() time.Time { return time.Unix(0, 0) }

// farFuture is an Expiry no test reaches: 2100-01-01.
var farFuture = time.Unix(4_102_444_800, 0)

// at is the Expiry n seconds after the Unix epoch; zero (no expiry) for 0.
func at(n uint64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(int64(n), 0)
}

// held is a request whose items the recorder's process function keeps busy
// until released or cancelled.
var held = stowage.RequestID{0xff}

// recorder is a process function that records what it was given.
type recorder struct {
	started chan slotqueue.Item // each item as a worker takes it (the first 1024)
	release chan struct{}       // close to let held items finish

	mu        sync.Mutex
	processed []slotqueue.Item
	calls     map[slotqueue.Item]int
}

func newRecorder() *recorder {
	return &recorder{
		started: make(chan slotqueue.Item, 1024),
		release: make(chan struct{}),
		calls:   map[slotqueue.Item]int{},
	}
}

func (r *recorder) process(ctx context.Context, it slotqueue.Item) error {
	select {
	case r.started <- it:
	default:
	}
	if it.RequestID == held {
		select {
		case <-r.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.processed = append(r.processed, it)
	r.calls[it]++
	return nil
}

func (r *recorder) done() []slotqueue.Item {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.processed)
}

func (r *recorder) waitDone(t *testing.T, n int) []slotqueue.Item {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.done()) >= n }, waitFor, time.Millisecond)
	return r.done()
}

// newQueue returns a started queue that is stopped when the test ends. Its
// clock stands at the Unix epoch, so that no item expires, unless opts set
// another.
func newQueue(t *testing.T, process slotqueue.ProcessFunc, opts ...slotqueue.Option) *slotqueue.Queue {
	t.Helper()
	q, err := slotqueue.New(process, append([]slotqueue.Option{slotqueue.WithClock(epoch)}, opts...)...)
	require.NoError(t, err)
	q.Start()
	t.Cleanup(q.Stop)
	return q
}

// holdWorkers gives every worker a held item, so that items pushed afterwards
// stay waiting.
func holdWorkers(t *testing.T, q *slotqueue.Queue, r *recorder) {
	t.Helper()
	for i := range q.MaxWorkers() {
		require.NoError(t, q.Push(item(held, uint64(i), 1)))
		receive(t, r.started)
	}
}

func receive[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitFor):
		t.Fatal("timed out waiting on a channel")
		panic("unreachable")
	}
}

// item returns a slot whose priority grows with reward.
func item(request stowage.RequestID, slot uint64, reward uint64) slotqueue.Item {
	return newItem(request, slot, stowage.StorageAsk{
		SlotSize:   1 << 20,
		Duration:   100,
		Reward:     *uint256.NewInt(reward),
		Collateral: *uint256.NewInt(10),
	}, farFuture)
}

// requireByPriority fails unless no item is served before one it is Less
// than.
func requireByPriority(t *testing.T, items []slotqueue.Item) {
	t.Helper()
	for i := 1; i < len(items); i++ {
		require.False(t, items[i].Less(items[i-1]), "item %d is served after item %d but is Less", i, i-1)
	}
}

// byPriority sorts items with distinct priorities.
func byPriority(items []slotqueue.Item) []slotqueue.Item {
	s := slices.Clone(items)
	slices.SortFunc(s, func(a, b slotqueue.Item) int {
		if a.Less(b) {
			return -1
		}
		return 1
	})
	return s
}

func TestNew_NotRunningAtFirstAndStartsEmpty(t *testing.T) {
	q, err := slotqueue.New(newRecorder().process)
	require.NoError(t, err)
	assert.False(t, q.Running())
	assert.Zero(t, q.Len())
	assert.Empty(t, q.Items())
	assert.Zero(t, q.ActiveWorkers())
}

func TestNew_Defaults(t *testing.T) {
	q, err := slotqueue.New(newRecorder().process)
	require.NoError(t, err)
	assert.Equal(t, slotqueue.DefaultMaxSize, q.Cap())
	assert.Equal(t, slotqueue.DefaultMaxWorkers, q.MaxWorkers())
}

func TestNew_Size(t *testing.T) {
	q, err := slotqueue.New(newRecorder().process, slotqueue.WithMaxSize(10))
	require.NoError(t, err)
	assert.Equal(t, 10, q.Cap())
}

func TestNew_ConfigErrors(t *testing.T) {
	process := newRecorder().process
	tests := []struct {
		name    string
		process slotqueue.ProcessFunc
		opts    []slotqueue.Option
	}{
		{"nil process", nil, nil},
		{"zero workers", process, []slotqueue.Option{slotqueue.WithMaxWorkers(0)}},
		{"negative workers", process, []slotqueue.Option{slotqueue.WithMaxWorkers(-1)}},
		{"zero size", process, []slotqueue.Option{slotqueue.WithMaxSize(0)}},
		{"negative size", process, []slotqueue.Option{slotqueue.WithMaxSize(-1)}},
		{"size over 65535", process, []slotqueue.Option{slotqueue.WithMaxSize(65536)}},
		{"more workers than size", process, []slotqueue.Option{slotqueue.WithMaxSize(4), slotqueue.WithMaxWorkers(5)}},
		{"default workers over size", process, []slotqueue.Option{slotqueue.WithMaxSize(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := slotqueue.New(tt.process, tt.opts...)
			assert.ErrorIs(t, err, slotqueue.ErrInvalidConfig)
			assert.Nil(t, q)
		})
	}

	t.Run("limits are allowed", func(t *testing.T) {
		_, err := slotqueue.New(process, slotqueue.WithMaxSize(65535), slotqueue.WithMaxWorkers(1))
		assert.NoError(t, err)
		_, err = slotqueue.New(process, slotqueue.WithMaxSize(1), slotqueue.WithMaxWorkers(1))
		assert.NoError(t, err)
	})
}

func TestStartStop_Idempotent(t *testing.T) {
	q, err := slotqueue.New(newRecorder().process)
	require.NoError(t, err)
	q.Stop()
	assert.False(t, q.Running())
	q.Start()
	q.Start()
	assert.True(t, q.Running())
	q.Stop()
	q.Stop()
	assert.False(t, q.Running())
	goleak.VerifyNone(t)
}

func TestPush_RefusedWhenNotRunning(t *testing.T) {
	q, err := slotqueue.New(newRecorder().process)
	require.NoError(t, err)
	assert.ErrorIs(t, q.Push(item(stowage.RequestID{1}, 0, 1)), slotqueue.ErrNotRunning)
	assert.Zero(t, q.Len())
}

func TestPush_ProcessesItems(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process)
	items, err := slotqueue.ItemsForRequest(stowage.RequestID{1}, testAsk(5), time.Time{})
	require.NoError(t, err)
	require.NoError(t, q.Push(items...))
	assert.ElementsMatch(t, items, r.waitDone(t, 5))
}

func TestPush_PastWorkers(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(2))
	for i := range 5 {
		require.NoError(t, q.Push(item(held, uint64(i), uint64(i))))
	}
	require.Eventually(t, func() bool { return q.ActiveWorkers() == 2 }, waitFor, time.Millisecond)
	assert.Equal(t, 3, q.Len())
}

func TestWorkers_NeverExceedMax(t *testing.T) {
	var active, peak atomic.Int32
	release := make(chan struct{})
	var finished atomic.Int32
	q := newQueue(t, func(ctx context.Context, _ slotqueue.Item) error {
		n := active.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		active.Add(-1)
		finished.Add(1)
		return nil
	}, slotqueue.WithMaxWorkers(3))

	for i := range 20 {
		require.NoError(t, q.Push(item(stowage.RequestID{1}, uint64(i), uint64(i))))
	}
	require.Eventually(t, func() bool { return active.Load() == 3 }, waitFor, time.Millisecond)
	assert.Equal(t, 3, q.ActiveWorkers())
	assert.Equal(t, 17, q.Len())
	close(release)
	require.Eventually(t, func() bool { return finished.Load() == 20 }, waitFor, time.Millisecond)
	assert.Equal(t, int32(3), peak.Load())
}

func TestWorkers_FreedWhenProcessingCompletes(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process)
	holdWorkers(t, q, r)
	assert.Equal(t, 3, q.ActiveWorkers())
	close(r.release)
	r.waitDone(t, 3)
	require.Eventually(t, func() bool { return q.ActiveWorkers() == 0 }, waitFor, time.Millisecond)
}

func TestPush_DuplicatesRefused(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1))
	holdWorkers(t, q, r)
	a, b, c := item(stowage.RequestID{1}, 0, 1), item(stowage.RequestID{1}, 1, 1), item(stowage.RequestID{2}, 0, 1)

	require.NoError(t, q.Push(a))
	assert.ErrorIs(t, q.Push(a), slotqueue.ErrItemExists, "already queued")

	same := a
	same.Ask.Reward.SetUint64(1000)
	assert.ErrorIs(t, q.Push(same), slotqueue.ErrItemExists, "same slot, other terms")

	err := q.Push(b, a)
	assert.ErrorIs(t, err, slotqueue.ErrItemExists, "one of a batch")
	assert.ErrorContains(t, err, a.RequestID.String()+" slot 0")
	assert.False(t, q.Contains(b.RequestID, b.Index), "a failed push pushes nothing")

	assert.ErrorIs(t, q.Push(c, c), slotqueue.ErrItemExists, "twice in a batch")
	assert.False(t, q.Contains(c.RequestID, c.Index))
	assert.Equal(t, []slotqueue.Item{a}, q.Items())
}

func TestPush_PastMaxSizeDropsTheLowest(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1), slotqueue.WithMaxSize(4))
	holdWorkers(t, q, r)
	id := stowage.RequestID{1}
	for i, reward := range []uint64{20, 10, 40, 30} {
		require.NoError(t, q.Push(item(id, uint64(i), reward)))
	}

	require.NoError(t, q.Push(item(id, 4, 25)))
	assert.Equal(t, q.Cap(), q.Len())
	assert.Equal(t, []slotqueue.Item{item(id, 2, 40), item(id, 3, 30), item(id, 4, 25), item(id, 0, 20)}, q.Items(),
		"the lowest, not the last pushed or the last leaf, was dropped")

	require.NoError(t, q.Push(item(id, 5, 5)), "dropping the pushed item is not an error")
	assert.False(t, q.Contains(id, 5))
	assert.Equal(t, []slotqueue.Item{item(id, 2, 40), item(id, 3, 30), item(id, 4, 25), item(id, 0, 20)}, q.Items())
}

func TestPush_BatchPastMaxSizeKeepsTheBest(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1), slotqueue.WithMaxSize(4))
	holdWorkers(t, q, r)
	var batch []slotqueue.Item
	for i := range 10 {
		batch = append(batch, item(stowage.RequestID{1}, uint64(i), uint64(i*7%10)))
	}
	require.NoError(t, q.Push(batch...))
	assert.Equal(t, byPriority(batch)[:4], q.Items())
}

func TestDelete(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1))
	holdWorkers(t, q, r)
	a, b := item(stowage.RequestID{1}, 0, 1), item(stowage.RequestID{1}, 1, 2)
	require.NoError(t, q.Push(a, b))

	t.Run("by item", func(t *testing.T) {
		q.Delete(a.RequestID, a.Index)
		assert.False(t, q.Contains(a.RequestID, a.Index))
		assert.Equal(t, []slotqueue.Item{b}, q.Items())
	})
	t.Run("by request and slot", func(t *testing.T) {
		q.Delete(stowage.RequestID{1}, 1)
		assert.Zero(t, q.Len())
	})
	t.Run("an unknown slot is ignored", func(t *testing.T) {
		q.Delete(stowage.RequestID{7}, 7)
		assert.Zero(t, q.Len())
	})
}

func TestDeleteRequest(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1))
	holdWorkers(t, q, r)
	one, err := slotqueue.ItemsForRequest(stowage.RequestID{1}, testAsk(3), time.Time{})
	require.NoError(t, err)
	two, err := slotqueue.ItemsForRequest(stowage.RequestID{2}, testAsk(2), time.Time{})
	require.NoError(t, err)
	require.NoError(t, q.Push(append(one, two...)...))

	q.DeleteRequest(stowage.RequestID{1})
	assert.ElementsMatch(t, two, q.Items())
	for i := range uint64(3) {
		assert.False(t, q.Contains(stowage.RequestID{1}, i))
	}
	q.DeleteRequest(stowage.RequestID{1}) // nothing left: no-op
	assert.Equal(t, 2, q.Len())
}

func TestContains(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1))
	holdWorkers(t, q, r)
	require.NoError(t, q.Push(item(stowage.RequestID{1}, 3, 1)))
	assert.True(t, q.Contains(stowage.RequestID{1}, 3))
	assert.False(t, q.Contains(stowage.RequestID{1}, 4))
	assert.False(t, q.Contains(stowage.RequestID{2}, 3))
	assert.False(t, q.Contains(held, 0), "an item being processed is not waiting")
}

func TestItem_FromExistingRequest(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1))
	holdWorkers(t, q, r)
	id, ask := stowage.RequestID{1}, testAsk(4)
	require.NoError(t, q.Push(newItem(id, 0, ask, farFuture), newItem(id, 2, ask, farFuture)))

	got, ok := q.Item(id, 3)
	require.True(t, ok)
	assert.Equal(t, newItem(id, 3, ask, farFuture), got)
	require.NoError(t, q.Push(got))

	_, ok = q.Item(stowage.RequestID{2}, 0)
	assert.False(t, ok, "no slot of the request is queued")
}

func TestItem_AWaitingSlotIsItself(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1))
	holdWorkers(t, q, r)
	a := item(stowage.RequestID{1}, 0, 1)
	b := item(stowage.RequestID{1}, 5, 2) // other terms than a
	b.Seen = true
	require.NoError(t, q.Push(a, b))

	got, ok := q.Item(b.RequestID, b.Index)
	require.True(t, ok)
	assert.Equal(t, b, got, "the waiting item, Seen included, not one rebuilt from a sibling")
}

func TestProcess_RunsOnceAnItemIsAddedAndOnlyOnce(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1))
	a, b := item(stowage.RequestID{1}, 0, 1), item(stowage.RequestID{1}, 1, 1)
	require.NoError(t, q.Push(a))
	assert.Equal(t, a, receive(t, r.started))
	r.waitDone(t, 1)
	// The only worker takes b after it has finished with a: had a been
	// handed out again, it would show up before b.
	require.NoError(t, q.Push(b))
	assert.Equal(t, []slotqueue.Item{a, b}, r.waitDone(t, 2))
	assert.Equal(t, map[slotqueue.Item]int{a: 1, b: 1}, r.calls)
	assert.Zero(t, q.Len())
}

func TestProcess_ItemsInPriorityOrder(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1))
	holdWorkers(t, q, r)
	rng := rand.New(rand.NewPCG(1, 2))
	var items []slotqueue.Item
	for i := range 30 {
		it := item(stowage.RequestID{byte(i % 3)}, uint64(i), rng.Uint64N(5))
		it.Ask.Collateral.SetUint64(rng.Uint64N(3))
		it.Expiry = at(rng.Uint64N(3))
		it.Ask.SlotSize = rng.Uint64N(3)
		items = append(items, it)
	}
	for _, it := range items { // one at a time: the order of pushes must not matter
		require.NoError(t, q.Push(it))
	}
	// Ties under the four rules are broken in an order of the queue's own,
	// so check the order rule by rule rather than against a sort.
	want := q.Items()
	require.ElementsMatch(t, items, want)
	requireByPriority(t, want)

	close(r.release)
	done := r.waitDone(t, 1+len(items))
	assert.Equal(t, want, done[1:])
}

// logBuffer collects log output from several goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestProcess_ErrorIsLoggedAndWorkerGoesOn(t *testing.T) {
	var logs logBuffer
	r := newRecorder()
	q := newQueue(t, func(ctx context.Context, it slotqueue.Item) error {
		if it.Index == 0 {
			return errors.New("disk on fire")
		}
		return r.process(ctx, it)
	}, slotqueue.WithMaxWorkers(1), slotqueue.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))

	require.NoError(t, q.Push(item(stowage.RequestID{1}, 0, 2), item(stowage.RequestID{1}, 1, 1)))
	assert.Equal(t, []slotqueue.Item{item(stowage.RequestID{1}, 1, 1)}, r.waitDone(t, 1))
	assert.Contains(t, logs.String(), "disk on fire")
}

func TestProcess_PanicIsRecoveredAndWorkerFreed(t *testing.T) {
	var logs logBuffer
	r := newRecorder()
	q := newQueue(t, func(ctx context.Context, it slotqueue.Item) error {
		if it.Index == 0 {
			panic("boom")
		}
		return r.process(ctx, it)
	}, slotqueue.WithMaxWorkers(1), slotqueue.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))

	require.NoError(t, q.Push(item(stowage.RequestID{1}, 0, 2), item(stowage.RequestID{1}, 1, 1)))
	assert.Equal(t, []slotqueue.Item{item(stowage.RequestID{1}, 1, 1)}, r.waitDone(t, 1))
	assert.Contains(t, logs.String(), "boom")
	assert.Contains(t, logs.String(), "panicked")
	require.Eventually(t, func() bool { return q.ActiveWorkers() == 0 }, waitFor, time.Millisecond)
}

// A failed item and its error reach the OnError function, panics
// included, before the worker counts as idle; requeues and successes do
// not.
func TestWithOnError_GetsEveryFailedItemAndItsError(t *testing.T) {
	type failure struct {
		item slotqueue.Item
		err  error
	}
	var mu sync.Mutex
	var got []failure
	fire := errors.New("disk on fire")
	q := newQueue(t, func(ctx context.Context, it slotqueue.Item) error {
		switch it.Index {
		case 0:
			return fmt.Errorf("slot 0: %w", fire)
		case 1:
			panic("boom")
		case 2:
			return slotqueue.ErrRequeue
		}
		return nil
	}, slotqueue.WithMaxWorkers(2), slotqueue.WithOnError(func(it slotqueue.Item, err error) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, failure{it, err})
	}))
	id := stowage.RequestID{1}
	items := []slotqueue.Item{item(id, 0, 4), item(id, 1, 3), item(id, 2, 2), item(id, 3, 1)}
	require.NoError(t, q.Push(items...))
	require.NoError(t, q.WaitIdle(context.Background()))

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, got, 2, "WaitIdle returned before every OnError call")
	slices.SortFunc(got, func(a, b failure) int { return cmp.Compare(a.item.Index, b.item.Index) })
	assert.Equal(t, items[0], got[0].item)
	assert.ErrorIs(t, got[0].err, fire)
	assert.Equal(t, items[1], got[1].item)
	assert.ErrorContains(t, got[1].err, "panic: boom")
	st := q.Stats()
	assert.Equal(t, uint64(2), st.Failed)
	assert.Equal(t, uint64(1), st.Requeued)
}

// Errors of calls that Stop cancelled reach OnError too: nothing vanishes.
func TestWithOnError_CancelledByStop(t *testing.T) {
	started := make(chan struct{})
	errs := make(chan error, 1)
	q, err := slotqueue.New(func(ctx context.Context, _ slotqueue.Item) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}, slotqueue.WithOnError(func(_ slotqueue.Item, err error) { errs <- err }))
	require.NoError(t, err)
	q.Start()
	require.NoError(t, q.Push(item(stowage.RequestID{1}, 0, 1)))
	<-started
	q.Stop()
	assert.ErrorIs(t, receive(t, errs), context.Canceled)
}

func TestStop_CancelsInFlightProcessingAndWaits(t *testing.T) {
	started := make(chan struct{}, 3)
	var returned atomic.Int32
	q, err := slotqueue.New(func(ctx context.Context, _ slotqueue.Item) error {
		started <- struct{}{}
		<-ctx.Done()
		returned.Add(1)
		return ctx.Err()
	}, slotqueue.WithMaxWorkers(3))
	require.NoError(t, err)
	q.Start()
	for i := range 3 {
		require.NoError(t, q.Push(item(stowage.RequestID{1}, uint64(i), 1)))
	}
	for range 3 {
		receive(t, started)
	}

	q.Stop()
	assert.Equal(t, int32(3), returned.Load(), "Stop returned before the process functions")
	assert.Zero(t, q.ActiveWorkers())
	assert.False(t, q.Running())
	goleak.VerifyNone(t)
}

func TestRestart_AfterStopKeepsWaitingItems(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1))
	holdWorkers(t, q, r)
	items := []slotqueue.Item{item(stowage.RequestID{1}, 0, 1), item(stowage.RequestID{1}, 1, 3), item(stowage.RequestID{1}, 2, 2)}
	require.NoError(t, q.Push(items...))

	q.Stop()
	assert.Equal(t, 3, q.Len(), "waiting items stay queued")
	assert.False(t, q.Contains(held, 0), "the cancelled item is not put back")
	assert.ErrorIs(t, q.Push(item(stowage.RequestID{2}, 0, 1)), slotqueue.ErrNotRunning)
	assert.Empty(t, r.done())

	q.Start()
	assert.Equal(t, byPriority(items), r.waitDone(t, 3))
}

func TestConcurrentPushersDeletersAndRestarts(t *testing.T) {
	const (
		pushers   = 4
		perPusher = 300
		workers   = 3
	)
	var mu sync.Mutex
	calls := map[slotqueue.Item]int{}
	pushed := map[slotqueue.Item]bool{}
	var active, peak atomic.Int32
	q := newQueue(t, func(ctx context.Context, it slotqueue.Item) error {
		n := active.Add(1)
		defer active.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		mu.Lock()
		calls[it]++
		mu.Unlock()
		return nil
	}, slotqueue.WithMaxWorkers(workers), slotqueue.WithMaxSize(16))

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for p := range pushers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(p), 1))
			for i := 0; i < perPusher; i += 3 { // unique slots, in small batches
				batch := []slotqueue.Item{
					item(stowage.RequestID{byte(p)}, uint64(i), rng.Uint64N(100)),
					item(stowage.RequestID{byte(p)}, uint64(i+1), rng.Uint64N(100)),
					item(stowage.RequestID{byte(p)}, uint64(i+2), rng.Uint64N(100)),
				}
				if err := q.Push(batch...); err != nil {
					assert.ErrorIs(t, err, slotqueue.ErrNotRunning)
					continue
				}
				mu.Lock()
				for _, it := range batch {
					pushed[it] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Go(func() { // deleter
		rng := rand.New(rand.NewPCG(9, 9))
		for {
			select {
			case <-stop:
				return
			default:
			}
			id := stowage.RequestID{byte(rng.IntN(pushers))}
			if rng.IntN(20) == 0 {
				q.DeleteRequest(id)
			} else {
				q.Delete(id, uint64(rng.IntN(perPusher)))
			}
		}
	})
	wg.Go(func() { // reader
		for {
			select {
			case <-stop:
				return
			default:
			}
			assert.LessOrEqual(t, q.Len(), q.Cap())
			assert.LessOrEqual(t, q.ActiveWorkers(), workers)
			if it, ok := q.Item(stowage.RequestID{1}, 0); ok {
				assert.Equal(t, stowage.RequestID{1}, it.RequestID)
			}
			_ = q.Contains(stowage.RequestID{2}, 5)
			assert.LessOrEqual(t, len(q.Items()), q.Cap())
		}
	})
	var restarts sync.WaitGroup
	restarts.Go(func() {
		for range 20 {
			q.Stop()
			q.Start()
		}
	})
	restarts.Wait() // the queue is running again
	close(stop)
	wg.Wait()
	// Drain what the pushers left first: pushed onto a full queue, last
	// (the lowest reward) would be evicted at once.
	require.Eventually(t, func() bool { return q.Len() == 0 }, waitFor, time.Millisecond)
	last := item(stowage.RequestID{9}, 0, 1)
	require.NoError(t, q.Push(last))
	require.Eventually(t, func() bool { return q.Len() == 0 && q.ActiveWorkers() == 0 }, waitFor, time.Millisecond)
	q.Stop()

	assert.LessOrEqual(t, peak.Load(), int32(workers))
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, 1, calls[last])
	for it, n := range calls {
		assert.Equal(t, 1, n, "%s slot %d processed more than once", it.RequestID, it.Index)
		assert.True(t, pushed[it] || it == last, "%s slot %d processed but never pushed", it.RequestID, it.Index)
	}
}

// By default every queue draws its own tie order; WithTieSeed repeats one.
func TestWithTieSeed_RepeatsTheOrderOfTies(t *testing.T) {
	ask := stowage.StorageAsk{Slots: 64, SlotSize: 1, Duration: 1}
	items, err := slotqueue.ItemsForRequest(stowage.RequestID{1}, ask, time.Unix(1, 0))
	require.NoError(t, err)
	order := func(opts ...slotqueue.Option) []slotqueue.Item {
		r := newRecorder()
		q := newQueue(t, r.process, append(opts, slotqueue.WithMaxWorkers(1))...)
		holdWorkers(t, q, r)
		require.NoError(t, q.Push(items...))
		return q.Items()
	}
	seeded := order(slotqueue.WithTieSeed(7))
	assert.Equal(t, seeded, order(slotqueue.WithTieSeed(7)))
	assert.NotEqual(t, seeded, order(slotqueue.WithTieSeed(8)))
	assert.NotEqual(t, order(), order(), "two unseeded queues agree by chance: 1 in 64!")
}

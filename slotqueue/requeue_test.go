package slotqueue_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/slotqueue"
)

var errNoRoom = fmt.Errorf("no availability fits: %w", slotqueue.ErrRequeue)

func seen(it slotqueue.Item) slotqueue.Item {
	it.Seen = true
	return it
}

// drops records what WithOnDrop reports.
type drops struct {
	mu  sync.Mutex
	got []dropped
}

type dropped struct {
	item   slotqueue.Item
	reason error
}

func (d *drops) onDrop(it slotqueue.Item, reason error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.got = append(d.got, dropped{it, reason})
}

func (d *drops) all() []dropped {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]dropped(nil), d.got...)
}

// host is a process function that serves a slot only while it has room,
// and requeues it otherwise.
type host struct {
	mu    sync.Mutex
	room  int
	calls []slotqueue.Item
}

func (h *host) process(_ context.Context, it slotqueue.Item) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.calls = append(h.calls, it)
	if h.room == 0 {
		return errNoRoom
	}
	h.room--
	return nil
}

func (h *host) called() []slotqueue.Item {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]slotqueue.Item(nil), h.calls...)
}

func TestRequeue_SeenItemsWaitUntilResume(t *testing.T) {
	ctx := context.Background()
	h := &host{}
	q := newQueue(t, h.process, slotqueue.WithMaxWorkers(1))
	a, b := item(stowage.RequestID{1}, 0, 20), item(stowage.RequestID{1}, 1, 10)

	require.NoError(t, q.Push(a, b))
	require.NoError(t, q.WaitIdle(ctx))
	assert.Equal(t, []slotqueue.Item{a, b}, h.called(), "each tried once, then the queue pauses itself")
	assert.Equal(t, []slotqueue.Item{seen(a), seen(b)}, q.Items())
	assert.False(t, q.Paused(), "not paused by hand")

	// An unseen item ranks first and is taken; the seen ones still wait.
	c := item(stowage.RequestID{2}, 0, 1)
	require.NoError(t, q.Push(c))
	require.NoError(t, q.WaitIdle(ctx))
	assert.Equal(t, []slotqueue.Item{a, b, c}, h.called())
	assert.Equal(t, []slotqueue.Item{seen(a), seen(b), seen(c)}, q.Items())

	// Room is added: Resume clears Seen and everything is served again.
	h.mu.Lock()
	h.room = 3
	h.mu.Unlock()
	q.Resume()
	require.NoError(t, q.WaitIdle(ctx))
	assert.Equal(t, []slotqueue.Item{a, b, c, a, b, c}, h.called())
	assert.Zero(t, q.Len())
	st := q.Stats()
	assert.Equal(t, uint64(6), st.Processed)
	assert.Equal(t, uint64(3), st.Requeued)
	assert.Zero(t, st.Failed)
}

func TestRequeue_DeletedWhileProcessingIsNotPutBack(t *testing.T) {
	id := stowage.RequestID{1}
	for name, del := range map[string]func(q *slotqueue.Queue){
		"nothing":       func(*slotqueue.Queue) {},
		"Delete":        func(q *slotqueue.Queue) { q.Delete(id, 0) },
		"DeleteRequest": func(q *slotqueue.Queue) { q.DeleteRequest(id) },
		"another slot":  func(q *slotqueue.Queue) { q.Delete(id, 1) },
	} {
		t.Run(name, func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			q := newQueue(t, func(ctx context.Context, _ slotqueue.Item) error {
				close(started)
				<-release
				return errNoRoom
			}, slotqueue.WithMaxWorkers(1))
			a := item(id, 0, 1)
			require.NoError(t, q.Push(a))
			<-started
			del(q)
			close(release)
			require.NoError(t, q.WaitIdle(context.Background()))
			if name == "Delete" || name == "DeleteRequest" {
				assert.Zero(t, q.Len())
			} else {
				assert.Equal(t, []slotqueue.Item{seen(a)}, q.Items())
			}
			assert.Equal(t, uint64(1), q.Stats().Requeued)
		})
	}
}

func TestRequeue_IntoAFullQueueEvictsTheLowest(t *testing.T) {
	var d drops
	started, release := make(chan struct{}), make(chan struct{})
	q := newQueue(t, func(ctx context.Context, it slotqueue.Item) error {
		if it.RequestID == held {
			close(started)
			<-release
			return errNoRoom
		}
		return nil
	}, slotqueue.WithMaxWorkers(1), slotqueue.WithMaxSize(2), slotqueue.WithOnDrop(d.onDrop))
	h := item(held, 0, 100)
	require.NoError(t, q.Push(h))
	<-started
	q.Pause() // keep the two below waiting
	a, b := item(stowage.RequestID{1}, 0, 1), item(stowage.RequestID{1}, 1, 2)
	require.NoError(t, q.Push(a, b))
	close(release)
	require.NoError(t, q.WaitIdle(context.Background()))
	assert.Equal(t, []dropped{{seen(h), slotqueue.ErrEvicted}}, d.all(), "seen ranks after every unseen item")
	assert.Equal(t, []slotqueue.Item{b, a}, q.Items())
}

func TestPause_BeforeStartQueuesTheBacklogFirst(t *testing.T) {
	ctx := context.Background()
	r := newRecorder()
	q, err := slotqueue.New(r.process, slotqueue.WithMaxWorkers(1), slotqueue.WithClock(epoch))
	require.NoError(t, err)
	q.Pause()
	q.Start()
	t.Cleanup(q.Stop)
	assert.True(t, q.Paused())

	backlog := []slotqueue.Item{item(stowage.RequestID{1}, 0, 1), item(stowage.RequestID{1}, 1, 3), item(stowage.RequestID{1}, 2, 2)}
	require.NoError(t, q.Push(backlog...))
	require.NoError(t, q.WaitIdle(ctx), "a paused queue is idle")
	assert.Empty(t, r.done())
	assert.Equal(t, 3, q.Len())

	q.Resume()
	assert.False(t, q.Paused())
	require.NoError(t, q.WaitIdle(ctx))
	assert.Equal(t, byPriority(backlog), r.done(), "served best first, whatever the order of pushes")
}

func TestPause_WhileRunningLetsBusyWorkersFinish(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1))
	holdWorkers(t, q, r)
	q.Pause()
	require.NoError(t, q.Push(item(stowage.RequestID{1}, 0, 1)))
	close(r.release)
	require.NoError(t, q.WaitIdle(context.Background()))
	assert.Len(t, r.done(), 1, "only the held item")
	assert.Equal(t, 1, q.Len())
}

// clock is a settable fake clock.
type clock struct{ unix atomic.Int64 }

func (c *clock) now() time.Time { return time.Unix(c.unix.Load(), 0) }

func TestExpiry_ExpiredItemsAreNeverProcessedAndReportedOnce(t *testing.T) {
	var clk clock
	clk.unix.Store(100)
	var d drops
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1), slotqueue.WithClock(clk.now), slotqueue.WithOnDrop(d.onDrop))
	holdWorkers(t, q, r)

	past := item(stowage.RequestID{1}, 0, 9)
	past.Expiry = at(100) // expired from the second it names on
	soon := item(stowage.RequestID{1}, 1, 5)
	soon.Expiry = at(110)
	late := item(stowage.RequestID{1}, 2, 1)
	late.Expiry = at(200)
	never := item(stowage.RequestID{1}, 3, 0)
	never.Expiry = time.Time{}
	require.NoError(t, q.Push(past, soon, late, never), "dropping is not an error")
	assert.Equal(t, []dropped{{past, slotqueue.ErrExpired}}, d.all())
	assert.Equal(t, []slotqueue.Item{soon, late, never}, q.Items())

	clk.unix.Store(110)
	close(r.release) // the worker looks at the clock before it takes soon
	require.NoError(t, q.WaitIdle(context.Background()))
	assert.Equal(t, []slotqueue.Item{item(held, 0, 1), late, never}, r.done())
	assert.Equal(t, []dropped{{past, slotqueue.ErrExpired}, {soon, slotqueue.ErrExpired}}, d.all())

	clk.unix.Store(1 << 40)
	assert.Zero(t, q.Len())
	assert.Len(t, d.all(), 2, "each reported once")
	assert.Equal(t, uint64(2), q.Stats().Expired)
}

// An item without Expiry never expires, however late the clock, and ranks
// after every item with one.
func TestExpiry_ZeroNeverExpires(t *testing.T) {
	var clk clock
	var d drops
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1), slotqueue.WithClock(clk.now), slotqueue.WithOnDrop(d.onDrop))
	holdWorkers(t, q, r)
	never := item(stowage.RequestID{1}, 0, 1)
	never.Expiry = time.Time{}
	latest := item(stowage.RequestID{1}, 1, 1)
	latest.Expiry = time.Unix(1<<62+1, 0)
	require.NoError(t, q.Push(latest, never))
	clk.unix.Store(1<<62 + 1)
	assert.Equal(t, []slotqueue.Item{never}, q.Items(), "the dated item expired, the undated one did not")
	assert.Equal(t, []dropped{{latest, slotqueue.ErrExpired}}, d.all())
}

func TestExpiry_NoticedByReadsToo(t *testing.T) {
	var clk clock
	var d drops
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1), slotqueue.WithClock(clk.now), slotqueue.WithOnDrop(d.onDrop))
	holdWorkers(t, q, r)
	a := item(stowage.RequestID{1}, 0, 1)
	a.Expiry = at(10)
	require.NoError(t, q.Push(a))
	require.True(t, q.Contains(a.RequestID, a.Index))
	clk.unix.Store(10)
	assert.False(t, q.Contains(a.RequestID, a.Index), "never reported as waiting once expired")
	_, ok := q.Item(a.RequestID, 5)
	assert.False(t, ok)
	assert.Equal(t, []dropped{{a, slotqueue.ErrExpired}}, d.all())
}

func TestOnDrop_EvictionReportsExactlyTheLowest(t *testing.T) {
	var d drops
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1), slotqueue.WithMaxSize(3), slotqueue.WithOnDrop(d.onDrop))
	holdWorkers(t, q, r)
	id := stowage.RequestID{1}
	require.NoError(t, q.Push(item(id, 0, 20), item(id, 1, 10), item(id, 2, 30)))
	assert.Empty(t, d.all())

	require.NoError(t, q.Push(item(id, 3, 25)))
	assert.Equal(t, []dropped{{item(id, 1, 10), slotqueue.ErrEvicted}}, d.all())
	require.NoError(t, q.Push(item(id, 4, 5)))
	assert.Equal(t, []dropped{{item(id, 1, 10), slotqueue.ErrEvicted}, {item(id, 4, 5), slotqueue.ErrEvicted}}, d.all())
	assert.Equal(t, uint64(2), q.Stats().Evicted)
}

// OnDrop runs outside the queue's lock: it may call the queue.
func TestOnDrop_MayCallTheQueue(t *testing.T) {
	r := newRecorder()
	var q *slotqueue.Queue
	var lens []int
	q = newQueue(t, r.process, slotqueue.WithMaxWorkers(1), slotqueue.WithMaxSize(1), slotqueue.WithOnDrop(func(slotqueue.Item, error) {
		lens = append(lens, q.Len())
	}))
	holdWorkers(t, q, r)
	require.NoError(t, q.Push(item(stowage.RequestID{1}, 0, 1), item(stowage.RequestID{1}, 1, 2)))
	assert.Equal(t, []int{1}, lens)
}

func TestWaitIdle_WaitsForBusyWorkers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1))
		holdWorkers(t, q, r)
		require.NoError(t, q.Push(item(stowage.RequestID{1}, 0, 1)))
		var idle atomic.Bool
		go func() {
			assert.NoError(t, q.WaitIdle(context.Background()))
			idle.Store(true)
		}()
		synctest.Wait()
		assert.False(t, idle.Load(), "a worker is busy and an item waits")
		close(r.release)
		synctest.Wait()
		assert.True(t, idle.Load())
		assert.Len(t, r.done(), 2, "idle only once the waiting item was processed too")
	})
}

func TestWaitIdle_OnlySeenItemsWait(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process)
	require.NoError(t, q.Push(seen(item(stowage.RequestID{1}, 0, 1))))
	require.NoError(t, q.WaitIdle(context.Background()))
	assert.Equal(t, 1, q.Len())
	assert.Empty(t, r.done())
}

func TestWaitIdle_ContextEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newRecorder()
		q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1))
		holdWorkers(t, q, r)

		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		assert.ErrorIs(t, q.WaitIdle(ctx), context.Canceled)

		ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		start := time.Now()
		assert.ErrorIs(t, q.WaitIdle(ctx), context.DeadlineExceeded)
		assert.Equal(t, time.Minute, time.Since(start))
		close(r.release)
	})
}

func TestWaitIdle_StoppedQueueIsIdle(t *testing.T) {
	r := newRecorder()
	q := newQueue(t, r.process, slotqueue.WithMaxWorkers(1))
	holdWorkers(t, q, r)
	require.NoError(t, q.Push(item(stowage.RequestID{1}, 0, 1)))
	q.Stop()
	require.NoError(t, q.WaitIdle(context.Background()))
	assert.Equal(t, 1, q.Len(), "waiting items stay queued")
}

func TestStats_AfterAScriptedRun(t *testing.T) {
	var clk clock
	clk.unix.Store(1000)
	var d drops
	q, err := slotqueue.New(func(_ context.Context, it slotqueue.Item) error {
		switch it.Index {
		case 1:
			return errors.New("disk full")
		case 2:
			return errNoRoom
		case 3:
			panic("boom")
		}
		return nil
	}, slotqueue.WithMaxWorkers(1), slotqueue.WithMaxSize(4), slotqueue.WithClock(clk.now), slotqueue.WithOnDrop(d.onDrop))
	require.NoError(t, err)
	q.Pause()
	q.Start()
	t.Cleanup(q.Stop)
	assert.Equal(t, slotqueue.Stats{}, q.Stats())

	id := stowage.RequestID{1}
	expired := item(id, 5, 60)
	expired.Expiry = at(1000)
	require.NoError(t, q.Push(item(id, 0, 50), item(id, 1, 40), item(id, 2, 30), item(id, 3, 20), item(id, 4, 10), expired))
	assert.Equal(t, slotqueue.Stats{Waiting: 4, Pushed: 6, Evicted: 1, Expired: 1}, q.Stats())

	q.Resume()
	require.NoError(t, q.WaitIdle(context.Background()))
	assert.Equal(t, slotqueue.Stats{
		Waiting:   1, // slot 2, requeued and seen
		Pushed:    6,
		Processed: 4,
		Failed:    2, // an error and a panic
		Requeued:  1,
		Evicted:   1,
		Expired:   1,
	}, q.Stats())
	assert.Equal(t, []dropped{{item(id, 4, 10), slotqueue.ErrEvicted}, {expired, slotqueue.ErrExpired}}, d.all())
}

package sim

import (
	"container/heap"
	"sync"
	"time"
)

// Clock is the simulation's clock: market time in seconds since the Unix
// epoch, as a chain's block timestamps, that only moves when Step is called.
// Time jumps straight to the earliest pending callback, so a simulated week
// passes as fast as the callbacks run. The simulated market schedules
// everything it does on it, and so does its network: the host itself never
// waits for time, it reacts to market events and deliveries.
//
// Callbacks due at the same time run in the order they were registered, on
// the goroutine that calls Step. A Clock is safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    uint64
	seq    uint64
	timers timerHeap
	work   sync.WaitGroup // the goroutines Go started during a Step
}

// NewClock returns a clock standing at start.
func NewClock(start uint64) *Clock {
	return &Clock{now: start}
}

// Unix returns the simulated time in seconds since the Unix epoch.
func (c *Clock) Unix() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// At registers f to run when the clock reaches at (Unix seconds). A time
// that has already passed runs f at the next Step, without moving the clock.
// f runs on the goroutine that calls Step and must not block. stop cancels
// the call and reports whether it did so before f started.
func (c *Clock) At(at uint64, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &simTimer{at: at, seq: c.seq, f: f, index: -1}
	heap.Push(&c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if t.index < 0 {
			return false
		}
		heap.Remove(&c.timers, t.index)
		return true
	}
}

// Now returns the simulated time: the host's clock in a simulation.
func (c *Clock) Now() time.Time { return time.Unix(int64(c.Unix()), 0).UTC() }

// AfterFunc registers f to run once d has passed on the clock (rounded up
// to whole seconds, at least one), like time.AfterFunc but on the goroutine
// that calls Step: the work f does is done before Step returns, at that
// simulated time. It is the host's Clock.AfterFunc in a simulation.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	secs := uint64(max(1, (d+time.Second-1)/time.Second))
	c.mu.Lock()
	at := c.now + secs
	c.mu.Unlock()
	return c.At(at, f)
}

// Next returns the time of the earliest pending callback, and false when
// none is pending.
func (c *Clock) Next() (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.timers) == 0 {
		return 0, false
	}
	return max(c.timers[0].at, c.now), true
}

// Step moves the clock to the earliest pending callback and runs every
// callback due by then, including those that the callbacks themselves
// register for that time. It reports false, and does nothing, when no
// callback is pending.
func (c *Clock) Step() bool {
	c.mu.Lock()
	if len(c.timers) == 0 {
		c.mu.Unlock()
		return false
	}
	c.now = max(c.now, c.timers[0].at)
	for len(c.timers) > 0 && c.timers[0].at <= c.now {
		t := heap.Pop(&c.timers).(*simTimer)
		// Unlocked, so that f may read the clock and register callbacks.
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
	c.mu.Unlock()
	c.work.Wait()
	return true
}

// Go runs f on a goroutine of its own, for a callback whose work may go on
// beside the others due at the same time (the network delivering to several
// downloads at once): the Step that runs the callback returns once f has
// returned too. Callbacks f registers for the current time run at the next
// Step.
func (c *Clock) Go(f func()) { c.work.Go(f) }

// Pending returns how many callbacks are waiting.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

type simTimer struct {
	at    uint64
	seq   uint64
	f     func()
	index int // position in the heap; -1 once popped or stopped
}

// timerHeap orders timers by time, then registration order.
type timerHeap []*simTimer

// Len implements heap.Interface.
func (h timerHeap) Len() int { return len(h) }

// Less implements heap.Interface.
func (h timerHeap) Less(i, j int) bool {
	if h[i].at != h[j].at {
		return h[i].at < h[j].at
	}
	return h[i].seq < h[j].seq
}

// Swap implements heap.Interface.
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

// Push implements heap.Interface.
func (h *timerHeap) Push(x any) {
	t := x.(*simTimer)
	t.index = len(*h)
	*h = append(*h, t)
}

// Pop implements heap.Interface.
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	t.index = -1
	return t
}

package engine

import (
	"context"
	"sync"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// Bounds of the histograms Stats reports: the seconds a commit took and the
// number of changes it carried. Each is an upper bound (inclusive), as in
// Prometheus; a last, implicit bucket takes everything above.
var (
	CommitSecondsBounds = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}
	GroupSizeBounds     = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512}
)

// Histogram is a snapshot of observations: Counts[i] is how many were at
// most Bounds[i] (cumulative); Count and Sum cover every observation.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Stats is what the engine has written since it was opened.
type Stats struct {
	Commits       uint64    // groups committed (one batch or transaction, one fsync, each)
	Changes       uint64    // changes in those groups
	WriteFailures uint64    // commits that failed (retried conflicts excluded)
	Conflicts     uint64    // shared mode: transactions retried after a conflict
	CommitSeconds Histogram // how long each commit took, failed ones included
	GroupSize     Histogram // changes per committed group
}

// stats counts commits. Commits are written one at a time (by the leader,
// or one at a time under shared mode's semaphore), so the mutex is uncontended
// but for readers of Stats.
type stats struct {
	mu            sync.Mutex
	commits       uint64
	changes       uint64
	failures      uint64
	seconds, size hist
}

type hist struct {
	counts []uint64 // per bucket, not cumulative; one more than bounds
	sum    float64
}

func (h *hist) observe(bounds []float64, v float64) {
	if h.counts == nil {
		h.counts = make([]uint64, len(bounds)+1)
	}
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
}

func (h *hist) snapshot(bounds []float64) Histogram {
	out := Histogram{Bounds: bounds, Counts: make([]uint64, len(bounds)), Sum: h.sum}
	for i, n := range h.counts {
		out.Count += n
		if i < len(bounds) {
			out.Counts[i] = out.Count
		}
	}
	return out
}

// begin marks the start of a commit.
func (s *stats) begin() time.Time { return time.Now() }

// end records a commit of n changes that began at t and ended with err.
func (s *stats) end(t time.Time, n int, err error) {
	d := time.Since(t).Seconds()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seconds.observe(CommitSecondsBounds, d)
	if err != nil {
		s.failures++
		return
	}
	s.commits++
	s.changes += uint64(n)
	s.size.observe(GroupSizeBounds, float64(n))
}

// endShared is end for one transaction of shared mode: a conflict the
// engine retries is neither a commit nor a failure.
func (s *stats) endShared(t time.Time, err error) {
	if err != nil && retryable(err) {
		return
	}
	s.end(t, 1, err)
}

// Stats returns a snapshot of what the engine has written.
func (e *Engine) Stats() Stats {
	s := &e.stats
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{
		Commits:       s.commits,
		Changes:       s.changes,
		WriteFailures: s.failures,
		Conflicts:     e.Conflicts(),
		CommitSeconds: s.seconds.snapshot(CommitSecondsBounds),
		GroupSize:     s.size.snapshot(GroupSizeBounds),
	}
}

// CountBlocks counts the durable blocks by scanning their keys. It holds no
// change off, so under concurrent writes the figure is that of some moment
// of the scan.
func (e *Engine) CountBlocks(ctx context.Context) (uint64, error) {
	if !e.life.enter() {
		return 0, ErrClosed
	}
	defer e.life.leave()
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	prefix := datastore.NewKey("/")
	if !e.separate {
		prefix = BlocksPrefix
	}
	var n uint64
	err := scan(ctx, e.blocks, prefix, true, nil, func(query.Entry) error { n++; return nil })
	return n, err
}

// countRetries counts a call that took attempt attempts.
func (s *sharedMode) countRetries(attempt int) {
	s.mu.Lock()
	s.retries[attempt-1]++
	s.mu.Unlock()
}

// retriesPerCall returns, for each n, how many calls took n retries.
func (s *sharedMode) retriesPerCall() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint64(nil), s.retries[:]...)
}

// RetriesPerCall returns, for each n, how many calls of shared mode took
// n retries (attempts after the first), conflicts or not; all zero
// outside shared mode.
func (e *Engine) RetriesPerCall() []uint64 {
	if e.sh == nil {
		return make([]uint64, maxAttempts)
	}
	return e.sh.retriesPerCall()
}

package engine

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ipfs/go-datastore"
)

// Watch notes whether a change staged since it was made put a metadata
// record under its prefix: a caller that works through the records under a
// prefix in several changes, from where the last one stopped (a big
// reservation's blocks), learns whether one was added behind it. It is
// safe for concurrent use.
type Watch struct {
	set    *watches
	prefix string
	hit    atomic.Bool
}

// watches are an engine's running watches.
type watches struct {
	mu  sync.Mutex
	set map[*Watch]struct{}
	n   atomic.Int32 // len(set), read without mu: most changes find none
}

// Watch starts a watch of the puts under prefix. In shared mode, where
// other processes change the datastore unseen, the watch is hit from the
// start. Stop it when done.
func (e *Engine) Watch(prefix datastore.Key) *Watch {
	w := &Watch{set: &e.watches, prefix: prefix.String() + "/"}
	if e.shared {
		w.hit.Store(true)
		return w
	}
	e.watches.mu.Lock()
	defer e.watches.mu.Unlock()
	if e.watches.set == nil {
		e.watches.set = map[*Watch]struct{}{}
	}
	e.watches.set[w] = struct{}{}
	e.watches.n.Store(int32(len(e.watches.set)))
	return w
}

// Hit reports whether a change staged since the watch started put a
// record under its prefix (a change that failed since may count too).
// Called from a change, it accounts for every change staged before.
func (w *Watch) Hit() bool { return w.hit.Load() }

// Stop ends the watch.
func (w *Watch) Stop() {
	w.set.mu.Lock()
	defer w.set.mu.Unlock()
	delete(w.set.set, w)
	w.set.n.Store(int32(len(w.set.set)))
}

// notify marks the watches whose prefix ops put a record under. Called
// with the staging lock held.
func (ws *watches) notify(ops []op) {
	if ws.n.Load() == 0 {
		// A watch started now, under the staging lock held here too,
		// sees only later changes: none is missed.
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.set {
		if w.hit.Load() {
			continue
		}
		for _, o := range ops {
			if !o.blocks && !o.del && strings.HasPrefix(o.key, w.prefix) {
				w.hit.Store(true)
				break
			}
		}
	}
}

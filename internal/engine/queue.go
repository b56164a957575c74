package engine

import "sync"

// commitQueue is the queue of staged changes waiting for their write, and
// who leads: one caller at a time takes the whole queue and writes it as
// one group. Its lock (queueMu in the engine's lock order) is held only
// briefly, never across staging or a write, so the leader never waits for
// staging. It is safe for concurrent use.
type commitQueue struct {
	mu      sync.Mutex
	changes []*change
	leading bool     // a caller is writing groups
	durable Counters // after the last durable group
}

// join appends c to the queue; lead reports that nobody led, and that c's
// caller now does.
func (q *commitQueue) join(c *change) (lead bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.changes = append(q.changes, c)
	lead = !q.leading
	q.leading = true
	return lead
}

// take returns the queue as the next group, emptying it, with the
// counters it starts from.
func (q *commitQueue) take() (group []*change, base Counters) {
	q.mu.Lock()
	defer q.mu.Unlock()
	group, q.changes = q.changes, nil
	return group, q.durable
}

// keepLead is how many queued changes make a leader write the next group
// itself rather than hand the lead on: its own caller's next change then
// matters little to the group, and the hand-off (a goroutine woken between
// two writes) is saved. With fewer changes queued the leader's caller
// counts, and the lead moves on.
const keepLead = 8

// written records a group durable with counters final, and says what the
// leader does next: write the next group itself (more), hand the lead to
// next, or neither (the queue is empty and nobody leads).
func (q *commitQueue) written(final Counters) (more bool, next *change) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.durable = final
	switch {
	case len(q.changes) >= keepLead:
		return true, nil
	case len(q.changes) > 0:
		return false, q.changes[0]
	}
	q.leading = false
	return false, nil
}

// drop empties the queue after a failed group and returns what it held;
// nobody leads. Called with q.mu held.
func (q *commitQueue) drop() []*change {
	failed := q.changes
	q.changes = nil
	q.leading = false
	return failed
}

// counters returns the durable counters.
func (q *commitQueue) counters() Counters {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.durable
}

// idle reports that nobody leads: nothing is queued or being written.
func (q *commitQueue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return !q.leading
}

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
	// durableGroups are groups written since the overlay last retired
	// any, for whoever holds the staging lock next (a leader writing
	// group after group does not wait for that lock between two).
	durableGroups [][]*change
	// spare: the slice a group was taken in, emptied, for the next queue.
	spare []*change
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
	group, q.changes = q.changes, q.spare[:0]
	q.spare = nil
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

// addDurable keeps a durable group, which its leader is done with, for
// the overlay to retire (takeDurable).
func (q *commitQueue) addDurable(group []*change) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.durableGroups = append(q.durableGroups, group)
}

// takeDurable returns the groups written since it was last called, oldest
// first, and whether the engine is idle (nobody leads).
func (q *commitQueue) takeDurable() (groups [][]*change, idle bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	groups, q.durableGroups = q.durableGroups, nil
	return groups, !q.leading
}

// recycle keeps the slices of a group (nil: none) and of a list of groups
// the overlay is done with, for the queue to fill again.
func (q *commitQueue) recycle(group []*change, groups [][]*change) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if group != nil {
		q.spare = group[:0]
	}
	if q.durableGroups == nil {
		clear(groups)
		q.durableGroups = groups[:0]
	}
}

// drop empties the queue after a failed group and returns what it held;
// nobody leads. Called with q.mu held.
func (q *commitQueue) drop() []*change {
	failed := q.changes
	q.changes = nil
	q.durableGroups = nil
	q.leading = false
	return failed
}

// counters returns the durable counters.
func (q *commitQueue) counters() Counters {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.durable
}

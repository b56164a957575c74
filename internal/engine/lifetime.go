package engine

import "sync"

// lifetime is a thread group: calls enter and leave, Close waits for those
// in flight and turns every later one away.
type lifetime struct {
	mu     sync.Mutex
	idle   sync.Cond
	n      int
	closed bool
}

func (l *lifetime) init() { l.idle.L = &l.mu }

func (l *lifetime) enter() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.n++
	return true
}

func (l *lifetime) leave() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n--
	if l.n == 0 {
		l.idle.Broadcast()
	}
}

// close turns later calls away and waits for those in flight; it reports
// false when the lifetime was already closed.
func (l *lifetime) close() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.closed = true
	for l.n > 0 {
		l.idle.Wait()
	}
	return true
}

package statemachine

import "fmt"

// core decides, one input at a time, what the machine does next. It holds no
// locks, starts no goroutines and never waits: the Machine feeds it inputs in
// the order they were scheduled and carries out its decisions. All ordering
// rules live here, so they are tested without timing.
//
// Deciding and changing are two steps: step calls the user's Event or
// OnError and returns a decision without changing the core; commit carries
// the decision into the core. The Machine runs step without its lock (an
// event may call the machine) and commit under it, so other goroutines can
// read current under the lock while only the loop goroutine writes it.
//
// States are told apart by epoch, not by comparing State values (which may
// not be comparable): entering a state starts a new epoch, and a Run result
// carries the epoch of the Run that produced it, so a result from a state that
// was already left is recognised and dropped.
type core[T any] struct {
	current State[T] // nil before start and after the end
	epoch   uint64   // counts entered states

	// onError handles the Run errors of states without OnError (set with
	// WithOnError); nil: such an error ends the machine.
	onError func(st State[T], err error) State[T]
}

// input is one thing that happened to the machine: an event, or the outcome
// of the Run of the state entered at epoch.
type input[T any] struct {
	event    Event[T]
	epoch    uint64
	next     State[T]
	err      error
	panicked bool // Run panicked or called runtime.Goexit; err says which
}

// decision is what the Machine must do after an input. The zero decision
// means "nothing": stay in the current state.
type decision[T any] struct {
	// from is the state the input found current (nil at start). It names
	// the log lines of the decision and, when the machine ends, is its last
	// state.
	from State[T]

	enter State[T] // non-nil: leave from and enter this state
	epoch uint64   // the epoch of enter
	final bool     // enter implements Final: its Run's return ends the machine

	end bool  // the machine ends in from
	err error // with end: the error it ends with; nil when a Final state ended it cleanly

	handled error // a Run error that OnError handled, for the log
}

// start decides the entry of the initial state.
func (c *core[T]) start(initial State[T]) decision[T] {
	if initial == nil {
		return decision[T]{end: true, err: ErrNilState}
	}
	return c.moveTo(decision[T]{}, initial)
}

// step decides what in leads to. Inputs before the start and after the end
// are ignored.
func (c *core[T]) step(in input[T]) decision[T] {
	if c.current == nil {
		return decision[T]{}
	}
	if in.event != nil {
		return c.onEvent(in.event)
	}
	return c.onResult(in)
}

// commit carries d into the core.
func (c *core[T]) commit(d decision[T]) {
	switch {
	case d.end:
		c.current = nil
	case d.enter != nil:
		c.current, c.epoch = d.enter, d.epoch
	}
}

func (c *core[T]) onEvent(e Event[T]) decision[T] {
	d := decision[T]{from: c.current}
	next, err := callEvent(e, c.current)
	if err != nil {
		return c.fail(d, fmt.Errorf("event in state %s: %w", nameOf(c.current), err))
	}
	if next == nil {
		return d
	}
	return c.moveTo(d, next)
}

func (c *core[T]) onResult(in input[T]) decision[T] {
	if in.epoch != c.epoch {
		return decision[T]{} // stale: the state that produced it was left
	}
	d := decision[T]{from: c.current}
	if _, ok := c.current.(Final); ok {
		// A Final state's return ends the machine, and its error (a
		// cleanup that failed) is the machine's: nothing handles it.
		if in.err != nil {
			return c.fail(d, fmt.Errorf("state %s: %w", nameOf(c.current), in.err))
		}
		d.end = true
		return d
	}
	if in.err == nil {
		if in.next == nil {
			return d
		}
		return c.moveTo(d, in.next)
	}
	var next State[T]
	var perr error
	switch h, ok := c.current.(ErrorHandler[T]); {
	case ok:
		next, perr = callOnError(func() State[T] { return h.OnError(in.err) })
	case c.onError != nil:
		next, perr = callOnError(func() State[T] { return c.onError(c.current, in.err) })
	default:
		return c.fail(d, fmt.Errorf("state %s: %w", nameOf(c.current), in.err))
	}
	if perr != nil {
		return c.fail(d, fmt.Errorf("state %s: error handler: %w", nameOf(c.current), perr))
	}
	d.handled = in.err
	if next == nil {
		return d
	}
	return c.moveTo(d, next)
}

func (c *core[T]) moveTo(d decision[T], next State[T]) decision[T] {
	_, final := next.(Final)
	d.enter, d.epoch, d.final = next, c.epoch+1, final
	return d
}

func (c *core[T]) fail(d decision[T], err error) decision[T] {
	d.end, d.err = true, err
	return d
}

func callEvent[T any](e Event[T], current State[T]) (next State[T], err error) {
	defer func() {
		if r := recover(); r != nil {
			next, err = nil, panicError(r)
		}
	}()
	return e(current), nil
}

// callOnError calls an error handler (a state's OnError or the machine's
// WithOnError function), turning a panic into an error.
func callOnError[T any](handle func() State[T]) (next State[T], err error) {
	defer func() {
		if r := recover(); r != nil {
			next, err = nil, panicError(r)
		}
	}()
	return handle(), nil
}

// panicError turns a recovered panic value into an error wrapping ErrPanic,
// and the value itself when it is an error.
func panicError(r any) error {
	if err, ok := r.(error); ok {
		return fmt.Errorf("%w: %w", ErrPanic, err)
	}
	return fmt.Errorf("%w: %v", ErrPanic, r)
}

// nameOf names a state for errors and logs: its String method when it has
// one (fmt guards against that method panicking), otherwise its type.
func nameOf(s any) string {
	if _, ok := s.(fmt.Stringer); ok {
		return fmt.Sprint(s)
	}
	return fmt.Sprintf("%T", s)
}

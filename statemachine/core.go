package statemachine

import "fmt"

// core decides, one input at a time, what the machine does next. It holds no
// locks, starts no goroutines and never waits: the shell (Machine) feeds it
// inputs in the order they were scheduled and carries out its decisions. All
// ordering rules live here, so they are tested without timing.
//
// States are told apart by epoch, not by comparing State values (which may
// not be comparable): entering a state starts a new epoch, and a Run result
// carries the epoch of the Run that produced it, so a result from a state that
// was already left is recognised and dropped.
type core[T any] struct {
	current State[T] // nil before start and after the end
	epoch   uint64   // counts entered states
}

// input is one thing that happened to the machine: an event, or the outcome
// of the Run of the state entered at epoch.
type input[T any] struct {
	event Event[T]
	epoch uint64
	next  State[T]
	err   error
}

// decision is what the shell must do after an input. The zero decision means
// "nothing": stay in the current state.
type decision[T any] struct {
	enter   State[T] // non-nil: leave the current state and enter this one
	epoch   uint64   // the epoch of enter
	end     error    // non-nil: the machine ends with this error
	handled error    // a Run error that OnError handled, for the log
}

// start enters the initial state.
func (c *core[T]) start(initial State[T]) decision[T] {
	if initial == nil {
		return c.finish(ErrNilState)
	}
	return c.moveTo(initial)
}

// apply decides what in leads to. Inputs after the end are ignored.
func (c *core[T]) apply(in input[T]) decision[T] {
	if c.current == nil {
		return decision[T]{}
	}
	if in.event != nil {
		return c.onEvent(in.event)
	}
	return c.onResult(in.epoch, in.next, in.err)
}

func (c *core[T]) onEvent(e Event[T]) decision[T] {
	next, err := callEvent(e, c.current)
	if err != nil {
		return c.finish(fmt.Errorf("event in state %s: %w", nameOf(c.current), err))
	}
	if next == nil {
		return decision[T]{}
	}
	return c.moveTo(next)
}

func (c *core[T]) onResult(epoch uint64, next State[T], err error) decision[T] {
	if epoch != c.epoch {
		return decision[T]{} // stale: the state that produced it was left
	}
	if err == nil {
		if next == nil {
			return decision[T]{}
		}
		return c.moveTo(next)
	}
	h, ok := c.current.(ErrorHandler[T])
	if !ok {
		return c.finish(fmt.Errorf("state %s: %w", nameOf(c.current), err))
	}
	next, perr := callOnError(h, err)
	if perr != nil {
		return c.finish(fmt.Errorf("state %s: error handler: %w", nameOf(c.current), perr))
	}
	d := decision[T]{}
	if next != nil {
		d = c.moveTo(next)
	}
	d.handled = err
	return d
}

func (c *core[T]) moveTo(next State[T]) decision[T] {
	c.current = next
	c.epoch++
	return decision[T]{enter: next, epoch: c.epoch}
}

func (c *core[T]) finish(err error) decision[T] {
	c.current = nil
	return decision[T]{end: err}
}

func callEvent[T any](e Event[T], current State[T]) (next State[T], err error) {
	defer func() {
		if r := recover(); r != nil {
			next, err = nil, panicError(r)
		}
	}()
	return e(current), nil
}

func callOnError[T any](h ErrorHandler[T], runErr error) (next State[T], err error) {
	defer func() {
		if r := recover(); r != nil {
			next, err = nil, panicError(r)
		}
	}()
	return h.OnError(runErr), nil
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

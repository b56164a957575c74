package statemachine

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The core is driven directly: no goroutines, no timing.

type named string

func (named) Run(context.Context, *Machine[int]) (State[int], error) { return nil, nil }

// done is a Final state.
type done string

func (done) Run(context.Context, *Machine[int]) (State[int], error) { return nil, nil }
func (done) Final()                                                 {}

// handling moves to next (which may be nil) on error and records what it got.
type handling struct {
	next State[int]
	got  *[]error
}

func (handling) Run(context.Context, *Machine[int]) (State[int], error) { return nil, nil }

func (h handling) OnError(err error) State[int] {
	*h.got = append(*h.got, err)
	return h.next
}

// unhashable cannot be compared with ==: the core must never try.
type unhashable []int

func (unhashable) Run(context.Context, *Machine[int]) (State[int], error) { return nil, nil }

func to(s State[int]) Event[int] {
	return func(State[int]) State[int] { return s }
}

// apply steps c with in and commits the decision, as the machine's loop does.
func apply(c *core[int], in input[int]) decision[int] {
	d := c.step(in)
	c.commit(d)
	return d
}

func startedCore(t *testing.T, initial State[int]) *core[int] {
	t.Helper()
	c := &core[int]{}
	d := c.start(initial)
	c.commit(d)
	require.Equal(t, initial, d.enter)
	require.Equal(t, uint64(1), d.epoch)
	require.False(t, d.end)
	return c
}

// ignores asserts that c ignores any input: it has ended.
func ignores(t *testing.T, c *core[int]) {
	t.Helper()
	assert.Equal(t, decision[int]{}, apply(c, input[int]{event: to(named("b"))}), "an ended core ignores events")
	assert.Equal(t, decision[int]{}, apply(c, input[int]{epoch: c.epoch, next: named("b")}), "an ended core ignores results")
	assert.Nil(t, c.current)
}

func TestCore_StartEntersInitialState(t *testing.T) {
	c := startedCore(t, named("a"))
	assert.Equal(t, named("a"), c.current)
}

func TestCore_StartWithNilStateEnds(t *testing.T) {
	c := &core[int]{}
	d := c.start(nil)
	c.commit(d)
	assert.True(t, d.end)
	assert.ErrorIs(t, d.err, ErrNilState)
	assert.Nil(t, d.enter)
	assert.Nil(t, d.from, "no last state")
	ignores(t, c)
}

func TestCore_StepDoesNotChangeTheCoreUntilCommit(t *testing.T) {
	c := startedCore(t, named("a"))
	d := c.step(input[int]{event: to(named("b"))})
	assert.Equal(t, named("a"), c.current)
	assert.Equal(t, uint64(1), c.epoch)
	c.commit(d)
	assert.Equal(t, named("b"), c.current)
	assert.Equal(t, uint64(2), c.epoch)
}

func TestCore_RunResultMovesToNextState(t *testing.T) {
	c := startedCore(t, named("a"))
	d := apply(c, input[int]{epoch: 1, next: named("b")})
	assert.Equal(t, decision[int]{from: named("a"), enter: named("b"), epoch: 2}, d)
}

func TestCore_RunResultWithoutNextStays(t *testing.T) {
	c := startedCore(t, named("a"))
	assert.Equal(t, decision[int]{from: named("a")}, apply(c, input[int]{epoch: 1}))
	assert.Equal(t, named("a"), c.current)
}

func TestCore_EventMovesState(t *testing.T) {
	c := startedCore(t, named("a"))
	assert.Equal(t, decision[int]{from: named("a"), enter: named("b"), epoch: 2}, apply(c, input[int]{event: to(named("b"))}))
	assert.Equal(t, decision[int]{from: named("b")}, apply(c, input[int]{event: to(nil)}), "nil from an event: no transition")
	assert.Equal(t, named("b"), c.current)
}

func TestCore_EventsApplyToTheStateTheyFind(t *testing.T) {
	cycle := func(current State[int]) State[int] {
		return map[named]named{"2": "3", "3": "1", "1": "2"}[current.(named)]
	}
	c := startedCore(t, named("2"))
	var entered []State[int]
	for range 3 {
		d := apply(c, input[int]{event: cycle})
		entered = append(entered, d.enter)
	}
	assert.Equal(t, []State[int]{named("3"), named("1"), named("2")}, entered)
	assert.Equal(t, uint64(4), c.epoch)
}

func TestCore_StaleRunResultIsDropped(t *testing.T) {
	c := startedCore(t, named("a"))
	apply(c, input[int]{event: to(named("b"))}) // a is left: epoch 2

	assert.Equal(t, decision[int]{}, apply(c, input[int]{epoch: 1, next: named("c")}), "stale next state")
	assert.Equal(t, decision[int]{}, apply(c, input[int]{epoch: 1, err: errors.New("late")}), "stale error")
	assert.Equal(t, named("b"), c.current)
	assert.Equal(t, decision[int]{from: named("b"), enter: named("c"), epoch: 3}, apply(c, input[int]{epoch: 2, next: named("c")}), "the current state's result still counts")
}

func TestCore_ErrorGoesToHandlerWhichCanMoveOn(t *testing.T) {
	var got []error
	boom := errors.New("boom")
	h := handling{next: named("retry"), got: &got}
	c := startedCore(t, h)

	d := apply(c, input[int]{epoch: 1, err: boom})

	assert.Equal(t, []error{boom}, got)
	assert.Equal(t, named("retry"), d.enter)
	assert.Equal(t, boom, d.handled)
	assert.Equal(t, State[int](h), d.from, "the log names the state that failed")
	assert.False(t, d.end)
}

func TestCore_HandlerReturningNilStays(t *testing.T) {
	var got []error
	h := handling{got: &got}
	c := startedCore(t, h)

	d := apply(c, input[int]{epoch: 1, err: errors.New("boom")})

	assert.Nil(t, d.enter)
	assert.False(t, d.end)
	assert.Len(t, got, 1)
	assert.Equal(t, State[int](h), c.current)
}

func TestCore_UnhandledErrorEnds(t *testing.T) {
	boom := errors.New("boom")
	c := startedCore(t, named("a"))

	d := apply(c, input[int]{epoch: 1, err: boom, next: named("ignored")})

	assert.True(t, d.end)
	assert.ErrorIs(t, d.err, boom)
	assert.Contains(t, d.err.Error(), "statemachine.named")
	assert.Equal(t, named("a"), d.from, "the last state is the one that failed")
	assert.Nil(t, d.enter)
	ignores(t, c)
}

func TestCore_PanicInEventEnds(t *testing.T) {
	c := startedCore(t, named("a"))
	d := apply(c, input[int]{event: func(State[int]) State[int] { panic("kaboom") }})
	assert.True(t, d.end)
	assert.ErrorIs(t, d.err, ErrPanic)
	assert.Contains(t, d.err.Error(), "kaboom")
	assert.Equal(t, named("a"), d.from)
}

func TestCore_PanicInErrorHandlerEnds(t *testing.T) {
	c := startedCore(t, panicking{})
	d := apply(c, input[int]{epoch: 1, err: errors.New("boom")})
	assert.True(t, d.end)
	assert.ErrorIs(t, d.err, ErrPanic)
	assert.Contains(t, d.err.Error(), "handler on fire")
}

type panicking struct{}

func (panicking) Run(context.Context, *Machine[int]) (State[int], error) { return nil, nil }
func (panicking) OnError(error) State[int]                               { panic("handler on fire") }

func TestCore_ReenteringAStateStartsANewEpoch(t *testing.T) {
	s := unhashable{1, 2}
	c := startedCore(t, s)
	d := apply(c, input[int]{event: func(current State[int]) State[int] { return current }})
	assert.Equal(t, uint64(2), d.epoch)
	assert.Equal(t, State[int](s), d.enter)
	assert.Equal(t, decision[int]{}, apply(c, input[int]{epoch: 1, next: named("b")}), "the first visit's result is stale")
}

func TestCore_EnteringAFinalStateIsMarked(t *testing.T) {
	c := startedCore(t, named("a"))
	assert.True(t, apply(c, input[int]{event: to(done("x"))}).final)
	assert.False(t, apply(c, input[int]{event: to(named("b"))}).final)
	assert.True(t, (&core[int]{}).start(done("y")).final, "also as the initial state")
}

func TestCore_FinalStateEndsWhenItsRunReturns(t *testing.T) {
	for name, in := range map[string]input[int]{
		"nil, nil":             {epoch: 2},
		"next state (ignored)": {epoch: 2, next: named("b")},
	} {
		t.Run(name, func(t *testing.T) {
			c := startedCore(t, named("a"))
			apply(c, input[int]{event: to(done("finished"))})

			d := apply(c, in)

			assert.True(t, d.end)
			assert.NoError(t, d.err)
			assert.Equal(t, done("finished"), d.from, "the last state is the Final one")
			assert.Nil(t, d.enter)
			ignores(t, c)
		})
	}
}

// A Final state's error is the machine's: no handler sees it, not even the
// machine-wide one.
func TestCore_FinalStateErrorEndsTheMachineWithIt(t *testing.T) {
	c := startedCore(t, named("a"))
	handled := false
	c.onError = func(State[int], error) State[int] { handled = true; return named("retry") }
	apply(c, input[int]{event: to(done("cleanup"))})
	failed := errors.New("cleanup failed")

	d := apply(c, input[int]{epoch: 2, err: failed, next: named("b")})

	assert.True(t, d.end)
	assert.ErrorIs(t, d.err, failed)
	assert.Contains(t, d.err.Error(), "cleanup")
	assert.Equal(t, done("cleanup"), d.from)
	assert.Nil(t, d.enter)
	assert.False(t, handled)
	ignores(t, c)
}

// The machine-wide handler takes the errors of states without OnError; a
// state's own OnError comes first.
func TestCore_MachineOnErrorIsTheDefault(t *testing.T) {
	boom := errors.New("boom")
	var gotState State[int]
	var gotErr error
	c := startedCore(t, named("a"))
	c.onError = func(st State[int], err error) State[int] { gotState, gotErr = st, err; return named("retry") }

	d := apply(c, input[int]{epoch: 1, err: boom})
	assert.Equal(t, named("retry"), d.enter)
	assert.Equal(t, boom, d.handled)
	assert.Equal(t, named("a"), gotState)
	assert.Equal(t, boom, gotErr)

	c.onError = func(State[int], error) State[int] { return nil }
	c2 := startedCore(t, named("a"))
	c2.onError = c.onError
	d = apply(c2, input[int]{epoch: 1, err: boom})
	assert.False(t, d.end, "nil from the handler: stay")
	assert.Nil(t, d.enter)

	c3 := startedCore(t, named("a"))
	c3.onError = func(State[int], error) State[int] { panic("handler crashed") }
	d = apply(c3, input[int]{epoch: 1, err: boom})
	assert.True(t, d.end)
	assert.ErrorIs(t, d.err, ErrPanic)
}

func TestCore_PanicInFinalStateEndsWithTheError(t *testing.T) {
	c := startedCore(t, done("finished"))
	d := apply(c, input[int]{epoch: 1, err: panicError("kaboom"), panicked: true})
	assert.True(t, d.end)
	assert.ErrorIs(t, d.err, ErrPanic)
	assert.Contains(t, d.err.Error(), "kaboom")
	assert.Equal(t, done("finished"), d.from)
}

func TestCore_EventLeavesAFinalStateBeforeItsRunReturns(t *testing.T) {
	c := startedCore(t, done("finished"))
	d := apply(c, input[int]{event: to(named("b"))})
	assert.Equal(t, named("b"), d.enter)
	assert.Equal(t, decision[int]{}, apply(c, input[int]{epoch: 1}), "the Final state's Run result is stale")
	assert.Equal(t, named("b"), c.current)
}

func TestCore_InputBeforeStartIsIgnored(t *testing.T) {
	c := &core[int]{}
	assert.Equal(t, decision[int]{}, apply(c, input[int]{event: to(named("b"))}))
}

func TestPanicError_WrapsErrorValues(t *testing.T) {
	cause := errors.New("cause")
	err := panicError(cause)
	assert.ErrorIs(t, err, ErrPanic)
	assert.ErrorIs(t, err, cause)
	assert.ErrorIs(t, panicError(42), ErrPanic)
	assert.Contains(t, panicError(42).Error(), "42")
}

type stringer struct{}

func (stringer) String() string { return "preparing" }

func TestNameOf_StringerElseType(t *testing.T) {
	assert.Equal(t, "preparing", nameOf(stringer{}))
	assert.Equal(t, "statemachine.named", nameOf(named("a")))
	assert.Equal(t, "<nil>", nameOf(nil))
}

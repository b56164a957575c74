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

func started(t *testing.T, initial State[int]) *core[int] {
	t.Helper()
	c := &core[int]{}
	d := c.start(initial)
	require.Equal(t, initial, d.enter)
	require.Equal(t, uint64(1), d.epoch)
	require.NoError(t, d.end)
	return c
}

func TestCore_StartEntersInitialState(t *testing.T) {
	c := started(t, named("a"))
	assert.Equal(t, named("a"), c.current)
}

func TestCore_StartWithNilStateEnds(t *testing.T) {
	c := &core[int]{}
	d := c.start(nil)
	assert.ErrorIs(t, d.end, ErrNilState)
	assert.Nil(t, d.enter)
	assert.Equal(t, decision[int]{}, c.apply(input[int]{event: to(named("b"))}), "an ended core ignores input")
}

func TestCore_RunResultMovesToNextState(t *testing.T) {
	c := started(t, named("a"))
	d := c.apply(input[int]{epoch: 1, next: named("b")})
	assert.Equal(t, decision[int]{enter: named("b"), epoch: 2}, d)
}

func TestCore_RunResultWithoutNextStays(t *testing.T) {
	c := started(t, named("a"))
	assert.Equal(t, decision[int]{}, c.apply(input[int]{epoch: 1}))
	assert.Equal(t, named("a"), c.current)
}

func TestCore_EventMovesState(t *testing.T) {
	c := started(t, named("a"))
	assert.Equal(t, decision[int]{enter: named("b"), epoch: 2}, c.apply(input[int]{event: to(named("b"))}))
	assert.Equal(t, decision[int]{}, c.apply(input[int]{event: to(nil)}), "nil from an event: no transition")
	assert.Equal(t, named("b"), c.current)
}

func TestCore_EventsApplyToTheStateTheyFind(t *testing.T) {
	cycle := func(current State[int]) State[int] {
		return map[named]named{"2": "3", "3": "1", "1": "2"}[current.(named)]
	}
	c := started(t, named("2"))
	var entered []State[int]
	for range 3 {
		d := c.apply(input[int]{event: cycle})
		entered = append(entered, d.enter)
	}
	assert.Equal(t, []State[int]{named("3"), named("1"), named("2")}, entered)
	assert.Equal(t, uint64(4), c.epoch)
}

func TestCore_StaleRunResultIsDropped(t *testing.T) {
	c := started(t, named("a"))
	c.apply(input[int]{event: to(named("b"))}) // a is left: epoch 2

	assert.Equal(t, decision[int]{}, c.apply(input[int]{epoch: 1, next: named("c")}), "stale next state")
	assert.Equal(t, decision[int]{}, c.apply(input[int]{epoch: 1, err: errors.New("late")}), "stale error")
	assert.Equal(t, named("b"), c.current)
	assert.Equal(t, decision[int]{enter: named("c"), epoch: 3}, c.apply(input[int]{epoch: 2, next: named("c")}), "the current state's result still counts")
}

func TestCore_ErrorGoesToHandlerWhichCanMoveOn(t *testing.T) {
	var got []error
	boom := errors.New("boom")
	c := started(t, handling{next: named("retry"), got: &got})

	d := c.apply(input[int]{epoch: 1, err: boom})

	assert.Equal(t, []error{boom}, got)
	assert.Equal(t, named("retry"), d.enter)
	assert.Equal(t, boom, d.handled)
	assert.NoError(t, d.end)
}

func TestCore_HandlerReturningNilStays(t *testing.T) {
	var got []error
	h := handling{got: &got}
	c := started(t, h)

	d := c.apply(input[int]{epoch: 1, err: errors.New("boom")})

	assert.Nil(t, d.enter)
	assert.NoError(t, d.end)
	assert.Len(t, got, 1)
	assert.Equal(t, State[int](h), c.current)
}

func TestCore_UnhandledErrorEnds(t *testing.T) {
	boom := errors.New("boom")
	c := started(t, named("a"))

	d := c.apply(input[int]{epoch: 1, err: boom, next: named("ignored")})

	assert.ErrorIs(t, d.end, boom)
	assert.Contains(t, d.end.Error(), "statemachine.named")
	assert.Nil(t, d.enter)
	assert.Nil(t, c.current)
	assert.Equal(t, decision[int]{}, c.apply(input[int]{event: to(named("b"))}), "an ended core ignores input")
}

func TestCore_PanicInEventEnds(t *testing.T) {
	c := started(t, named("a"))
	d := c.apply(input[int]{event: func(State[int]) State[int] { panic("kaboom") }})
	assert.ErrorIs(t, d.end, ErrPanic)
	assert.Contains(t, d.end.Error(), "kaboom")
}

func TestCore_PanicInErrorHandlerEnds(t *testing.T) {
	c := started(t, panicking{})
	d := c.apply(input[int]{epoch: 1, err: errors.New("boom")})
	assert.ErrorIs(t, d.end, ErrPanic)
	assert.Contains(t, d.end.Error(), "handler on fire")
}

type panicking struct{}

func (panicking) Run(context.Context, *Machine[int]) (State[int], error) { return nil, nil }
func (panicking) OnError(error) State[int]                               { panic("handler on fire") }

func TestCore_ReenteringAStateStartsANewEpoch(t *testing.T) {
	s := unhashable{1, 2}
	c := started(t, s)
	d := c.apply(input[int]{event: func(current State[int]) State[int] { return current }})
	assert.Equal(t, uint64(2), d.epoch)
	assert.Equal(t, State[int](s), d.enter)
	assert.Equal(t, decision[int]{}, c.apply(input[int]{epoch: 1, next: named("b")}), "the first visit's result is stale")
}

func TestPanicError_WrapsErrorValues(t *testing.T) {
	cause := errors.New("cause")
	err := panicError(cause)
	assert.ErrorIs(t, err, ErrPanic)
	assert.ErrorIs(t, err, cause)
	assert.ErrorIs(t, panicError(42), ErrPanic)
	assert.Contains(t, panicError(42).Error(), "42")
}

package statemachine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stowage/stowage/statemachine"
)

// waitFor bounds every wait, so a broken machine fails a test instead of
// hanging it.
const waitFor = 5 * time.Second

type (
	machine = statemachine.Machine[*recorder]
	state   = statemachine.State[*recorder]
)

// recorder is the subject of the ported suite: states count their runs,
// cancellations and handled errors in it, by index (state1 is 0).
type recorder struct {
	mu            sync.Mutex
	runs          [4]int
	cancellations [4]int
	errors        [4]int
	entered       []string
	m             *machine // the pointer New returned, for states that keep it
}

func (r *recorder) ran(i int, name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.runs[i]++
	r.entered = append(r.entered, name)
}

func (r *recorder) cancelled(i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cancellations[i]++
}

func (r *recorder) failed(i int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors[i]++
}

func (r *recorder) Runs() [4]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs
}

func (r *recorder) Cancellations() [4]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cancellations
}

func (r *recorder) Errors() [4]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errors
}

func (r *recorder) Entered() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.entered...)
}

var errFailed = errors.New("failed")

// state1 moves on to state2 at once.
type state1 struct{}

func (state1) Run(_ context.Context, m *machine) (state, error) {
	m.Subject().ran(0, "state1")
	return state2{}, nil
}

// state2 waits to be cancelled and then returns the cancellation as an error,
// which must never reach its OnError.
type state2 struct{}

func (state2) Run(ctx context.Context, m *machine) (state, error) {
	m.Subject().ran(1, "state2")
	<-ctx.Done()
	m.Subject().cancelled(1)
	return nil, ctx.Err()
}

func (state2) OnError(error) state { panic("state2 got an error: cancellation reached OnError") }

// state3 stays until an event moves it on.
type state3 struct{}

func (state3) Run(_ context.Context, m *machine) (state, error) {
	m.Subject().ran(2, "state3")
	return nil, nil
}

// state4 fails; its handler moves on to state2.
type state4 struct{ rec *recorder }

func (state4) Run(_ context.Context, m *machine) (state, error) {
	m.Subject().ran(3, "state4")
	return nil, errFailed
}

func (s state4) OnError(err error) state {
	if errors.Is(err, errFailed) {
		s.rec.failed(3)
	}
	return state2{}
}

func moveToNextState(current state) state {
	switch current.(type) {
	case state2:
		return state3{}
	case state3:
		return state1{}
	}
	return nil
}

func newMachine(t *testing.T) (*machine, *recorder) {
	t.Helper()
	rec := &recorder{}
	m := statemachine.New(rec)
	t.Cleanup(func() { stopAndWait(t, m) })
	return m, rec
}

// stopAndWait stops m and waits until every goroutine of its has returned.
func stopAndWait[T any](t *testing.T, m *statemachine.Machine[T]) {
	t.Helper()
	m.Stop()
	waitDone(t, m)
}

// barrier returns once the machine has applied every input queued before it.
func barrier[T any](t *testing.T, m *statemachine.Machine[T]) {
	t.Helper()
	reached := make(chan struct{})
	m.Schedule(func(statemachine.State[T]) statemachine.State[T] {
		close(reached)
		return nil
	})
	select {
	case <-reached:
	case <-time.After(waitFor):
		t.Fatal("the machine did not apply an event")
	}
}

func waitDone[T any](t *testing.T, m *statemachine.Machine[T]) {
	t.Helper()
	select {
	case <-m.Done():
	case <-time.After(waitFor):
		t.Fatal("the machine did not end")
	}
}

func eventually(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	require.Eventually(t, cond, waitFor, time.Millisecond, msg)
}

// The suite of the original (Nim) machine, ported.

func TestMachine_StartStateRuns(t *testing.T) {
	m, rec := newMachine(t)
	m.Start(state1{})
	eventually(t, func() bool { return rec.Runs()[0] == 1 }, "state1 runs")
}

func TestMachine_MovesToNextStateWhenRunReturns(t *testing.T) {
	m, rec := newMachine(t)
	m.Start(state1{})
	eventually(t, func() bool { return rec.Runs() == [4]int{1, 1, 0, 0} }, "state1 then state2 run")
	assert.Equal(t, state2{}, m.State())
}

func TestMachine_EventMovesState(t *testing.T) {
	m, rec := newMachine(t)
	m.Start(state2{})
	m.Schedule(moveToNextState)
	eventually(t, func() bool { return rec.Runs() == [4]int{0, 1, 1, 0} }, "state2 then state3 run")
	assert.Equal(t, state3{}, m.State())
}

func TestMachine_TransitionCancelsRunningState(t *testing.T) {
	m, rec := newMachine(t)
	m.Start(state2{})
	m.Schedule(moveToNextState)
	eventually(t, func() bool { return rec.Cancellations() == [4]int{0, 1, 0, 0} }, "state2 is cancelled")
}

func TestMachine_ScheduledEventsAreHandledOneAfterTheOther(t *testing.T) {
	m, rec := newMachine(t)
	m.Start(state2{})
	m.Schedule(moveToNextState)
	m.Schedule(moveToNextState)
	eventually(t, func() bool { return rec.Runs() == [4]int{1, 2, 1, 0} }, "runs")
	assert.Equal(t, []string{"state2", "state3", "state1", "state2"}, rec.Entered())
}

func TestMachine_StopStopsSchedulingAndCurrentState(t *testing.T) {
	m, rec := newMachine(t)
	m.Start(state2{})
	eventually(t, func() bool { return rec.Runs()[1] == 1 }, "state2 runs")

	m.Stop()
	assert.Nil(t, m.State(), "Stop ends the machine before it returns")
	assert.Equal(t, state2{}, m.Last())
	m.Schedule(moveToNextState)
	waitDone(t, m)
	// Done waits for state2's Run, so its cancellation is counted.
	assert.Equal(t, [4]int{0, 1, 0, 0}, rec.Cancellations())
	assert.Equal(t, [4]int{0, 1, 0, 0}, rec.Runs())
	assert.NoError(t, m.Err())
}

func TestMachine_ErrorsAreForwardedToTheHandlerWhichCanMoveOn(t *testing.T) {
	m, rec := newMachine(t)
	m.Start(state4{rec: rec})
	eventually(t, func() bool {
		return rec.Errors() == [4]int{0, 0, 0, 1} && rec.Runs() == [4]int{0, 1, 0, 1}
	}, "state4 fails, its handler moves to state2")
	assert.Equal(t, state2{}, m.State())
}

func TestMachine_CancellationNeverReachesTheHandler(t *testing.T) {
	m, rec := newMachine(t)
	m.Start(state2{})
	m.Schedule(moveToNextState)
	eventually(t, func() bool { return rec.Runs()[2] == 1 }, "state3 entered")
	barrier(t, m) // whatever state2's cancelled Run produced has been applied

	assert.Equal(t, [4]int{0, 1, 0, 0}, rec.Cancellations())
	assert.Equal(t, [4]int{}, rec.Errors())
	assert.Equal(t, state3{}, m.State())
	assert.NoError(t, m.Err())
}

func TestMachine_QueriesReadTheCurrentStateAndNothingOnceStopped(t *testing.T) {
	m, _ := newMachine(t)
	description := func(s state) string { return fmt.Sprintf("%T", s) }

	m.Start(state2{})
	got, ok := statemachine.Query(m, description)
	require.True(t, ok)
	assert.Equal(t, "statemachine_test.state2", got)

	m.Stop()
	got, ok = statemachine.Query(m, description)
	assert.False(t, ok)
	assert.Empty(t, got)
}

// Beyond the original suite.

// staleA schedules a move to staleC and then returns staleB: the event comes
// first, so by the time staleA's result is considered staleA was left.
type staleA struct{}

func (staleA) Run(_ context.Context, m *machine) (state, error) {
	m.Schedule(func(current state) state {
		if _, ok := current.(staleA); ok {
			return staleC{}
		}
		return nil
	})
	return staleB{}, nil
}

type staleB struct{}

func (staleB) Run(_ context.Context, m *machine) (state, error) {
	m.Subject().ran(1, "staleB")
	return nil, nil
}

type staleC struct{}

func (staleC) Run(ctx context.Context, m *machine) (state, error) {
	m.Subject().ran(2, "staleC")
	<-ctx.Done()
	return nil, nil
}

func TestMachine_StaleRunResultIsDropped(t *testing.T) {
	m, rec := newMachine(t)
	m.Start(staleA{})
	eventually(t, func() bool { return rec.Runs()[2] == 1 }, "staleC entered")
	barrier(t, m) // staleA's result, if it was queued, has been applied

	assert.Equal(t, staleC{}, m.State())
	assert.Equal(t, []string{"staleC"}, rec.Entered(), "staleB never runs")
}

// failing returns err from Run; it handles nothing.
type failing struct{ err error }

func (s failing) Run(context.Context, *machine) (state, error) { return nil, s.err }

func TestMachine_UnhandledErrorEndsTheMachine(t *testing.T) {
	m, rec := newMachine(t)
	m.Start(failing{err: errFailed})
	waitDone(t, m)

	assert.ErrorIs(t, m.Err(), errFailed)
	assert.Contains(t, m.Err().Error(), "statemachine_test.failing")
	assert.Nil(t, m.State())
	_, ok := statemachine.Query(m, func(state) int { return 1 })
	assert.False(t, ok)

	m.Start(state1{})
	m.Schedule(moveToNextState)
	m.Stop()
	assert.Equal(t, [4]int{}, rec.Runs(), "an ended machine does not start again")
	assert.Equal(t, failing{err: errFailed}, m.Last(), "Stop after the end keeps the last state")
	assert.ErrorIs(t, m.Err(), errFailed, "Stop after the end keeps the error")
}

// panicking panics in Run with value; when next is set its handler moves on
// to it.
type panicking struct {
	value any
	next  state
	got   chan error
}

func (s panicking) Run(context.Context, *machine) (state, error) { panic(s.value) }

type handledPanic struct{ panicking }

func (s handledPanic) OnError(err error) state {
	s.got <- err
	return s.next
}

func TestMachine_PanicInRunIsAnErrorOfThatState(t *testing.T) {
	t.Run("unhandled, it ends the machine", func(t *testing.T) {
		m, _ := newMachine(t)
		m.Start(panicking{value: "kaboom"})
		waitDone(t, m)
		assert.ErrorIs(t, m.Err(), statemachine.ErrPanic)
		assert.Contains(t, m.Err().Error(), "kaboom")
	})
	t.Run("an error value stays reachable", func(t *testing.T) {
		m, _ := newMachine(t)
		m.Start(panicking{value: errFailed})
		waitDone(t, m)
		assert.ErrorIs(t, m.Err(), statemachine.ErrPanic)
		assert.ErrorIs(t, m.Err(), errFailed)
	})
	t.Run("handled, the handler can move on", func(t *testing.T) {
		m, rec := newMachine(t)
		got := make(chan error, 1)
		m.Start(handledPanic{panicking{value: "kaboom", next: state3{}, got: got}})
		eventually(t, func() bool { return rec.Runs()[2] == 1 }, "state3 entered")
		err := <-got
		assert.ErrorIs(t, err, statemachine.ErrPanic)
		assert.Contains(t, err.Error(), "kaboom")
		assert.Equal(t, state3{}, m.State())
	})
}

type exiting struct{}

func (exiting) Run(context.Context, *machine) (state, error) {
	runtime.Goexit()
	return nil, nil
}

func TestMachine_GoexitInRunEndsTheMachineInsteadOfHangingIt(t *testing.T) {
	m, _ := newMachine(t)
	m.Start(exiting{})
	waitDone(t, m)
	assert.ErrorIs(t, m.Err(), statemachine.ErrPanic)
	assert.Contains(t, m.Err().Error(), "Goexit")
}

func TestMachine_PanicInEventEndsTheMachine(t *testing.T) {
	m, rec := newMachine(t)
	m.Start(state2{})
	m.Schedule(func(state) state { panic("bad event") })
	waitDone(t, m)
	assert.ErrorIs(t, m.Err(), statemachine.ErrPanic)
	assert.Contains(t, m.Err().Error(), "bad event")
	assert.Equal(t, [4]int{0, 1, 0, 0}, rec.Cancellations(), "the running state was cancelled and waited for")
}

func TestMachine_StartWithNilStateEnds(t *testing.T) {
	m, _ := newMachine(t)
	m.Start(nil)
	waitDone(t, m)
	assert.ErrorIs(t, m.Err(), statemachine.ErrNilState)
}

func TestMachine_StartAndStopAreIdempotent(t *testing.T) {
	m, rec := newMachine(t)
	m.Start(state2{})
	m.Start(state1{})
	eventually(t, func() bool { return rec.Runs()[1] == 1 }, "state2 runs")
	barrier(t, m)
	assert.Equal(t, [4]int{0, 1, 0, 0}, rec.Runs(), "the second Start is ignored")

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(m.Stop)
	}
	wg.Wait()
	m.Stop()
	waitDone(t, m)
	assert.Equal(t, [4]int{0, 1, 0, 0}, rec.Cancellations())
	assert.Nil(t, m.State())
}

func TestMachine_StartAfterStopDoesNothing(t *testing.T) {
	m, rec := newMachine(t)
	m.Start(state2{})
	m.Stop()

	m.Start(state1{})
	assert.Nil(t, m.State())
	waitDone(t, m)
	assert.Equal(t, [4]int{0, 1, 0, 0}, rec.Runs(), "state2's Run is called, with a cancelled ctx")
	assert.NoError(t, m.Err())
}

func TestMachine_StopBeforeStartEndsTheMachine(t *testing.T) {
	m, rec := newMachine(t)
	m.Stop()
	waitDone(t, m)
	m.Start(state1{})
	assert.Nil(t, m.State())
	assert.Equal(t, [4]int{}, rec.Runs())
}

func TestMachine_ScheduleBeforeStartDoesNothing(t *testing.T) {
	m, _ := newMachine(t)
	applied := false
	m.Schedule(func(state) state { applied = true; return state3{} })
	m.Start(state2{})
	barrier(t, m)
	assert.False(t, applied)
	assert.Equal(t, state2{}, m.State())
}

// insider exercises the machine from inside its own Run: a query, an event,
// and finally Stop, which must not wait for the Run calling it.
type insider struct{ log chan string }

func (s insider) Run(ctx context.Context, m *machine) (state, error) {
	m = m.Subject().m // the pointer New returned: the same one
	self, ok := statemachine.Query(m, func(cur state) state { return cur })
	s.log <- fmt.Sprintf("query: %T %v", self, ok)
	m.Schedule(func(state) state { s.log <- "event applied"; return nil })
	m.Start(state1{}) // already running: ignored
	m.Stop()
	s.log <- fmt.Sprintf("stopped, ctx: %v, state: %v", ctx.Err(), m.State())
	return state1{}, nil // too late: ignored
}

func TestMachine_RunCanQueryScheduleAndStopItsOwnMachine(t *testing.T) {
	m, rec := newMachine(t)
	rec.m = m
	log := make(chan string, 4)
	m.Start(insider{log: log})
	waitDone(t, m)
	close(log)

	var got []string
	for line := range log {
		got = append(got, line)
	}
	require.NotEmpty(t, got)
	assert.Equal(t, "query: statemachine_test.insider true", got[0])
	assert.Contains(t, got, "stopped, ctx: context canceled, state: <nil>")
	assert.NoError(t, m.Err())
	assert.Equal(t, insider{log: log}, m.Last())
	assert.Equal(t, [4]int{}, rec.Runs(), "nothing runs after Stop")
}

// counted is re-entered by every event, each adding one.
type counted struct{ n int }

func (counted) Run(ctx context.Context, _ *statemachine.Machine[*[]int]) (statemachine.State[*[]int], error) {
	<-ctx.Done()
	return nil, nil
}

func TestMachine_ManyGoroutinesScheduleAtOnce(t *testing.T) {
	const goroutines, each = 16, 50
	var seen [goroutines][]int // written only by events, which run one at a time
	m := statemachine.New(&[]int{})
	m.Start(counted{})
	t.Cleanup(func() { stopAndWait(t, m) })

	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				m.Schedule(func(current statemachine.State[*[]int]) statemachine.State[*[]int] {
					seen[g] = append(seen[g], i)
					return counted{n: current.(counted).n + 1}
				})
				statemachine.Query(m, func(s statemachine.State[*[]int]) int { return 0 })
				_ = m.State()
			}
		})
	}
	wg.Wait()
	barrier(t, m)

	assert.Equal(t, counted{n: goroutines * each}, m.State(), "every event applied exactly once")
	for g := range seen {
		require.Len(t, seen[g], each)
		for i, v := range seen[g] {
			require.Equal(t, i, v, "events of goroutine %d out of order", g)
		}
	}
}

func TestMachine_StopLeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	m, _ := newMachine(t)
	m.Start(state2{})
	for range 10 {
		m.Schedule(moveToNextState)
	}
	stopAndWait(t, m)

	failed, _ := newMachine(t)
	failed.Start(failing{err: errFailed})
	waitDone(t, failed)
}

func TestMachine_ErrorHandlerReturningNilStaysUntilAnEvent(t *testing.T) {
	m, rec := newMachine(t)
	got := make(chan error, 1)
	m.Start(handledPanic{panicking{value: "once", got: got}})
	<-got
	barrier(t, m)
	require.IsType(t, handledPanic{}, m.State(), "stays in the failed state")

	m.Schedule(func(state) state { return state3{} })
	eventually(t, func() bool { return rec.Runs()[2] == 1 }, "the event moves on")
}

func TestWithLogger_LogsStatesAndTheEnd(t *testing.T) {
	var buf bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := statemachine.New(&recorder{}, statemachine.WithLogger(logger))
	m.Start(state1{})
	eventually(t, func() bool { return m.State() == state2{} }, "state2 entered")
	m.Schedule(func(state) state { return failing{err: errFailed} })
	waitDone(t, m)

	out := buf.String()
	assert.Contains(t, out, "state=statemachine_test.state1")
	assert.Contains(t, out, "state=statemachine_test.state2")
	assert.Contains(t, out, "level=ERROR")
	assert.Contains(t, out, "failed")
}

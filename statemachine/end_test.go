package statemachine_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/stowage/stowage/statemachine"
)

// How a machine ends: in a Final state, by Stop (from outside or from
// inside, through the pointer New returned), or by an unhandled error; and
// what Last, Err, State and Done say afterwards.

// finished is a Final state; it records that its Run ran to the end.
type finished struct{}

func (finished) Run(ctx context.Context, m *machine) (state, error) {
	m.Subject().ran(3, "finished")
	if ctx.Err() != nil {
		return nil, errors.New("finished ran with a cancelled context")
	}
	return state1{}, nil // ignored: a Final state's return ends the machine
}

func (finished) Final() {}

// working moves on to finished.
type working struct{}

func (working) Run(context.Context, *machine) (state, error) { return finished{}, nil }

// finalFailing is a Final state whose Run fails or panics.
type finalFailing struct{ panics bool }

func (s finalFailing) Run(context.Context, *machine) (state, error) {
	if s.panics {
		panic("cleanup crashed")
	}
	return nil, errFailed
}

func (finalFailing) Final() {}

// requireEnded asserts what every ended machine reports.
func requireEnded(t *testing.T, m *machine) {
	t.Helper()
	waitDone(t, m)
	assert.Nil(t, m.State())
	_, ok := statemachine.Query(m, func(state) int { return 1 })
	assert.False(t, ok)
}

func TestFinal_EndsTheMachineWhenItsRunReturns(t *testing.T) {
	for name, initial := range map[string]state{"entered from Run": working{}, "as the initial state": finished{}} {
		t.Run(name, func(t *testing.T) {
			m, rec := newMachine(t)
			m.Start(initial)
			requireEnded(t, m)
			assert.NoError(t, m.Err())
			assert.Equal(t, finished{}, m.Last())
			assert.Equal(t, [4]int{0, 0, 0, 1}, rec.Runs(), "finished ran once and nothing after it")
		})
	}
}

func TestFinal_EnteredByAnEvent(t *testing.T) {
	m, _ := newMachine(t)
	m.Start(state2{})
	m.Schedule(func(state) state { return finished{} })
	requireEnded(t, m)
	assert.NoError(t, m.Err())
	assert.Equal(t, finished{}, m.Last())
}

// A cleanup that fails in a Final state is not dropped: it is the
// machine's Err, and Last is the Final state.
func TestFinal_ReturnedErrorIsErr(t *testing.T) {
	m, _ := newMachine(t)
	m.Start(finalFailing{})
	requireEnded(t, m)
	assert.ErrorIs(t, m.Err(), errFailed)
	assert.Equal(t, finalFailing{}, m.Last())
}

// A Final state's error does not go to the machine's WithOnError either.
func TestFinal_ReturnedErrorIsNotHandled(t *testing.T) {
	handled := make(chan error, 1)
	m := statemachine.New(&recorder{}, statemachine.WithOnError(func(_ *machine, _ state, err error) state {
		handled <- err
		return nil
	}))
	cleanup := errors.New("delete reservation: disk full")
	m.Start(finalFunc(func() error { return cleanup }))
	waitDone(t, m)
	assert.ErrorIs(t, m.Err(), cleanup)
	assert.Empty(t, handled)
}

// finalFunc is a Final state whose Run returns nil and f's error.
type finalFunc func() error

func (f finalFunc) Run(context.Context, *machine) (state, error) { return nil, f() }
func (finalFunc) Final()                                         {}

func TestFinal_PanicEndsTheMachineWithTheError(t *testing.T) {
	m, _ := newMachine(t)
	m.Start(finalFailing{panics: true})
	requireEnded(t, m)
	assert.ErrorIs(t, m.Err(), statemachine.ErrPanic)
	assert.Contains(t, m.Err().Error(), "cleanup crashed")
	assert.Equal(t, finalFailing{panics: true}, m.Last())
}

// lingering is a Final state whose Run waits to be cancelled.
type lingering struct{}

func (lingering) Run(ctx context.Context, m *machine) (state, error) {
	m.Subject().ran(0, "lingering")
	<-ctx.Done()
	m.Subject().cancelled(0)
	return nil, nil
}

func (lingering) Final() {}

func TestFinal_AnEventCanLeaveItBeforeItsRunReturns(t *testing.T) {
	m, rec := newMachine(t)
	m.Start(lingering{})
	m.Schedule(func(state) state { return state3{} })
	eventually(t, func() bool { return rec.Runs()[2] == 1 }, "state3 entered")
	barrier(t, m)

	assert.Equal(t, state3{}, m.State(), "the cancelled Final state ended nothing")
	assert.Equal(t, [4]int{1, 0, 0, 0}, rec.Cancellations())
	assert.Nil(t, m.Last())
}

// stopper calls Stop through the pointer New returned (kept in the subject),
// from its Run or from an event it schedules. It then checks that its ctx
// was cancelled and returns a next state, which is ignored.
type stopper struct{ from string }

func (s stopper) Run(ctx context.Context, m *machine) (state, error) {
	m.Subject().ran(0, "stopper")
	if s.from == "Run" {
		m.Subject().m.Stop()
	} else {
		m.Schedule(func(state) state {
			m.Subject().m.Stop()
			return state3{} // ignored: the machine has ended
		})
		<-ctx.Done()
	}
	if ctx.Err() != nil {
		m.Subject().cancelled(0)
	}
	return state1{}, nil
}

// errorStopper fails; its OnError calls Stop through the pointer New
// returned.
type errorStopper struct{ rec *recorder }

func (s errorStopper) Run(_ context.Context, m *machine) (state, error) {
	m.Subject().ran(0, "errorStopper")
	return nil, errFailed
}

func (s errorStopper) OnError(error) state {
	s.rec.m.Stop()
	return state3{} // ignored: the machine has ended
}

func TestStop_FromInsideThroughThePointerFromNewDoesNotHang(t *testing.T) {
	for _, from := range []string{"Run", "Event", "OnError"} {
		t.Run(from, func(t *testing.T) {
			m, rec := newMachine(t)
			rec.m = m
			var initial state = stopper{from: from}
			if from == "OnError" {
				initial = errorStopper{rec: rec}
			}
			m.Start(initial)
			requireEnded(t, m) // bounded: fails instead of hanging
			assert.NoError(t, m.Err())
			assert.Equal(t, initial, m.Last())
			assert.Equal(t, [4]int{1, 0, 0, 0}, rec.Runs(), "nothing runs after Stop")
			if from != "OnError" {
				assert.Equal(t, [4]int{1, 0, 0, 0}, rec.Cancellations(), "Stop cancelled the calling state's ctx")
			}
		})
	}
}

func TestStop_FromInsideInABubbleEndsTheMachine(t *testing.T) {
	// synctest reports a deadlock if every goroutine of the bubble blocks:
	// a hanging Stop fails the test at once, without a timeout.
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		m := statemachine.New(rec)
		rec.m = m
		m.Start(stopper{from: "Run"})
		<-m.Done()
		assert.Equal(t, stopper{from: "Run"}, m.Last())
	})
}

// stubborn ignores its ctx until released.
type stubborn struct{ entered, release chan struct{} }

func (s stubborn) Run(context.Context, *machine) (state, error) {
	close(s.entered)
	<-s.release
	return nil, nil
}

func TestStop_DoesNotWaitForARunInFlightButDoneDoes(t *testing.T) {
	m, _ := newMachine(t)
	s := stubborn{entered: make(chan struct{}), release: make(chan struct{})}
	m.Start(s)
	<-s.entered

	stopped := make(chan struct{})
	go func() { m.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(waitFor):
		t.Fatal("Stop waited for a Run that ignores its ctx")
	}
	assert.Equal(t, s, m.Last(), "the machine has ended")
	assert.Nil(t, m.State())
	select {
	case <-m.Done():
		t.Fatal("Done closed while a Run is in flight")
	default:
	}

	close(s.release)
	waitDone(t, m)
}

// self reports the pointer its Run is given.
type self struct{ got chan *machine }

func (s self) Run(_ context.Context, m *machine) (state, error) {
	s.got <- m
	return nil, nil
}

func TestRun_IsGivenThePointerNewReturned(t *testing.T) {
	m, _ := newMachine(t)
	got := make(chan *machine, 1)
	m.Start(self{got: got})
	assert.Same(t, m, <-got)
}

func TestLast_TellsHowTheMachineEnded(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, m *machine)
		last state
		err  error
	}{
		{"Stop before Start", func(_ *testing.T, m *machine) { m.Stop() }, nil, nil},
		{"nil initial state", func(_ *testing.T, m *machine) { m.Start(nil) }, nil, statemachine.ErrNilState},
		{"finished", func(_ *testing.T, m *machine) { m.Start(working{}) }, finished{}, nil},
		{"stopped from outside", func(t *testing.T, m *machine) {
			m.Start(state2{})
			m.Schedule(moveToNextState)
			barrier(t, m)
			m.Stop()
		}, state3{}, nil},
		{"stopped from inside Run", func(_ *testing.T, m *machine) { m.Start(stopper{from: "Run"}) }, stopper{from: "Run"}, nil},
		{"stopped from inside an event", func(_ *testing.T, m *machine) { m.Start(stopper{from: "Event"}) }, stopper{from: "Event"}, nil},
		{"failed in Run", func(_ *testing.T, m *machine) { m.Start(failing{err: errFailed}) }, failing{err: errFailed}, errFailed},
		{"failed in an event", func(_ *testing.T, m *machine) {
			m.Start(state3{})
			m.Schedule(func(state) state { panic("bad event") })
		}, state3{}, statemachine.ErrPanic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, rec := newMachine(t)
			rec.m = m
			tt.run(t, m)
			requireEnded(t, m)
			assert.Equal(t, tt.last, m.Last())
			if tt.err == nil {
				assert.NoError(t, m.Err())
			} else {
				assert.ErrorIs(t, m.Err(), tt.err)
			}
		})
	}
}

func TestLast_IsNilUntilTheEnd(t *testing.T) {
	m, rec := newMachine(t)
	assert.Nil(t, m.Last(), "before Start")
	m.Start(state2{})
	eventually(t, func() bool { return rec.Runs()[1] == 1 }, "state2 runs")
	assert.Nil(t, m.Last(), "while running")
	m.Stop()
	assert.Equal(t, state2{}, m.Last(), "set by the time Stop returns")
}

func TestEnd_LeavesNoGoroutine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	for _, initial := range []state{working{}, stopper{from: "Run"}, stopper{from: "Event"}, lingering{}} {
		rec := &recorder{}
		m := statemachine.New(rec)
		rec.m = m
		m.Start(initial)
		m.Stop() // no-op for those that already ended
		waitDone(t, m)
	}
}

// records keeps every log record.
type records struct {
	mu   sync.Mutex
	list []slog.Record
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }
func (r *records) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.list = append(r.list, rec.Clone())
	return nil
}

// lines returns each record as its message and its "state" attribute.
func (r *records) lines() [][2]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][2]string
	for _, rec := range r.list {
		line := [2]string{rec.Message}
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "state" {
				line[1] = a.Value.String()
			}
			return true
		})
		out = append(out, line)
	}
	return out
}

// preparing is named by its String method; it fails once, then finishes.
type preparing struct{ attempt int }

func (p preparing) String() string { return "preparing" }

func (p preparing) Run(context.Context, *machine) (state, error) {
	if p.attempt == 0 {
		return nil, errFailed
	}
	return finalFailing{}, nil
}

func (p preparing) OnError(error) state { return preparing{attempt: 1} }

func TestWithLogger_EveryLineNamesTheState(t *testing.T) {
	var recs records
	logger := slog.New(&recs)

	m := statemachine.New(&recorder{}, statemachine.WithLogger(logger))
	m.Start(preparing{})
	waitDone(t, m)

	stopped := statemachine.New(&recorder{}, statemachine.WithLogger(logger))
	stopped.Start(state3{})
	stopped.Stop()
	waitDone(t, stopped)

	failed := statemachine.New(&recorder{}, statemachine.WithLogger(logger))
	failed.Start(panicking{value: "kaboom"})
	waitDone(t, failed)

	nilStart := statemachine.New(&recorder{}, statemachine.WithLogger(logger))
	nilStart.Start(nil)

	lines := recs.lines()
	for _, line := range lines {
		assert.NotEmpty(t, line[1], "no state in %q", line[0])
	}
	assert.Equal(t, [][2]string{
		{"enter state", "preparing"},
		{"state error handled", "preparing"},
		{"enter state", "preparing"},
		{"enter state", "statemachine_test.finalFailing"},
		{"machine ended by unhandled error", "statemachine_test.finalFailing"},
		{"enter state", "statemachine_test.state3"},
		{"machine stopped", "statemachine_test.state3"},
		{"enter state", "statemachine_test.panicking"},
		{"panic in Run", "statemachine_test.panicking"},
		{"machine ended by unhandled error", "statemachine_test.panicking"},
		{"machine ended by unhandled error", "<nil>"},
	}, lines)
}

func TestMachine_InABubbleWaitNeedsNoPolling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, rec := newMachine(t)
		m.Start(state1{})
		synctest.Wait() // state1 ran, state2 is parked on its ctx
		assert.Equal(t, state2{}, m.State())

		m.Schedule(moveToNextState)
		synctest.Wait()
		assert.Equal(t, state3{}, m.State())
		assert.Equal(t, [4]int{1, 1, 1, 0}, rec.Runs())
		assert.Equal(t, [4]int{0, 1, 0, 0}, rec.Cancellations())

		m.Schedule(func(state) state { return finished{} })
		<-m.Done()
		assert.Equal(t, finished{}, m.Last())
	})
}

// failingOnce fails on its first Run and moves to finished on its second.
type failingOnce struct{ tries *atomic.Int32 }

func (s failingOnce) Run(context.Context, *machine) (state, error) {
	if s.tries.Add(1) == 1 {
		return nil, errFailed
	}
	return finished{}, nil
}

// A state without OnError has its errors handled by WithOnError, which is
// given the machine, the state and the error; a state's own OnError comes
// first.
func TestWithOnError_HandlesStatesWithoutOnError(t *testing.T) {
	type call struct {
		m   *machine
		st  state
		err error
	}
	calls := make(chan call, 4)
	rec := &recorder{}
	m := statemachine.New(rec, statemachine.WithOnError(func(m *machine, st state, err error) state {
		calls <- call{m, st, err}
		return st // try again
	}))
	var tries atomic.Int32
	m.Start(failingOnce{&tries})
	waitDone(t, m)
	require.NoError(t, m.Err())
	assert.Equal(t, finished{}, m.Last())
	require.Len(t, calls, 1)
	c := <-calls
	assert.Same(t, m, c.m)
	assert.Equal(t, failingOnce{&tries}, c.st)
	assert.ErrorIs(t, c.err, errFailed)

	// state4 has an OnError of its own: it goes to state2, and the
	// machine-wide handler is not called.
	m2 := statemachine.New(rec, statemachine.WithOnError(func(m *machine, st state, err error) state {
		calls <- call{m, st, err}
		return nil
	}))
	t.Cleanup(func() { stopAndWait(t, m2) })
	m2.Start(state4{rec})
	require.Eventually(t, func() bool { return m2.State() == state2{} }, waitFor, time.Millisecond)
	assert.Empty(t, calls)
	assert.Equal(t, 1, rec.Errors()[3])
}

// Without WithOnError an unhandled error still ends the machine.
func TestWithOnError_UnsetAnErrorEndsTheMachine(t *testing.T) {
	m, _ := newMachine(t)
	var tries atomic.Int32
	m.Start(failingOnce{&tries})
	waitDone(t, m)
	assert.ErrorIs(t, m.Err(), errFailed)
}

// A WithOnError of another subject type cannot be used: the machine ends at
// Start with a clear error instead of ignoring it.
func TestWithOnError_WrongTypeEndsAtStart(t *testing.T) {
	m := statemachine.New(&recorder{}, statemachine.WithOnError(func(*statemachine.Machine[int], statemachine.State[int], error) statemachine.State[int] {
		return nil
	}))
	m.Start(state1{})
	waitDone(t, m)
	assert.ErrorIs(t, m.Err(), statemachine.ErrInvalidOption)
	assert.ErrorContains(t, m.Err(), "*statemachine_test.recorder")
}

// chain runs its Runs in order: each returns the next, the last nil, nil.
type chain struct {
	ran  *atomic.Int32
	left int
}

func (c chain) Run(context.Context, *machine) (state, error) {
	c.ran.Add(1)
	if c.left == 0 {
		return nil, nil
	}
	return chain{c.ran, c.left - 1}, nil
}

// blocked's Run returns once release is closed (or ctx ends).
type blocked struct{ release chan struct{} }

func (b blocked) Run(ctx context.Context, _ *machine) (state, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
	}
	return nil, nil
}

func TestWaitIdle_ReturnsOnceEveryRunHasReturned(t *testing.T) {
	m, _ := newMachine(t)
	require.NoError(t, m.WaitIdle(t.Context()), "not started: idle")
	var ran atomic.Int32
	m.Start(chain{&ran, 5})
	require.NoError(t, m.WaitIdle(t.Context()))
	assert.Equal(t, int32(6), ran.Load(), "every state of the chain ran before WaitIdle returned")
	assert.Equal(t, chain{&ran, 0}, m.State())

	m.Schedule(func(state) state { return chain{&ran, 2} })
	require.NoError(t, m.WaitIdle(t.Context()))
	assert.Equal(t, int32(9), ran.Load(), "the event and the Runs it led to were applied")

	m.Stop()
	require.NoError(t, m.WaitIdle(t.Context()), "ended: idle once Done")
	select {
	case <-m.Done():
	default:
		t.Fatal("WaitIdle returned before Done")
	}
}

func TestWaitIdle_ARunUnderWayIsBusy(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, _ := newMachine(t)
		release := make(chan struct{})
		m.Start(blocked{release})
		idle := make(chan error, 1)
		go func() { idle <- m.WaitIdle(t.Context()) }()
		synctest.Wait()
		select {
		case <-idle:
			t.Fatal("idle while a Run was under way")
		default:
		}
		close(release)
		require.NoError(t, <-idle)

		ctx, cancel := context.WithCancel(t.Context())
		m.Start(nil) // ignored
		m.Schedule(func(state) state { return blocked{make(chan struct{})} })
		go func() { idle <- m.WaitIdle(ctx) }()
		synctest.Wait()
		cancel()
		assert.ErrorIs(t, <-idle, context.Canceled)
	})
}

package statemachine_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/stowage/stowage/statemachine"
)

// A traffic light, moved by events. Each lamp reports that it is lit and
// stays lit until the next event.

type light struct{ lit chan string }

type lamp string

func (l lamp) Run(ctx context.Context, m *statemachine.Machine[*light]) (statemachine.State[*light], error) {
	select {
	case m.Subject().lit <- string(l):
	case <-ctx.Done():
	}
	return nil, nil // stay lit until an event moves the light on
}

func ExampleMachine() {
	tl := &light{lit: make(chan string)}
	m := statemachine.New(tl)
	next := func(current statemachine.State[*light]) statemachine.State[*light] {
		return map[lamp]lamp{"red": "green", "green": "yellow", "yellow": "red"}[current.(lamp)]
	}

	m.Start(lamp("red"))
	fmt.Println(<-tl.lit)
	for range 3 {
		m.Schedule(next)
		fmt.Println(<-tl.lit)
	}
	m.Stop()
	// Output:
	// red
	// green
	// yellow
	// red
}

// A download that retries: Run returns its error, OnError decides whether to
// try again or to give up. Both ends are Final states, so the machine ends
// by itself and Last tells which end it reached.

type download struct {
	failures int // how many attempts fail before one succeeds
}

var errReset = errors.New("connection reset")

type downloading struct{ attempt int }

func (s downloading) Run(_ context.Context, m *statemachine.Machine[*download]) (statemachine.State[*download], error) {
	if s.attempt <= m.Subject().failures {
		fmt.Printf("attempt %d: %v\n", s.attempt, errReset)
		return nil, errReset
	}
	fmt.Printf("attempt %d: ok\n", s.attempt)
	return downloaded{}, nil
}

func (s downloading) OnError(err error) statemachine.State[*download] {
	if s.attempt < 3 {
		return downloading{attempt: s.attempt + 1} // retry: a fresh copy of the state
	}
	return gaveUp{err: err}
}

type downloaded struct{}

func (downloaded) Final() {}

func (downloaded) Run(context.Context, *statemachine.Machine[*download]) (statemachine.State[*download], error) {
	return nil, nil
}

type gaveUp struct{ err error }

func (gaveUp) Final() {}

func (s gaveUp) Run(context.Context, *statemachine.Machine[*download]) (statemachine.State[*download], error) {
	fmt.Println("giving up:", s.err)
	return nil, nil
}

func ExampleErrorHandler() {
	for _, failures := range []int{2, 5} {
		m := statemachine.New(&download{failures: failures})
		m.Start(downloading{attempt: 1})
		<-m.Done()
		fmt.Printf("ended in %T\n", m.Last())
	}
	// Output:
	// attempt 1: connection reset
	// attempt 2: connection reset
	// attempt 3: ok
	// ended in statemachine_test.downloaded
	// attempt 1: connection reset
	// attempt 2: connection reset
	// attempt 3: connection reset
	// giving up: connection reset
	// ended in statemachine_test.gaveUp
}

// A sale ends in a Final state: its Run does the last work (here, the
// cleanup) with a live context, and once it returns the machine has ended.

type sale struct{ slot string }

type filling struct{}

func (filling) Run(_ context.Context, m *statemachine.Machine[*sale]) (statemachine.State[*sale], error) {
	fmt.Println("filling", m.Subject().slot)
	return finishedSale{}, nil
}

type finishedSale struct{}

func (finishedSale) Final()         {}
func (finishedSale) String() string { return "finished" }

func (finishedSale) Run(_ context.Context, m *statemachine.Machine[*sale]) (statemachine.State[*sale], error) {
	fmt.Println("cleaning up", m.Subject().slot)
	return nil, nil
}

func ExampleFinal() {
	m := statemachine.New(&sale{slot: "slot-1"})
	m.Start(filling{})
	<-m.Done()
	fmt.Println("ended in", m.Last(), "with error", m.Err())
	// Output:
	// filling slot-1
	// cleaning up slot-1
	// ended in finished with error <nil>
}

// waitingForProof stays until it is stopped.
type waitingForProof struct{}

func (waitingForProof) String() string { return "waiting for proof" }

func (waitingForProof) Run(ctx context.Context, _ *statemachine.Machine[*sale]) (statemachine.State[*sale], error) {
	<-ctx.Done()
	return nil, nil
}

// reserving fails, and handles nothing.
type reserving struct{}

func (reserving) String() string { return "reserving" }

func (reserving) Run(context.Context, *statemachine.Machine[*sale]) (statemachine.State[*sale], error) {
	return nil, errors.New("no availability")
}

// outcome waits for m to end and tells how it ended.
func outcome(m *statemachine.Machine[*sale]) string {
	<-m.Done()
	if err := m.Err(); err != nil {
		return fmt.Sprintf("failed in %v: %v", m.Last(), err)
	}
	if _, ok := m.Last().(statemachine.Final); ok {
		return fmt.Sprintf("finished in %v", m.Last())
	}
	return fmt.Sprintf("stopped in %v", m.Last())
}

// Last and Err, read once Done is closed, tell a machine that finished from
// one that was stopped and one that failed.
func ExampleMachine_Last() {
	finished := statemachine.New(&sale{slot: "slot-1"})
	finished.Start(filling{})
	fmt.Println(outcome(finished))

	stopped := statemachine.New(&sale{slot: "slot-2"})
	stopped.Start(waitingForProof{})
	stopped.Stop()
	fmt.Println(outcome(stopped))

	failed := statemachine.New(&sale{slot: "slot-3"})
	failed.Start(reserving{})
	fmt.Println(outcome(failed))
	// Output:
	// filling slot-1
	// cleaning up slot-1
	// finished in finished
	// stopped in waiting for proof
	// failed in reserving: state reserving: no availability
}

type diskFull struct{}

func (diskFull) Run(context.Context, *statemachine.Machine[*download]) (statemachine.State[*download], error) {
	return nil, errors.New("disk full")
}

// An error that no state handles ends the machine: Done is closed and Err
// says what happened.
func ExampleMachine_Err() {
	m := statemachine.New(&download{})
	m.Start(diskFull{})
	<-m.Done()
	fmt.Println(m.Err())
	// Output: state statemachine_test.diskFull: disk full
}

func ExampleQuery() {
	m := statemachine.New(&light{lit: make(chan string)})
	colour := func(s statemachine.State[*light]) string { return string(s.(lamp)) }

	m.Start(lamp("red"))
	fmt.Println(statemachine.Query(m, colour))
	m.Stop()
	fmt.Println(statemachine.Query(m, colour))
	// Output:
	// red true
	//  false
}

// The error handling shared by every state is written once, with
// WithOnError: any state without an OnError of its own that fails moves to
// the Final state failedTo, which records where it failed. A Final state's
// own error (a cleanup that failed) is the machine's Err.

type upload struct{ name string }

type (
	uploading struct{}
	verifying struct{}
	failedTo  struct {
		in  statemachine.State[*upload]
		err error
	}
)

var errTimeout = errors.New("timeout")

func (uploading) Run(context.Context, *statemachine.Machine[*upload]) (statemachine.State[*upload], error) {
	return verifying{}, nil
}

func (verifying) Run(context.Context, *statemachine.Machine[*upload]) (statemachine.State[*upload], error) {
	return nil, errTimeout
}

func (failedTo) Final() {}

func (s failedTo) Run(_ context.Context, m *statemachine.Machine[*upload]) (statemachine.State[*upload], error) {
	fmt.Printf("%s failed in %T: %v\n", m.Subject().name, s.in, s.err)
	return nil, errors.New("cleanup: disk full")
}

func ExampleWithOnError() {
	m := statemachine.New(&upload{name: "slot 3"}, statemachine.WithOnError(
		func(m *statemachine.Machine[*upload], st statemachine.State[*upload], err error) statemachine.State[*upload] {
			return failedTo{in: st, err: err}
		}))
	m.Start(uploading{})
	<-m.Done()
	fmt.Println("err:", m.Err())
	// Output:
	// slot 3 failed in statemachine_test.verifying: timeout
	// err: state statemachine_test.failedTo: cleanup: disk full
}

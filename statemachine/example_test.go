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
// try again. The states run one after the other, so their output is ordered.

type download struct {
	failures int // how many attempts fail before one succeeds
	finished chan struct{}
}

var errReset = errors.New("connection reset")

type downloading struct{ attempt int }

func (s downloading) Run(_ context.Context, m *statemachine.Machine[*download]) (statemachine.State[*download], error) {
	d := m.Subject()
	if s.attempt <= d.failures {
		fmt.Printf("attempt %d: %v\n", s.attempt, errReset)
		return nil, errReset
	}
	fmt.Printf("attempt %d: ok\n", s.attempt)
	return downloaded{}, nil
}

func (s downloading) OnError(err error) statemachine.State[*download] {
	if s.attempt < 3 {
		return downloading{attempt: s.attempt + 1}
	}
	return gaveUp{err: err}
}

type downloaded struct{}

func (downloaded) Run(_ context.Context, m *statemachine.Machine[*download]) (statemachine.State[*download], error) {
	fmt.Println("downloaded")
	close(m.Subject().finished)
	return nil, nil
}

type gaveUp struct{ err error }

func (s gaveUp) Run(_ context.Context, m *statemachine.Machine[*download]) (statemachine.State[*download], error) {
	fmt.Println("gave up:", s.err)
	close(m.Subject().finished)
	return nil, nil
}

func Example_retries() {
	for _, failures := range []int{2, 5} {
		d := &download{failures: failures, finished: make(chan struct{})}
		m := statemachine.New(d)
		m.Start(downloading{attempt: 1})
		<-d.finished
		m.Stop()
	}
	// Output:
	// attempt 1: connection reset
	// attempt 2: connection reset
	// attempt 3: ok
	// downloaded
	// attempt 1: connection reset
	// attempt 2: connection reset
	// attempt 3: connection reset
	// gave up: connection reset
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

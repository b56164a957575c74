package statemachine_test

import (
	"context"
	"testing"

	"github.com/stowage/stowage/statemachine"
)

// One transition, measured two ways (moved by an event, moved by Run's
// result), each beside a baseline that does the same work with nothing but a
// goroutine per state, a context to cancel it and channels to hand over: the
// ratio between the two is the machine's overhead.

type benchState = statemachine.State[struct{}]

// parked reports that it was entered, then waits to be cancelled.
type parked struct{ entered chan struct{} }

func (p *parked) Run(ctx context.Context, _ *statemachine.Machine[struct{}]) (benchState, error) {
	p.entered <- struct{}{}
	<-ctx.Done()
	return nil, nil
}

func BenchmarkTransition_Event(b *testing.B) {
	entered := make(chan struct{})
	x, y := &parked{entered}, &parked{entered}
	flip := func(current benchState) benchState {
		if current == x {
			return y
		}
		return x
	}
	m := statemachine.New(struct{}{})
	m.Start(x)
	<-entered
	b.ReportAllocs()
	for b.Loop() {
		m.Schedule(flip)
		<-entered
	}
	b.StopTimer()
	m.Stop()
	<-m.Done()
}

// BenchmarkTransition_Event_Baseline: a goroutine takes events from a
// channel, cancels the running state, waits for it and starts the next.
func BenchmarkTransition_Event_Baseline(b *testing.B) {
	entered := make(chan struct{})
	x, y := &parked{entered}, &parked{entered}
	events := make(chan func(*parked) *parked, 64)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		runDone := make(chan struct{}, 1)
		start := func(p *parked) context.CancelFunc {
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				_, _ = p.Run(ctx, nil)
				runDone <- struct{}{}
			}()
			return cancel
		}
		current := x
		cancel := start(current)
		for e := range events {
			cancel()
			<-runDone
			current = e(current)
			cancel = start(current)
		}
		cancel()
		<-runDone
	}()
	flip := func(current *parked) *parked {
		if current == x {
			return y
		}
		return x
	}
	<-entered
	b.ReportAllocs()
	for b.Loop() {
		events <- flip
		<-entered
	}
	b.StopTimer()
	close(events)
	<-stopped
}

// relay moves straight on to its partner until left reaches zero.
type relay struct {
	partner  *relay
	left     *int
	finished chan struct{}
}

func (r *relay) Run(context.Context, *statemachine.Machine[struct{}]) (benchState, error) {
	*r.left--
	if *r.left <= 0 {
		close(r.finished)
		return nil, nil
	}
	return r.partner, nil
}

func relays(n int) *relay {
	left := n + 1 // the first Run is the start, not a transition
	x := &relay{left: &left, finished: make(chan struct{})}
	x.partner = &relay{partner: x, left: &left, finished: x.finished}
	return x
}

func BenchmarkTransition_Run(b *testing.B) {
	x := relays(b.N)
	m := statemachine.New(struct{}{})
	b.ReportAllocs()
	b.ResetTimer()
	m.Start(x)
	<-x.finished
	b.StopTimer()
	m.Stop()
	<-m.Done()
}

// BenchmarkTransition_Run_Baseline: each state's goroutine hands its next
// state over a channel; the driver cancels its context and starts the next.
func BenchmarkTransition_Run_Baseline(b *testing.B) {
	x := relays(b.N)
	results := make(chan benchState, 1)
	b.ReportAllocs()
	b.ResetTimer()
	var current benchState = x
	for current != nil {
		ctx, cancel := context.WithCancel(context.Background())
		go func(s benchState) {
			next, _ := s.Run(ctx, nil)
			results <- next
		}(current)
		current = <-results
		cancel()
	}
	b.StopTimer()
}

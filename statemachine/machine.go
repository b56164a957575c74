package statemachine

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
)

// State is one state of a machine whose subject has type T.
//
// Entering a state starts its Run in a goroutine of its own. Run returns:
//
//   - a non-nil next state and a nil error: the machine moves to next, unless
//     it has left this state in the meantime (then the result is dropped);
//   - nil, nil: the machine stays in this state until an event moves it on;
//   - a non-nil error: the error goes to the state's OnError when it
//     implements [ErrorHandler], else to the machine's [WithOnError]
//     function when it has one; otherwise it ends the machine, and Err
//     returns it. next is then ignored.
//
// A state that implements [Final] ends the machine when its Run returns,
// with the error Run returned, if any, as the machine's Err.
//
// ctx is cancelled when the machine leaves the state or stops; Run must then
// return promptly, because the machine waits for it before it enters the next
// state or closes Done. Whatever Run returns after its ctx was cancelled is
// ignored, so cancellation never counts as an error.
//
// m is the machine running the state: the same pointer [New] returned. Run
// may call any of its methods, Stop included; it reaches the subject with
// m.Subject().
//
// A machine runs one Run at a time, and a state's methods are called only by
// its machine, except for [Query], which calls its q on the caller's
// goroutine. One State value may be entered more than once, so keep per-visit
// data in Run's local variables or in a fresh State value.
//
// The machine names a state in its errors and log lines by its String method
// when it implements [fmt.Stringer], else by its type (package.Type).
type State[T any] interface {
	Run(ctx context.Context, m *Machine[T]) (next State[T], err error)
}

// Final is implemented by a state that ends the machine: once its Run
// returns, the machine ends with Last() reporting the state. A Final state
// does its last work, such as cleaning up, in Run and returns nil, nil; the
// machine then ends with Err() == nil. An error it returns (a cleanup that
// failed) is not handled by any OnError: it becomes the machine's Err,
// wrapped with the state's name, and a panic in its Run ends the machine
// with an error wrapping [ErrPanic]. The next state it returns is ignored.
//
// A Final state is an ordinary state until its Run returns: events still
// apply to it, and one that moves the machine elsewhere first cancels its
// Run, which then ends nothing.
type Final interface{ Final() }

// ErrorHandler is implemented by a State that handles the errors of its own
// Run. OnError is called on the machine's goroutine with the error Run
// returned (or the panic it raised, wrapped in [ErrPanic]) and returns the
// state to move to, or nil to stay in the failed state until an event moves
// it on. It is never called for an error from a Run whose state was already
// left, nor for a [Final] state. A state without OnError has its errors
// handled by the machine's [WithOnError] function, if set.
type ErrorHandler[T any] interface {
	OnError(err error) State[T]
}

// Event computes a transition from the current state: it returns the state to
// move to, or nil for no transition. Returning current itself re-enters it:
// its Run is cancelled and started again.
//
// Events run one at a time on the machine's goroutine, in the order they were
// scheduled, so an Event needs no locking of its own to read the state or
// data that only events touch. It must not block for long, as it holds up the
// machine. It may call the machine's methods, Stop included; the same holds
// for OnError.
type Event[T any] func(current State[T]) State[T]

// Option configures a Machine.
type Option func(*options)

type options struct {
	log     *slog.Logger
	onError any // func(*Machine[T], State[T], error) State[T], set by WithOnError[T]
}

// WithOnError sets the machine-wide handler of Run errors: fn is called for
// an error from the Run of a state that does not implement [ErrorHandler]
// (a panic included, as an error wrapping [ErrPanic]), with the machine, the
// state that failed and the error, and returns the state to move to, or nil
// to stay in the failed state until an event moves it on. It is the default
// that saves writing the same OnError on every state; a state's own OnError
// comes first, and a [Final] state's error is never handled (it ends the
// machine as its Err). Without WithOnError an unhandled error ends the
// machine.
//
// fn runs on the machine's goroutine like OnError, and a panic in it ends
// the machine with an error wrapping ErrPanic. T must be the machine's
// subject type: a machine made by New with a WithOnError of another type
// ends at Start with an error wrapping [ErrInvalidOption].
func WithOnError[T any](fn func(m *Machine[T], state State[T], err error) State[T]) Option {
	return func(o *options) {
		if fn != nil {
			o.onError = fn
		}
	}
}

// WithLogger makes the machine log to l: entered states and the end in a
// Final state or by Stop at Debug, errors handled by OnError at Info, the
// error that ends a machine (and the stack of a panic) at Error. Every line
// carries the state it is about as the attribute "state" (see [State] for
// how states are named). A machine is silent by default; a nil l keeps it
// so.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// Machine drives a subject of type T through states. Create one with [New],
// enter the first state with Start, move it with events (Schedule) or by
// returning the next state from Run, and end it by entering a [Final] state,
// by Stop, or by an unhandled error. Done is closed once it has ended and
// every goroutine it started has returned; Last and Err then tell how it
// ended.
//
// A Machine runs at most once: Start after the end does nothing. Make a new
// Machine to run the subject again.
//
// All methods are safe for concurrent use, also from inside a state's Run,
// an Event or an OnError.
//
// The Machine is the goroutine shell around the deterministic core that
// decides each transition: one loop goroutine feeds inputs to the core in
// FIFO order and carries out its decisions, and each running state has a
// goroutine of its own.
type Machine[T any] struct {
	subject T
	log     *slog.Logger

	wake    chan struct{} // cap 1: an input was queued or Stop was called
	runDone chan struct{} // cap 1: the Run of the state entered last has returned
	done    chan struct{} // closed once the machine has ended and its goroutines returned

	mu     sync.Mutex
	phase  phase
	core   core[T]            // the current state; the loop writes it under mu
	cancel context.CancelFunc // cancels the Run of core.current
	queue  []input[T]         // pending inputs are queue[head:]
	head   int
	last   State[T] // set when the machine ends
	err    error    // set when the machine ends

	// optErr is an option New could not apply; Start ends the machine
	// with it.
	optErr error

	// For WaitIdle: a Run is under way, the loop is applying an input, and
	// a channel closed when the machine may have become idle (nil until
	// WaitIdle needs it).
	running, stepping bool
	idle              chan struct{}

	// runInFlight is owned by the loop goroutine (and by Start before it
	// starts the loop): a Run goroutine exists whose runDone is not yet
	// received.
	runInFlight bool
}

// phase is where a machine is in its one life.
type phase uint8

const (
	notStarted phase = iota
	started          // a state is current; inputs are taken
	ended            // by Final, Stop or an error: last and err are set, inputs are dropped
)

// New returns a machine for subject, not yet started.
func New[T any](subject T, opts ...Option) *Machine[T] {
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	m := &Machine[T]{
		subject: subject,
		log:     o.log,
		wake:    make(chan struct{}, 1),
		runDone: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	if o.onError != nil {
		fn, ok := o.onError.(func(*Machine[T], State[T], error) State[T])
		if ok {
			m.core.onError = func(st State[T], err error) State[T] { return fn(m, st, err) }
		} else {
			var zero T
			m.optErr = fmt.Errorf("%w: WithOnError with a %T on a machine of %T", ErrInvalidOption, o.onError, zero)
		}
	}
	return m
}

// Subject returns the subject the machine was made for.
func (m *Machine[T]) Subject() T {
	return m.subject
}

// Start enters initial and starts its Run. It returns at once. Start on a
// machine that was started before, or stopped, does nothing. A nil initial
// state ends the machine with [ErrNilState], an option New could not apply
// with [ErrInvalidOption].
func (m *Machine[T]) Start(initial State[T]) {
	m.mu.Lock()
	if m.phase != notStarted {
		m.mu.Unlock()
		return
	}
	d := m.core.start(initial)
	if m.optErr != nil {
		d = decision[T]{end: true, err: m.optErr}
	}
	if d.end {
		m.phase, m.err = ended, d.err
		close(m.done)
		m.mu.Unlock()
		m.logEnd(d)
		return
	}
	m.phase = started
	m.core.commit(d)
	ctx := m.enterLocked()
	m.mu.Unlock()
	m.logEnter(d)
	go m.run(ctx, d.enter, d.epoch, d.final)
	go m.loop()
}

// Schedule queues e to be applied to the state that is current when its turn
// comes. It never blocks. Events are applied one at a time in the order they
// were scheduled; a state's Run may schedule events too. Schedule does nothing
// before Start, after the machine ended, or when e is nil.
func (m *Machine[T]) Schedule(e Event[T]) {
	if e == nil {
		return
	}
	m.push(input[T]{event: e})
}

// Stop ends the machine in its current state: it cancels the running state's
// context, drops events not yet applied and ignores later ones. When Stop
// returns, the machine has ended: State is nil, Last is the state it was
// stopped in, Err is nil, and nothing changes that any more: no state is
// entered, and whatever a Run, Event or OnError still under way returns is
// dropped. Stop is idempotent and does nothing after the end; Stop before
// Start makes the machine unable to start.
//
// Stop does not wait for a Run, Event or OnError that is under way: one may
// be the caller. (A state entered just before Stop may even have its Run
// called after Stop returns, with its ctx already cancelled.) To wait until
// every goroutine of the machine has returned, receive from Done:
//
//	m.Stop()
//	<-m.Done()
//
// Stop is safe to call from anywhere, through any pointer to the machine,
// including from the Run, Event or OnError it would otherwise wait for. To
// end a machine from inside, prefer moving to a [Final] state: its Run
// finishes its work with a live context, and Last reports it.
func (m *Machine[T]) Stop() {
	m.mu.Lock()
	switch m.phase {
	case notStarted:
		m.phase = ended
		close(m.done)
		m.mu.Unlock()
	case started:
		last, cancel := m.core.current, m.cancel
		m.phase, m.last = ended, last
		m.dropQueueLocked()
		m.mu.Unlock()
		cancel()
		m.signal()
		m.logStopped(last)
	default:
		m.mu.Unlock()
	}
}

// State returns the current state: the one most recently entered. It is nil
// before Start and once the machine has ended.
func (m *Machine[T]) State() State[T] {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phase != started {
		return nil
	}
	return m.core.current
}

// Done returns a channel that is closed when the machine has ended (in a
// [Final] state, by Stop or by an unhandled error) and every Run, Event and
// OnError it started has returned.
func (m *Machine[T]) Done() <-chan struct{} {
	return m.done
}

// Last returns the state the machine was in when it ended: the [Final] state
// whose Run returned, the state it was stopped in, or the state whose error
// (or whose event's panic) ended it. It is nil until the machine has ended,
// and when it ended before entering any state (Stop before Start, a nil
// initial state).
//
// With Err, Last tells the three ends apart:
//
//	Err() != nil                 failed: no state handled an error
//	Last() implements Final      finished
//	otherwise                    stopped
//
// A machine stopped while the Run of its Final state was still under way
// reports that Final state too: its end was already under way.
func (m *Machine[T]) Last() State[T] {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// Err returns the error that ended the machine: an error from Run that no
// OnError (nor the WithOnError function) handled, or that a [Final] state's
// Run returned (wrapped with the state's name; errors.Is finds it), a panic
// wrapped in [ErrPanic], [ErrNilState] or [ErrInvalidOption]. It is nil while
// the machine runs, after Stop, and after a Final state's Run returned
// without error.
func (m *Machine[T]) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

// WaitIdle returns nil once the machine has nothing to do until an event is
// scheduled: no Run is under way (the current state's Run has returned) and
// no event or Run result waits to be applied; or once the machine has ended
// and Done is closed. A machine not started is idle. It returns ctx.Err() if
// ctx ends first.
//
// A Run that blocks (on the network, say) keeps the machine busy; a state
// that waits for the outside world returns nil, nil from Run and is moved
// on by an event. WaitIdle is what a simulation or a test waits on before it
// moves its clock, instead of polling State.
func (m *Machine[T]) WaitIdle(ctx context.Context) error {
	for {
		m.mu.Lock()
		switch {
		case m.phase == notStarted, m.phase == started && m.idleLocked():
			m.mu.Unlock()
			return nil
		case m.phase == started && m.idle == nil:
			m.idle = make(chan struct{})
		}
		ch := m.idle // nil once ended: only done or ctx
		m.mu.Unlock()
		select {
		case <-ch:
		case <-m.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (m *Machine[T]) idleLocked() bool {
	return !m.running && !m.stepping && m.head == len(m.queue)
}

// notifyIdleLocked wakes WaitIdle when the machine has become idle.
func (m *Machine[T]) notifyIdleLocked() {
	if m.idle != nil && m.idleLocked() {
		close(m.idle)
		m.idle = nil
	}
}

// Query returns q applied to the current state, and true; or the zero R and
// false when no state is current (before Start, after the end). q runs on
// the caller's goroutine, concurrently with the state's Run, so it should
// read only what is safe to read so; the state may be left while q runs.
func Query[T, R any](m *Machine[T], q func(State[T]) R) (R, bool) {
	st := m.State()
	if st == nil {
		var zero R
		return zero, false
	}
	return q(st), true
}

// push queues in for the loop, unless the machine is not started or ended.
func (m *Machine[T]) push(in input[T]) {
	m.mu.Lock()
	if m.phase != started {
		m.mu.Unlock()
		return
	}
	if len(m.queue) == cap(m.queue) && m.head > 0 {
		// Reuse the consumed front instead of growing.
		n := copy(m.queue, m.queue[m.head:])
		clear(m.queue[n:])
		m.queue, m.head = m.queue[:n], 0
	}
	m.queue = append(m.queue, in)
	m.mu.Unlock()
	m.signal()
}

func (m *Machine[T]) dropQueueLocked() {
	clear(m.queue)
	m.queue, m.head = nil, 0
}

func (m *Machine[T]) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// next waits for the next input. It returns false once the machine has
// ended.
func (m *Machine[T]) next() (input[T], bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stepping = false
	for m.phase == started && m.head == len(m.queue) {
		m.notifyIdleLocked()
		m.mu.Unlock()
		<-m.wake
		m.mu.Lock()
	}
	if m.phase != started {
		return input[T]{}, false
	}
	m.stepping = true
	in := m.queue[m.head]
	m.queue[m.head] = input[T]{}
	m.head++
	if m.head == len(m.queue) {
		m.queue, m.head = m.queue[:0], 0
	}
	return in, true
}

// loop is the machine's goroutine: it applies inputs one at a time and
// carries out the core's decisions. Once the machine has ended it waits for
// the last Run and closes done.
func (m *Machine[T]) loop() {
	returned := false
	defer func() {
		if !returned {
			// Only runtime.Goexit gets here: the core recovers panics.
			m.end(decision[T]{from: m.core.current, end: true,
				err: fmt.Errorf("%w: runtime.Goexit in an event or error handler", ErrPanic)})
		}
		m.leave()
		close(m.done)
	}()
	for {
		in, ok := m.next()
		if !ok {
			break
		}
		d := m.core.step(in)
		if d.handled != nil {
			m.logHandled(d)
		}
		if d.end {
			m.end(d)
			break
		}
		if d.enter == nil {
			continue
		}
		m.leave()
		m.mu.Lock()
		if m.phase != started {
			m.mu.Unlock()
			break
		}
		m.core.commit(d)
		ctx := m.enterLocked()
		m.mu.Unlock()
		m.logEnter(d)
		go m.run(ctx, d.enter, d.epoch, d.final)
	}
	returned = true
}

// end records the end the core decided, unless Stop ended the machine first.
func (m *Machine[T]) end(d decision[T]) {
	m.mu.Lock()
	if m.phase != started {
		m.mu.Unlock()
		return
	}
	m.core.commit(d)
	m.phase, m.last, m.err = ended, d.from, d.err
	m.dropQueueLocked()
	m.mu.Unlock()
	m.logEnd(d)
}

// enterLocked makes the context for the Run of the state the core has just
// made current; the caller starts the Run once it has logged the entry, so
// the entry comes first in the log. m.mu must be held.
func (m *Machine[T]) enterLocked() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	m.runInFlight = true
	m.running = true
	return ctx
}

// leave cancels the running state and waits for its Run to return.
func (m *Machine[T]) leave() {
	if !m.runInFlight {
		return
	}
	m.cancel()
	<-m.runDone
	m.runInFlight = false
}

// run calls st.Run and hands its result to the loop. A result that arrives
// after ctx was cancelled is dropped here: the machine has already moved on.
// A Final state's result is handed over even when it is nil, nil: its
// return is what ends the machine.
func (m *Machine[T]) run(ctx context.Context, st State[T], epoch uint64, final bool) {
	var next State[T]
	var err error
	returned, panicked := false, false
	defer func() {
		if r := recover(); r != nil {
			next, err, panicked = nil, panicError(r), true
			m.logPanic(st, r)
		} else if !returned {
			next, err, panicked = nil, fmt.Errorf("%w: runtime.Goexit in Run", ErrPanic), true
		}
		if ctx.Err() == nil && (final || next != nil || err != nil) {
			m.push(input[T]{epoch: epoch, next: next, err: err, panicked: panicked})
		}
		m.mu.Lock()
		m.running = false
		m.notifyIdleLocked()
		m.mu.Unlock()
		m.runDone <- struct{}{}
	}()
	next, err = st.Run(ctx, m)
	returned = true
}

func (m *Machine[T]) logEnter(d decision[T]) {
	if m.log.Enabled(context.Background(), slog.LevelDebug) {
		m.log.LogAttrs(context.Background(), slog.LevelDebug, "enter state",
			slog.String("state", nameOf(d.enter)), slog.Uint64("epoch", d.epoch))
	}
}

func (m *Machine[T]) logHandled(d decision[T]) {
	if m.log.Enabled(context.Background(), slog.LevelInfo) {
		m.log.LogAttrs(context.Background(), slog.LevelInfo, "state error handled",
			slog.String("state", nameOf(d.from)), slog.Any("error", d.handled))
	}
}

func (m *Machine[T]) logEnd(d decision[T]) {
	ctx, state := context.Background(), slog.String("state", nameOf(d.from))
	if d.err != nil {
		m.log.LogAttrs(ctx, slog.LevelError, "machine ended by unhandled error", state, slog.Any("error", d.err))
		return
	}
	m.log.LogAttrs(ctx, slog.LevelDebug, "machine finished", state)
}

func (m *Machine[T]) logStopped(last State[T]) {
	if m.log.Enabled(context.Background(), slog.LevelDebug) {
		m.log.LogAttrs(context.Background(), slog.LevelDebug, "machine stopped",
			slog.String("state", nameOf(last)))
	}
}

func (m *Machine[T]) logPanic(st State[T], r any) {
	if m.log.Enabled(context.Background(), slog.LevelError) {
		m.log.LogAttrs(context.Background(), slog.LevelError, "panic in Run",
			slog.String("state", nameOf(st)), slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
	}
}

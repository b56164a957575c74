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
//     implements [ErrorHandler]; otherwise it ends the machine. next is then
//     ignored.
//
// ctx is cancelled when the machine leaves the state or stops; Run must then
// return promptly, because the machine waits for it. Whatever Run returns
// after its ctx was cancelled is ignored, so cancellation never counts as an
// error.
//
// m is a handle on the machine running the state: the same machine, though
// not the same pointer as the one New returned. Run may call any of its
// methods, including Stop (see [Machine.Stop]); it reaches the subject with
// m.Subject().
//
// A machine runs one Run at a time, and a state's methods are called only by
// its machine, except for [Query], which calls its q on the caller's
// goroutine. One State value may be entered more than once, so keep per-visit
// data in Run's local variables or in a fresh State value.
type State[T any] interface {
	Run(ctx context.Context, m *Machine[T]) (next State[T], err error)
}

// ErrorHandler is implemented by a State that handles the errors of its own
// Run. OnError is called on the machine's goroutine with the error Run
// returned (or the panic it raised, wrapped in [ErrPanic]) and returns the
// state to move to, or nil to stay in the failed state until an event moves
// it on. It is never called for an error from a Run whose state was already
// left.
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
// machine, and must not call Stop on the *Machine from New, which would wait
// for the goroutine running the event. The same holds for OnError.
type Event[T any] func(current State[T]) State[T]

// Option configures a Machine.
type Option func(*options)

type options struct {
	log *slog.Logger
}

// WithLogger makes the machine log to l: entered states at Debug, errors
// handled by OnError at Info, the error that ends a machine (and the stack of
// a panic) at Error. A machine is silent by default; a nil l keeps it so.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.log = l
		}
	}
}

// Machine drives a subject of type T through states. Create one with [New],
// enter the first state with Start, move it with events (Schedule) or by
// returning the next state from Run, and end it with Stop or an unhandled
// error.
//
// A Machine runs at most once: Start after Stop, or after an error ended the
// machine, does nothing. Make a new Machine to run the subject again.
//
// All methods are safe for concurrent use, also from inside a state's Run.
type Machine[T any] struct {
	s *shell[T]
	// insideRun marks the handle given to Run, whose Stop must not wait for
	// the Run that may be calling it.
	insideRun bool
}

type phase uint8

const (
	idle     phase = iota // not started
	running               // started, a state is current
	stopping              // Stop was called, the loop is winding down
	ended                 // stopped or ended by an error; done is closed
)

// shell is the goroutine side of a Machine: one loop goroutine that feeds
// inputs to the core in FIFO order, and one goroutine per running state.
type shell[T any] struct {
	subject T
	log     *slog.Logger
	handle  *Machine[T] // the handle given to Run

	wake    chan struct{} // cap 1: an input was queued or Stop was called
	runDone chan struct{} // cap 1: the running state's Run has returned
	done    chan struct{} // closed when the machine has ended

	mu      sync.Mutex
	phase   phase
	current State[T] // nil unless phase == running
	cancel  context.CancelFunc
	queue   []input[T] // pending inputs are queue[head:]
	head    int
	err     error

	// Owned by the loop goroutine (and by Start before it starts the loop).
	core    core[T]
	running bool // a Run goroutine exists whose runDone is not yet received
}

// New returns a machine for subject, not yet started.
func New[T any](subject T, opts ...Option) *Machine[T] {
	o := options{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	s := &shell[T]{
		subject: subject,
		log:     o.log,
		wake:    make(chan struct{}, 1),
		runDone: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	s.handle = &Machine[T]{s: s, insideRun: true}
	return &Machine[T]{s: s}
}

// Subject returns the subject the machine was made for.
func (m *Machine[T]) Subject() T {
	return m.s.subject
}

// Start enters initial and starts its Run. It returns at once. Start on a
// machine that is running, stopped or ended does nothing. A nil initial state
// ends the machine with [ErrNilState].
func (m *Machine[T]) Start(initial State[T]) {
	s := m.s
	s.mu.Lock()
	if s.phase != idle {
		s.mu.Unlock()
		return
	}
	d := s.core.start(initial)
	if d.end != nil {
		s.phase, s.err = ended, d.end
		close(s.done)
		s.mu.Unlock()
		s.logEnd(d.end)
		return
	}
	s.phase = running
	s.enterLocked(d)
	s.mu.Unlock()
	s.logEnter(d)
	go s.loop()
}

// Schedule queues e to be applied to the state that is current when its turn
// comes. It never blocks. Events are applied one at a time in the order they
// were scheduled; a state's Run may schedule events too. Schedule does nothing
// before Start, after the machine ended, or when e is nil.
func (m *Machine[T]) Schedule(e Event[T]) {
	if e == nil {
		return
	}
	m.s.push(input[T]{event: e})
}

// Stop ends the machine: it cancels the running state's context, drops events
// not yet applied, and ignores later ones. Stop is idempotent; Stop before
// Start makes the machine unable to start.
//
// Called on the *Machine returned by New, Stop waits until the running
// state's Run has returned and the machine has ended (Done is closed); no
// goroutine of the machine's does any work after that.
//
// Called on the *Machine given to Run (from inside Run, or from a goroutine
// the Run handed it to), Stop does not wait, since it may be running inside
// the very Run it would wait for: it cancels and returns, and the machine
// ends once Run returns, which Done reports. Calling Stop on the *Machine
// from New inside a Run deadlocks; use the one Run was given.
func (m *Machine[T]) Stop() {
	s := m.s
	s.mu.Lock()
	switch s.phase {
	case idle:
		s.phase = ended
		close(s.done)
		s.mu.Unlock()
		return
	case running:
		s.phase = stopping
		s.current = nil
		cancel := s.cancel
		s.mu.Unlock()
		cancel()
		s.signal()
	default:
		s.mu.Unlock()
	}
	if !m.insideRun {
		<-s.done
	}
}

// State returns the current state: the one most recently entered. It is nil
// before Start and once the machine is stopping or has ended.
func (m *Machine[T]) State() State[T] {
	s := m.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Done returns a channel that is closed when the machine has ended, by Stop or
// by an unhandled error, and every Run it started has returned.
func (m *Machine[T]) Done() <-chan struct{} {
	return m.s.done
}

// Err returns the error that ended the machine: an error from Run that no
// OnError handled (wrapped with the state's name; errors.Is finds it), a
// panic wrapped in [ErrPanic], or [ErrNilState]. It is nil while the machine
// runs and after Stop.
func (m *Machine[T]) Err() error {
	s := m.s
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Query returns q applied to the current state, and true; or the zero R and
// false when no state is current (before Start, once stopping, after the
// end). q runs on the caller's goroutine, concurrently with the state's Run,
// so it should read only what is safe to read so; the state may be left
// while q runs.
func Query[T, R any](m *Machine[T], q func(State[T]) R) (R, bool) {
	st := m.State()
	if st == nil {
		var zero R
		return zero, false
	}
	return q(st), true
}

// push queues in for the loop, unless the machine is not running.
func (s *shell[T]) push(in input[T]) {
	s.mu.Lock()
	if s.phase != running {
		s.mu.Unlock()
		return
	}
	if len(s.queue) == cap(s.queue) && s.head > 0 {
		// Reuse the consumed front instead of growing.
		n := copy(s.queue, s.queue[s.head:])
		clear(s.queue[n:])
		s.queue, s.head = s.queue[:n], 0
	}
	s.queue = append(s.queue, in)
	s.mu.Unlock()
	s.signal()
}

func (s *shell[T]) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// next waits for the next input. It returns false once the machine is no
// longer running.
func (s *shell[T]) next() (input[T], bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.phase == running && s.head == len(s.queue) {
		s.mu.Unlock()
		<-s.wake
		s.mu.Lock()
	}
	if s.phase != running {
		return input[T]{}, false
	}
	in := s.queue[s.head]
	s.queue[s.head] = input[T]{}
	s.head++
	if s.head == len(s.queue) {
		s.queue, s.head = s.queue[:0], 0
	}
	return in, true
}

// loop is the machine's goroutine: it applies inputs one at a time and
// carries out the core's decisions.
func (s *shell[T]) loop() {
	var endErr error
	returned := false
	defer func() {
		if !returned {
			// Only runtime.Goexit gets here: the core recovers panics.
			endErr = fmt.Errorf("%w: runtime.Goexit in an event or error handler", ErrPanic)
		}
		s.finish(endErr)
	}()
	for {
		in, ok := s.next()
		if !ok {
			break
		}
		d := s.core.apply(in)
		if d.handled != nil {
			s.logHandled(d.handled)
		}
		if d.end != nil {
			endErr = d.end
			break
		}
		if d.enter != nil {
			s.leave()
			s.mu.Lock()
			if s.phase != running {
				s.mu.Unlock()
				break
			}
			s.enterLocked(d)
			s.mu.Unlock()
			s.logEnter(d)
		}
	}
	returned = true
}

// enterLocked makes d.enter current and starts its Run. s.mu must be held.
func (s *shell[T]) enterLocked(d decision[T]) {
	ctx, cancel := context.WithCancel(context.Background())
	s.current, s.cancel = d.enter, cancel
	s.running = true
	go s.run(ctx, d.enter, d.epoch)
}

// leave cancels the running state and waits for its Run to return.
func (s *shell[T]) leave() {
	if !s.running {
		return
	}
	s.cancel()
	<-s.runDone
	s.running = false
}

// run calls st.Run and hands its result to the loop. A result that arrives
// after ctx was cancelled is dropped here: the machine has already moved on.
func (s *shell[T]) run(ctx context.Context, st State[T], epoch uint64) {
	var next State[T]
	var err error
	returned := false
	defer func() {
		if r := recover(); r != nil {
			next, err = nil, panicError(r)
			s.logPanic(st, r)
		} else if !returned {
			next, err = nil, fmt.Errorf("%w: runtime.Goexit in Run", ErrPanic)
		}
		if (next != nil || err != nil) && ctx.Err() == nil {
			s.push(input[T]{epoch: epoch, next: next, err: err})
		}
		s.runDone <- struct{}{}
	}()
	next, err = st.Run(ctx, s.handle)
	returned = true
}

// finish ends the machine once the loop has stopped taking inputs.
func (s *shell[T]) finish(err error) {
	s.mu.Lock()
	if s.phase != running {
		err = nil // Stop came first: the machine ends without error
	}
	s.phase, s.err, s.current = ended, err, nil
	clear(s.queue)
	s.queue, s.head = nil, 0
	s.mu.Unlock()
	s.leave()
	if err != nil {
		s.logEnd(err)
	}
	close(s.done)
}

func (s *shell[T]) logEnter(d decision[T]) {
	if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.LogAttrs(context.Background(), slog.LevelDebug, "enter state",
			slog.String("state", nameOf(d.enter)), slog.Uint64("epoch", d.epoch))
	}
}

func (s *shell[T]) logHandled(err error) {
	s.log.LogAttrs(context.Background(), slog.LevelInfo, "state error handled", slog.Any("error", err))
}

func (s *shell[T]) logEnd(err error) {
	s.log.LogAttrs(context.Background(), slog.LevelError, "machine ended by unhandled error", slog.Any("error", err))
}

func (s *shell[T]) logPanic(st State[T], r any) {
	if s.log.Enabled(context.Background(), slog.LevelError) {
		s.log.LogAttrs(context.Background(), slog.LevelError, "panic in Run",
			slog.String("state", nameOf(st)), slog.Any("panic", r), slog.String("stack", string(debug.Stack())))
	}
}

// Package statemachine is a generic asynchronous state machine: each sale a
// storage host makes is driven by one.
//
// # The model
//
// A [Machine] carries a subject of any type T (a sale, a download, a traffic
// light) through a series of states. A [State] does its work in Run, which
// the machine calls in a goroutine of its own as soon as it enters the state.
// The machine moves on in one of two ways:
//
//   - Run returns the next state. The move happens only if the machine is
//     still in the state that returned it: a result that comes back after an
//     event has already moved the machine elsewhere is dropped.
//   - Someone schedules an [Event]: a function from the current state to the
//     next one (or nil, for no move). Events may come from any goroutine; the
//     machine applies them one at a time, in the order they were scheduled.
//
// Moving to a new state cancels the context of the running one, waits for its
// Run to return and only then enters the new state, so at most one Run is
// ever in flight and a state never overlaps its successor.
//
// # Errors
//
// An error from Run goes to the state's OnError, if the state implements
// [ErrorHandler]; OnError picks the next state (a retry, a failure state) or
// returns nil to stay. A panic in Run counts as an error wrapping [ErrPanic].
// An error no state handles ends the machine: [Machine.Done] is closed and
// [Machine.Err] returns the error. Cancellation caused by a move or by Stop is
// never an error: whatever a cancelled Run returns is ignored.
//
// # Lifecycle
//
// [New] makes a machine; Start enters the first state; Stop cancels the
// running state, waits for it and ignores events from then on. Start and Stop
// are idempotent, Schedule before Start or after Stop does nothing, and a
// machine runs at most once: after Stop, Start does nothing. Run may call any
// method of the machine it is given, Stop included (that Stop returns without
// waiting; see [Machine.Stop]). Every exported type is safe for concurrent
// use.
//
// # Example
//
// A download that retries twice before giving up. The subject is the file;
// states reach it with m.Subject().
//
//	type file struct{ url string }
//
//	type downloading struct{ attempt int }
//
//	func (s downloading) Run(ctx context.Context, m *statemachine.Machine[*file]) (statemachine.State[*file], error) {
//		if err := fetch(ctx, m.Subject().url); err != nil {
//			return nil, err // goes to OnError
//		}
//		return downloaded{}, nil
//	}
//
//	func (s downloading) OnError(err error) statemachine.State[*file] {
//		if s.attempt < 3 {
//			return downloading{attempt: s.attempt + 1}
//		}
//		return failed{err: err}
//	}
//
//	m := statemachine.New(&file{url: "https://example.com/slot"})
//	m.Start(downloading{attempt: 1})
//	defer m.Stop()
//
// An event moves the machine from outside, for instance when the request is
// cancelled while the download runs (the running download's ctx is
// cancelled):
//
//	m.Schedule(func(current statemachine.State[*file]) statemachine.State[*file] {
//		if _, ok := current.(downloading); ok {
//			return cancelled{}
//		}
//		return nil // too late: stay where we are
//	})
//
// [Query] reads a value from whatever state is current.
package statemachine

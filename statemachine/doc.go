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
// # Ending
//
// A machine ends in one of three ways, and once it has ended [Machine.Last]
// and [Machine.Err] tell which:
//
//   - finished: a state that implements [Final] returned from Run. Last is
//     that state, Err is nil, or the error its Run returned (a cleanup that
//     failed is not dropped). This is how a machine ends itself: the last
//     state (finished, cancelled, failed...) is a Final state that does the
//     cleanup in its Run.
//   - stopped: someone called [Machine.Stop]. Last is the state it was
//     stopped in, Err is nil.
//   - failed: an error nothing handled (see Errors). Last is the state that
//     failed, Err the error.
//
// At the end [Machine.State] becomes nil and events are dropped. [Machine.Done]
// is closed once, in addition, every Run, Event and OnError the machine
// started has returned; read the outcome after it:
//
//	<-m.Done()
//	if err := m.Err(); err != nil {
//		// failed (Last may be a Final state whose cleanup failed)
//	} else if _, ok := m.Last().(statemachine.Final); ok {
//		// finished
//	} else {
//		// stopped
//	}
//
// # Errors
//
// Errors never vanish. An error from Run goes to the state's OnError, if the
// state implements [ErrorHandler]; else to the machine's [WithOnError]
// function, if it has one (write the handling shared by every state once,
// there); else it ends the machine: [Machine.Done] is closed and
// [Machine.Err] returns the error. A handler picks the next state (a retry,
// a failure state) or returns nil to stay. A panic in Run counts as an error
// wrapping [ErrPanic]. A [Final] state's error is handled by nothing: it is
// the machine's Err. Cancellation caused by a move or by Stop is never an
// error: whatever a cancelled Run returns is ignored.
//
//	m := statemachine.New(sale, statemachine.WithOnError(
//		func(m *statemachine.Machine[*Sale], st statemachine.State[*Sale], err error) statemachine.State[*Sale] {
//			return errored{in: st, err: err} // a Final state
//		}))
//
// Retrying is a state that moves to a fresh copy of itself from OnError,
// counting attempts in its fields; see the ErrorHandler example.
//
// # Stop returns at once
//
// [Machine.Stop] ends the machine at once and cancels the running state, and
// returns without waiting for a Run, Event or OnError that is still running;
// receive from Done for that:
//
//	m.Stop()
//	<-m.Done() // every goroutine of the machine has returned
//
// The reason: Run, Event and OnError may call Stop themselves, through any
// pointer to the machine (a subject often keeps the one New returned), and
// a Stop that waited for the caller's own Run, or for the event it is
// called from, would wait forever. Go offers no way to tell such a caller
// from any other goroutine, so Stop waits for none of them, like the stop
// function of [context.AfterFunc]. In exchange Stop is safe everywhere, and
// when it returns the machine has ended: State is nil, Last is set, no state
// is entered any more, and whatever a Run, Event or OnError still under way
// returns is dropped.
//
// Start and Stop are idempotent, Schedule before Start or after the end does
// nothing, and a machine runs at most once: after the end, Start does
// nothing. Every exported type is safe for concurrent use.
//
// # Logging
//
// A machine is silent unless given a logger with [WithLogger]. Every line it
// logs carries the state it is about as the attribute "state": the state's
// String method if it implements [fmt.Stringer], else its type, such as
// "sales.downloading". The same name appears in the errors Err returns.
//
// # Caveats
//
//   - Run must return soon after its ctx is cancelled: a move to the next
//     state, and Done, wait for it.
//   - Events and OnError run on the machine's one goroutine: while one
//     blocks, no other event is applied and no Run result is acted on.
//   - [Query] calls its function on the caller's goroutine, concurrently
//     with the running Run: read only what is safe to read so.
//   - A State value may be entered more than once (a retry, an event that
//     returns the current state): keep per-visit data in Run's locals or in
//     a fresh State value, not in a State shared through a pointer.
//   - A machine runs once. To run a subject again (after a restart, say),
//     make a new Machine and Start it in the state to resume from.
//
// # Testing
//
// States are ordinary values: test Run, OnError and events by calling them.
// [Machine.WaitIdle] returns once no Run is under way and no event waits: a
// test (or a simulation that moves its own clock) schedules an event, waits
// for the machine to be idle and looks at the state, without polling. A
// state that waits for the outside world should return nil, nil from Run
// and be moved on by an event, so that its machine counts as idle. Or make
// and run the machine inside [testing/synctest.Test]: synctest.Wait returns
// once every Run has blocked,
// <-m.Done() once the machine has ended, and a machine that would never end
// makes the bubble report a deadlock instead of hanging the test.
//
// # Example
//
// A download that retries twice before giving up. The subject is the file;
// states reach it with m.Subject(). The machine ends in one of two Final
// states.
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
//	type downloaded struct{}
//
//	func (downloaded) Final() {}
//
//	func (downloaded) Run(ctx context.Context, m *statemachine.Machine[*file]) (statemachine.State[*file], error) {
//		log.Printf("saved %s", m.Subject().url) // the last work; the machine ends when Run returns
//		return nil, nil
//	}
//
//	m := statemachine.New(&file{url: "https://example.com/slot"})
//	m.Start(downloading{attempt: 1})
//	<-m.Done()
//	fmt.Println(m.Last(), m.Err())
//
// An event moves the machine from outside, for instance when the request is
// cancelled while the download runs (the running download's ctx is
// cancelled):
//
//	m.Schedule(func(current statemachine.State[*file]) statemachine.State[*file] {
//		if _, ok := current.(downloading); ok {
//			return cancelled{} // a Final state
//		}
//		return nil // too late: stay where we are
//	})
//
// [Query] reads a value from whatever state is current.
package statemachine

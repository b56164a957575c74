package engine

import (
	"fmt"
	"time"
)

// writeFailed wraps err, a write of unknown outcome, in ErrWriteFailed with
// what holds next in the engine's mode.
func (e *Engine) writeFailed(err error) error {
	switch {
	case e.shared:
		return fmt.Errorf("%w; read back to learn it, later calls need nothing: %w", ErrWriteFailed, err)
	case e.open != nil:
		return fmt.Errorf("%w; the repo reopens its database and goes on: %w", ErrWriteFailed, err)
	default:
		return fmt.Errorf("%w; no writes until the repo is reopened: %w", ErrWriteFailed, err)
	}
}

// reopenError refuses writes after a write of unknown outcome whose reopen
// of the embedded database failed (a full disk: replaying the journal
// writes a table). It says so and names the reopen's cause; errors.Is
// reaches that cause and ErrWriteFailed.
type reopenError struct {
	cause error         // why the reopen failed
	every time.Duration // the next write after this retries the reopen
	reads bool          // reads go on (from the database opened read-only)
	// write is the cause of the write that failed, for the changes of
	// that write; nil in the error of a write refused later.
	write error
}

func (r *reopenError) Error() string {
	reads := "reads fail too"
	if r.reads {
		reads = "reads go on"
	}
	s := fmt.Sprintf("%v; reopening the database failed, so writes are refused until a reopen succeeds (the next write after %v tries again) and %s: %v",
		ErrWriteFailed, r.every, reads, r.cause)
	if r.write != nil {
		s += fmt.Sprintf(" (the write failed with: %v)", r.write)
	}
	return s
}

func (r *reopenError) Unwrap() []error {
	if r.write != nil {
		return []error{ErrWriteFailed, r.cause, r.write}
	}
	return []error{ErrWriteFailed, r.cause}
}

package engine

import "fmt"

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

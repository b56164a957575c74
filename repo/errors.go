package repo

import "errors"

// Errors returned by the repo. Each is checked with errors.Is; the returned
// error wraps it with the figures that explain the failure.
var (
	// ErrQuotaNotEnough means the bytes asked for do not fit under Max.
	ErrQuotaNotEnough = errors.New("repo: not enough quota")
	// ErrReleaseExceedsReserved means more bytes were released than are reserved.
	ErrReleaseExceedsReserved = errors.New("repo: release exceeds reserved bytes")
	// ErrClosed is returned by every operation on a closed Repo.
	ErrClosed = errors.New("repo: closed")
	// ErrCorrupt means a quota counter in the datastore is not a valid
	// 8-byte big-endian number.
	ErrCorrupt = errors.New("repo: corrupt quota record")
	// ErrInvalidOption reports an option that cannot be honoured, such as a
	// transactional write path on a datastore that has no transactions.
	ErrInvalidOption = errors.New("repo: invalid option")
)

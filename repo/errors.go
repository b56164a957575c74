package repo

import "github.com/stowage/stowage/internal/engine"

// Errors returned by the repo. Each is checked with errors.Is; the returned
// error wraps it with the figures that explain the failure.
var (
	// ErrQuotaNotEnough means the bytes asked for do not fit under Max.
	ErrQuotaNotEnough = engine.ErrQuotaNotEnough
	// ErrReleaseExceedsReserved means more bytes were released than are reserved.
	ErrReleaseExceedsReserved = engine.ErrReleaseExceedsReserved
	// ErrClosed is returned by every call on a closed Repo, reads included.
	ErrClosed = engine.ErrClosed
	// ErrWriteFailed means a commit failed in a way that may or may not have
	// reached the disk (an fsync error, a lost connection). The repo then
	// refuses every write until it is reopened, or until it has reopened its
	// own embedded database; see the package doc for why.
	ErrWriteFailed = engine.ErrWriteFailed
	// ErrCorrupt means a quota counter in the datastore is not a valid
	// 8-byte big-endian number.
	ErrCorrupt = engine.ErrCorrupt
	// ErrInvalidOption reports an option that cannot be honoured, such as
	// transactions on a datastore whose transactions do not work.
	ErrInvalidOption = engine.ErrInvalid
	// ErrConflict means a change in shared mode (WithShared) conflicted with
	// other processes' changes on every attempt; nothing was changed.
	ErrConflict = engine.ErrConflict
	// ErrInvariant means Verify found the counters and the datastore
	// disagreeing; the error reports the figures.
	ErrInvariant = engine.ErrInvariant
	// ErrInvalidKey means a block key that is empty (the zero
	// datastore.Key), the root (NewKey(""), NewKey("/"), RawKey("")), or
	// one that would not map to a proper child of the block prefix: not in
	// its clean form (an empty, "." or ".." segment), not valid UTF-8, with
	// a NUL byte, or longer than 1024 bytes. Nothing is read or written.
	ErrInvalidKey = engine.ErrInvalidKey
)

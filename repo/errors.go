package repo

import (
	"errors"

	"github.com/stowage/stowage/internal/engine"
	"github.com/stowage/stowage/internal/owner"
)

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
	// reached the datastore (an fsync error, a lost connection, a ctx that
	// ended while COMMIT was on its way, a full disk): the change may or
	// may not be there; read back to learn which. What holds next depends
	// on the mode, and the error's message says it:
	//
	//   - New (the application's datastore): the repo refuses every later
	//     write with ErrWriteFailed until the application closes and
	//     reopens the datastore and calls New again. Reads go on.
	//   - Open (the embedded LevelDB): the repo reopens its database at
	//     once and reloads its counters, then accepts writes again; nothing
	//     else is needed. Should that reopen fail (a disk still full), reads
	//     go on from the database opened read-only, every write is refused
	//     with ErrWriteFailed saying that reopening the database failed and
	//     wrapping its cause (errors.Is(err, syscall.ENOSPC)), and a later
	//     write retries the reopen, at most once a second, until it succeeds.
	//   - Shared mode (WithShared): later calls need nothing, as each reads
	//     what it changes. With a separate block store (WithBlockstore) it
	//     also means blocks were deleted whose metadata did not commit:
	//     repeat the change (a delete) to balance the books.
	//
	// See the package doc for why, and "A full disk" there.
	ErrWriteFailed = engine.ErrWriteFailed
	// ErrCorrupt means a quota counter in the datastore is not a valid
	// 8-byte big-endian number.
	ErrCorrupt = engine.ErrCorrupt
	// ErrInvalidOption reports an option that cannot be honoured, such as
	// transactions on a datastore whose transactions do not work.
	ErrInvalidOption = engine.ErrInvalid
	// ErrConflict means a change in shared mode (WithShared) conflicted with
	// other processes' changes on every attempt (30, or as many as fit in
	// 10 s); nothing was changed. Its message names the keys that
	// conflicted, where the datastore said.
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
	// ErrReservedKey means a Tx was asked to write a key the SDK owns
	// (the quota counters and everything else at or under /meta, the
	// blocks under /blocks); nothing is written. Keep your records under a
	// prefix of your own, and write blocks with PutBlock.
	ErrReservedKey = owner.ErrReservedKey
	// ErrReadOnly means a write through the Tx of a View.
	ErrReadOnly = errors.New("repo: write in a View")
	// ErrPanic means the function given to Update or View panicked: the
	// change was abandoned, and the error holds the panic's value.
	ErrPanic = engine.ErrPanic
)

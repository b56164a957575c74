// Package repo is the host's byte quota and block store.
//
// # The quota
//
// A Repo keeps three counters: Max (configured), Used (bytes of stored
// blocks) and Reserved (bytes promised but not yet written).
// Available = Max - Used - Reserved. Reserve refuses what does not fit with
// ErrQuotaNotEnough; Release refuses to take more than is reserved with
// ErrReleaseExceedsReserved; HasAvailable(n) is true exactly when Reserve(n)
// would succeed.
//
// Used and Reserved live in the metadata datastore (under /meta/quota) as
// 8-byte big-endian numbers and are loaded by New. PutBlock,
// GetBlock, HasBlock and DeleteBlock store the data itself: a new block adds
// its length to Used in the same atomic change that writes it, an overwrite
// counts only the difference, a delete gives the bytes back. Blocks share the
// metadata datastore (under /blocks) unless WithBlockstore names another
// one. Verify checks that the counters on disk are those in memory and that
// Used is the sum of the stored blocks.
//
// # Keys
//
// A block key must be a proper key below the block prefix, so that it maps
// to one place there on every datastore: PutBlock, GetBlock, HasBlock and
// DeleteBlock (and reservations.Store.PutBlock) refuse the zero
// datastore.Key{}, the root (NewKey(""), NewKey("/"), RawKey("")), a key
// not in its clean form (an empty, "." or ".." segment: a RawKey that
// NewKey would change), one that is not UTF-8 or holds a NUL byte (which
// PostgreSQL text cannot hold) and one over 1024 bytes, with
// ErrInvalidKey, reading and writing nothing. Keys made with NewKey from
// ordinary names, CIDs or paths are all accepted.
//
// # Basics
//
//	r, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(100<<30))
//	...
//	defer r.Close()
//	if err := r.Reserve(ctx, slotSize); errors.Is(err, repo.ErrQuotaNotEnough) {
//		// the disk is promised elsewhere
//	}
//
// Most applications do not call Reserve and Release directly: the
// reservations package does, together with its own records, in the same
// atomic changes.
//
// # The write path
//
// Every change (a Reserve, a block, a reservation of package reservations)
// is checked against the counters as every earlier change leaves them, in
// the order the changes arrive, and its writes are staged in its own order.
// Changes that arrive while a commit is being written (and fsynced) are
// written together in the next one: many callers share one fsync, and a
// caller returns only once its change is durable. Nothing is acknowledged
// before it is on disk; a refused change writes nothing. A call that finds
// nothing to write (a reservation deleted already) may have read changes
// still being written: it succeeds once they are durable, and fails if
// they fail.
//
// A call whose ctx is done before its change joins the commit queue returns
// ctx.Err() and changes nothing. Once queued, a change is written whatever
// happens to its ctx (later changes were checked against it), and the call
// waits for that commit, a few milliseconds, to report its outcome.
//
// # A failed write stops the writes
//
// When a commit fails in a way whose outcome is unknown (an fsync error, a
// lost connection), every change in it fails, so does every change queued
// behind it, and the repo refuses every later write with ErrWriteFailed until
// it is reopened. Reads go on. A repo opened with Open reopens its own
// database at once and reloads its counters, so it goes on accepting writes;
// the failed changes may or may not be in it, as their error says. A repo
// made with New on the application's datastore cannot do that for it: close
// and reopen the datastore itself (a LevelDB handle keeps its confused
// sequence numbers until then), then call New again.
//
// Why: goleveldb, like many storage engines, returns an fsync error with the
// batch already in its journal and without advancing its sequence numbers.
// Batches written after that reuse the numbers; on the next open the
// journal replays the failed batch and drops the later, acknowledged ones.
// A repo that went on writing after such an error would lose acknowledged
// changes on restart and break its own invariants. Stopping, and reading
// the state back from disk, is the only safe answer.
//
// # Reads and scans
//
// A read error is an error, never a shorter result. The embedded LevelDB
// that Open uses reports an iterator's error where go-ds-leveldb v0.5 ends
// the scan silently (a corrupt table then looked like fewer records, and a
// decision taken on that list, such as deleting an availability "without
// reservations", was wrong). After Close every call fails with ErrClosed,
// reads included, and Close waits for the calls in flight.
//
// # Bringing your own datastore
//
// New takes any datastore.Batching. What the repo needs from it, and what
// was measured with the usual ones:
//
//   - Batches must be atomic (or pass WithTransactions for a store whose
//     transactions are and whose batches are not). LevelDB, Badger and Pebble
//     batches are. mount's are not (its batches commit store by store: a
//     failure between two left Used at 70 against 100 bytes of blocks): do
//     not mount blocks and metadata on different stores; use WithBlockstore.
//   - It must be safe for concurrent use: wrap a MapDatastore with
//     go-datastore's sync.MutexWrap. No write-back buffer: autobatch loses
//     acknowledged writes when a concurrent query flushes it.
//   - It must be durable when it says so: go-ds-pebble needs pebble.Sync
//     write options (its default, NoSync, lost 3 of 66 blocks and 20
//     reservation deletes after a process crash in our tests, where LevelDB
//     with WithNoSync lost none); go-ds-badger4 kept everything with and
//     without SyncWrites.
//   - go-ds-flatfs only as a block store (WithBlockstore), with keys flatfs
//     accepts; it has no atomic batches for metadata.
//   - Never namespace the metadata at /meta or an ancestor of the SDK's keys:
//     namespace.Wrap's key transform leaves keys already under its prefix
//     unchanged on the way in and strips the prefix on the way out, so the
//     SDK's keys come back changed.
//
// Package stowagetest checks a datastore against these needs.
//
// # Caveats
//
//   - One repo per datastore: two Repos (in one process or two) on the same
//     datastore each believe they own the counters, unless every one of
//     them is opened WithShared on a datastore with serializable
//     transactions (a fleet on PostgreSQL: see package pgds and "Running a
//     fleet" in the README). Several reservations.Stores on one Repo are
//     fine: they share its state.
//   - Writing the SDK's keys (the quota counters, /blocks, /meta/sales)
//     through Datastore behind the repo's back is outside the contract:
//     changes re-read what they change, so nothing is resurrected or
//     overcommitted on the strength of a stale copy, but the books no longer
//     balance and Verify says so. (While changes keep coming, what the last
//     durable group wrote is read from memory until the next group is
//     durable; an idle repo reads everything from the datastore.)
//   - Verify and reservations.Store.Verify hold every change off while they
//     read everything: run them on start, in tests or on an operator's
//     command, not per request.
//   - With WithBlockstore, blocks and counters are in two stores that cannot
//     change atomically together; a crash between them over-counts Used
//     (refusing bytes, never overcommitting), and Verify reports it.
//   - A Repo is safe for concurrent use.
package repo

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
// # Transactions
//
// Update runs a function on a *Tx as one atomic, durable change, in the
// style of bbolt's DB.Update: what it reserves and releases (Reserve,
// Release), the blocks it writes and deletes (PutBlock, DeleteBlock) and
// the records it puts and deletes (Put, Delete) reach the datastore in one
// commit or not at all, and Update returns once they are durable. An error
// from the function abandons the change and is returned; so does a panic,
// as an error matching ErrPanic. A Tx reads its own writes first, then the
// repo (Get, Has, Scan, Quota). View runs a function on one consistent
// state, as one committed change left it; its Tx refuses writes with
// ErrReadOnly.
//
//	err := r.Update(ctx, func(tx *repo.Tx) error {
//		if err := tx.Release(uint64(len(data))); err != nil {
//			return err
//		}
//		if err := tx.PutBlock(key, data); err != nil {
//			return err
//		}
//		return tx.Put(saleKey, state) // the host's record, with the bytes
//	})
//
// Scan takes a callback, called in key order; an error from it or from a
// read ends the scan and is returned. Record keys follow the rules of block
// keys (ErrInvalidKey). The keys the SDK owns are refused to a Tx's Put
// and Delete with ErrReservedKey: everything at or under /meta (the quota
// counters, the records of package reservations) and /blocks. Keep your
// records under a prefix of your own; a Tx reads any key.
//
// Package reservations is built on Update and View too. It writes its
// records under /meta/sales with a capability no code outside this module
// can hold (package internal/owner), which Tx.Owner, Repo.Owner and
// WithOwnerStorage take; the zero capability, the only one a user can
// write, grants nothing.
//
// An Update's function runs under the staging lock, like every change:
// keep it short. In shared mode (WithShared) it runs again when the
// datastore rolls its transaction back for a conflict, so it must act only
// through its Tx.
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
// In shared mode (WithShared) nothing is kept in memory and later calls
// need nothing; ErrWriteFailed then only says that this call's outcome is
// unknown.
//
// A full disk is such a failure: see below.
//
// Why: goleveldb, like many storage engines, returns an fsync error with the
// batch already in its journal and without advancing its sequence numbers.
// Batches written after that reuse the numbers; on the next open the
// journal replays the failed batch and drops the later, acknowledged ones.
// A repo that went on writing after such an error would lose acknowledged
// changes on restart and break its own invariants. Stopping, and reading
// the state back from disk, is the only safe answer.
//
// # A full disk
//
// On a full disk (ENOSPC) the write that finds it fails with
// ErrWriteFailed, and its error wraps the cause: errors.Is(err,
// syscall.ENOSPC) holds and the text says "no space left on device". A
// repo from Open then reopens its database, which needs free space (see
// below). When that fails:
//
//   - Reads go on: the database is opened read-only (it replays its
//     journal into memory and writes nothing), so GetBlock, the
//     reservations' listings and Verify answer as before the failure.
//   - Every write is refused with ErrWriteFailed. Its error, and already
//     that of the write that found the disk full, says that reopening the
//     database failed and names the cause, and also errors.Is the cause
//     (syscall.ENOSPC).
//   - A later write retries the reopen, at most once a second. Once there
//     is room, the reopen succeeds and that write and every later one go
//     on: no restart is needed. Every acknowledged change is kept
//     throughout.
//
// How much room a reopen needs: LevelDB replays its journal (the newest
// *.log file in the directory) into a new table about as large as the
// journal, and starts a new journal and manifest (a few KiB). The journal
// holds what was written since the last table was made, at most about
// 4 MiB (goleveldb's write buffer) plus the last group written. So a full
// repo needs about as much free space as its journal, 4 MiB plus the
// largest group; freeing less (3 MiB of a 12 MiB disk, in a test) is not
// enough. Background compaction needs room too, up to the size of the
// tables it merges, so leave headroom between WithQuotaMaxBytes and the
// size of the filesystem (the quota counts block bytes, not LevelDB's
// overhead).
//
// What an operator does when the disk is full: free space on the
// filesystem (or grow it) by removing something other than the repo's
// directory, never a file in it (the journal holds acknowledged changes),
// at least as much as the size of the newest *.log file there, and 8 MiB
// is safe. The repo resumes on its own at the next write; restarting the
// process also works once there is room. Until then its log (WithLogger)
// says at each retry that the reopen failed and why.
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
//   - Verify and reservations.Store.Verify read one state between two
//     committed changes. On the embedded LevelDB (Open) with blocks in it
//     they hold changes off only while those in flight become durable,
//     take a snapshot and read it while changes go on; with
//     WithBlockstore or another datastore they hold every change off
//     while they read everything. Either way they read every record: run
//     them on start, in tests or on an operator's command, not per
//     request.
//   - With WithBlockstore, blocks and counters are in two stores that cannot
//     change atomically together; a crash between them over-counts Used
//     (refusing bytes, never overcommitting), and Verify reports it.
//   - A Repo is safe for concurrent use.
package repo

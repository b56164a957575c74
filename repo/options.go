package repo

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/syndtr/goleveldb/leveldb/storage"
)

type options struct {
	max          uint64
	blocks       datastore.Batching
	noSync       bool
	transactions bool
	shared       bool
	sharedGrace  time.Duration
	logger       *slog.Logger
	wrapStorage  func(storage.Storage) storage.Storage // tests: fault injection
	now          func() time.Time                      // tests: the clock that spaces reopens
	bad          error                                 // an option refused
}

func defaultOptions() options {
	return options{
		max:         DefaultQuotaMaxBytes,
		sharedGrace: DefaultSharedGrace,
		logger:      slog.New(slog.DiscardHandler),
	}
}

// Option configures New and Open.
type Option func(*options)

// WithQuotaMaxBytes sets the quota's Max (default DefaultQuotaMaxBytes).
// Max is configuration, not state: it is not persisted, and a repo may be
// reopened with a different one. A Max below what the repo already holds is
// allowed; Available is then zero until enough is released or deleted.
func WithQuotaMaxBytes(n uint64) Option {
	return func(o *options) { o.max = n }
}

// WithBlockstore keeps blocks in ds instead of the metadata datastore (for
// example a flatfs directory, with keys flatfs accepts). The repo does not
// close ds.
//
// Blocks and the Used counter then live in two stores that cannot be written
// atomically together. The repo deletes blocks before and writes them after
// the metadata that counts them, so a crash in between can only over-count
// Used (the quota errs on the side of refusing bytes, never of
// overcommitting the disk); Verify reports such an over-count.
//
// In shared mode (WithShared) the order is the same. A change whose blocks
// were deleted and whose metadata then did not commit (its ctx ended, the
// connection was lost, or it conflicted on every attempt) fails with
// ErrWriteFailed, never with an error meaning nothing was written: the
// reservation is still there without those blocks, and repeating the
// delete balances the books. A conflict after the deletes is retried as
// any other.
func WithBlockstore(ds datastore.Batching) Option {
	return func(o *options) { o.blocks = ds }
}

// WithNoSync turns off fsync in the embedded LevelDB opened by Open. Writes
// become many times faster, and a crash of the process still loses nothing,
// but a crash of the machine (power loss, kernel panic) may lose the most
// recent writes. Use it for tests, simulations and caches; leave it off for
// a host that has promised bytes to paying clients. New ignores it: the
// caller's datastore decides its own durability.
func WithNoSync() Option {
	return func(o *options) { o.noSync = true }
}

// WithTransactions makes every group of changes one datastore transaction
// instead of one batch. Use it when the metadata datastore implements
// datastore.TxnDatastore and its batches are not atomic. LevelDB, Badger,
// Pebble and the in-memory map commit batches atomically and need no
// transactions. New checks that transactions really work (wrappers such as
// keytransform have the method and fail at first use) and fails with
// ErrInvalidOption otherwise.
func WithTransactions() Option {
	return func(o *options) { o.transactions = true }
}

// WithLogger sets the logger for diagnostics. The default discards them.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithShared runs the repo in shared mode, for several processes (a fleet
// of hosts) selling the capacity of one datastore, such as PostgreSQL
// through package pgds. The datastore must offer working transactions
// (datastore.TxnDatastore) that are serializable.
//
// Nothing is then authoritative in memory: every change is one transaction
// that reads the counters and records it changes, writes and commits. A
// transaction the datastore rolls back for a conflict with another process
// (its error has a Retryable() bool method reporting true, as pgds's
// ErrSerialization has) is run again from the start after a jittered
// backoff, up to 30 times and while the call has run less than 10 s; then
// the call fails with ErrConflict, naming the keys the datastore said
// conflicted, and nothing is changed.
//
// On a datastore whose transactions can lock keys before they begin (a
// method NewLockedTransaction(ctx, readOnly, lock, prefetch
// []datastore.Key) (datastore.Txn, error), as pgds.LockingTxnDatastore
// has), a change that may write first locks the quota counters, which
// every change of bytes writes, and reads them in the same round trip: the
// changes of a fleet then queue for the counters instead of conflicting,
// and ErrConflict is not seen under the fleet's own load. A change that
// finds another of this process waiting hands it the locks as it commits
// (if the transaction has CommitAndBegin(ctx, prefetch) (datastore.Txn,
// error), as pgds's have), up to 8 in a row. A commit whose outcome is unknown (a connection lost after
// COMMIT was sent) fails with ErrWriteFailed: read back to learn whether it
// happened. Later changes need no reopening, as each reads what it changes.
//
// Every call is bounded: the wait for this process's earlier changes
// honours ctx, every round trip to the datastore runs under ctx, and the
// ROLLBACK of a transaction that did not commit, which must run even after
// ctx ended, gets the grace of WithSharedGrace (default
// DefaultSharedGrace). So a call returns at most the grace after its ctx
// ends, even when the network stops answering; pass a ctx with a deadline.
// See package pgds for what else protects a host against a dead network.
//
// Quota, Available and HasAvailable report the counters as this process
// last read or wrote them: another process may have changed them since.
// Changes of one process run one at a time (they would only conflict with
// each other); the changes of several processes run one at a time too, in
// the order they get the counters' lock (or, without locks, in parallel,
// limited by their conflicts on the counters).
func WithShared() Option {
	return func(o *options) { o.shared = true }
}

// DefaultSharedGrace is the grace WithSharedGrace sets unless told otherwise.
const DefaultSharedGrace = 3 * time.Second

// WithSharedGrace bounds, in shared mode (WithShared), the round trips to
// the datastore that cannot use the caller's ctx: the ROLLBACK that ends a
// transaction which did not commit (a read-only call, a refused change, a
// change that writes nothing, a conflict), which also runs after the
// caller's ctx has ended. Each such round trip gets at most d; when it does
// not finish in time the datastore is told to give up (pgds then closes the
// connection instead of reusing it). The default is DefaultSharedGrace.
//
// Every other round trip of a call runs under the caller's ctx, and so does
// the wait for this process's earlier changes: a call in shared mode returns
// at most d after its ctx ends, whatever the network does. A d of zero or
// less makes New fail with ErrInvalidOption.
func WithSharedGrace(d time.Duration) Option {
	return func(o *options) { o.sharedGrace = d }
}

// check reports an option that cannot be honoured.
func (o *options) check() error {
	if o.bad != nil {
		return fmt.Errorf("%w: %w", ErrInvalidOption, o.bad)
	}
	if o.sharedGrace <= 0 {
		return fmt.Errorf("%w: shared grace %v, want more than zero", ErrInvalidOption, o.sharedGrace)
	}
	return nil
}

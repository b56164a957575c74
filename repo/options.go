package repo

import (
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
	logger       *slog.Logger
	wrapStorage  func(storage.Storage) storage.Storage // tests: fault injection
	now          func() time.Time                      // tests: the clock that spaces reopens
}

func defaultOptions() options {
	return options{
		max:    DefaultQuotaMaxBytes,
		logger: slog.New(slog.DiscardHandler),
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

// withStorage wraps the goleveldb storage of a repo opened with Open, at
// every opening (tests: fault injection). Tests of other packages reach it
// through engine.WithStorage.
func withStorage(wrap func(storage.Storage) storage.Storage) Option {
	return func(o *options) { o.wrapStorage = wrap }
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
// backoff, up to 30 times; then the call fails with ErrConflict and nothing
// is changed. A commit whose outcome is unknown (a connection lost after
// COMMIT was sent) fails with ErrWriteFailed: read back to learn whether it
// happened. Later changes need no reopening, as each reads what it changes.
//
// Quota, Available and HasAvailable report the counters as this process
// last read or wrote them: another process may have changed them since.
// Changes of one process run one at a time (they would only conflict with
// each other); processes run in parallel, limited by their conflicts on the
// counters every change of bytes updates.
func WithShared() Option {
	return func(o *options) { o.shared = true }
}

package repo

import (
	"context"
	"fmt"
	"io"

	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage/internal/engine"
	"github.com/stowage/stowage/internal/ldb"
)

// DefaultQuotaMaxBytes is the quota of a repo opened without
// WithQuotaMaxBytes: 8 GiB.
const DefaultQuotaMaxBytes uint64 = 1 << 33

// Quota is a snapshot of the repo's byte accounting.
//
// Max is configured; Used counts the bytes of stored blocks; Reserved counts
// bytes promised (to availabilities and reservations) but not yet written.
type Quota struct{ Max, Used, Reserved uint64 }

// Available is Max - Used - Reserved, or zero when the repo was reopened with
// a Max smaller than what it already holds.
func (q Quota) Available() uint64 {
	return engine.Available(q.Max, engine.Counters{Used: q.Used, Reserved: q.Reserved})
}

// Repo is a byte quota and a block store over a go-datastore.
//
// A Repo is safe for concurrent use. Changes are checked one after another,
// in the order they arrive, against the counters as every earlier change
// leaves them, and written in groups that share one commit (one fsync); a
// call returns once its change is durable. Readers of the quota never wait
// for a write.
type Repo struct {
	eng *engine.Engine
	ownerState
}

// New opens a repo over meta, which holds the quota counters (and the
// records of packages such as reservations). It loads the counters, so a repo
// reopened on the same datastore carries on where it left off. The caller
// keeps ownership of meta: Close does not close it.
func New(ctx context.Context, meta datastore.Batching, opts ...Option) (*Repo, error) {
	if meta == nil {
		return nil, fmt.Errorf("%w: nil metadata datastore", ErrInvalidOption)
	}
	o := apply(opts)
	return newRepo(ctx, engine.Config{Meta: meta}, o)
}

// Open opens (creating if needed) a repo on the embedded LevelDB in dir.
// Writes are fsynced unless WithNoSync is given. Close closes the database.
//
// After a commit whose outcome is unknown (a failed fsync, a full disk), a
// repo opened with Open reopens its database itself and reloads its
// counters, so it goes on accepting writes; the failed changes are
// reported with ErrWriteFailed and may or may not be in the reopened
// database. Should the reopen fail (a disk still full), reads go on from
// the database opened read-only and later writes retry the reopen, at most
// once a second, until it succeeds; see "A full disk" in the package doc.
func Open(ctx context.Context, dir string, opts ...Option) (*Repo, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: empty directory", ErrInvalidOption)
	}
	o := apply(opts)
	opener := func(readOnly bool) func() (datastore.Batching, io.Closer, error) {
		return func() (datastore.Batching, io.Closer, error) {
			db, err := ldb.Open(dir, ldb.Options{NoSync: o.noSync, WrapStorage: o.wrapStorage, ReadOnly: readOnly})
			if err != nil {
				return nil, nil, fmt.Errorf("repo: %w", err)
			}
			return db, db, nil
		}
	}
	return newRepo(ctx, engine.Config{Open: opener(false), OpenReadOnly: opener(true)}, o)
}

func apply(opts []Option) options {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

func newRepo(ctx context.Context, c engine.Config, o options) (*Repo, error) {
	c.Max, c.Blocks, c.Txn, c.Shared, c.Log = o.max, o.blocks, o.transactions, o.shared, o.logger
	c.Grace, c.Now = o.sharedGrace, o.now
	if err := o.check(); err != nil {
		return nil, err
	}
	e, err := engine.New(ctx, c)
	if err != nil {
		return nil, err
	}
	return &Repo{eng: e}, nil
}

// Close waits for the calls in flight and closes the embedded database if
// Open created it. Every later call fails with ErrClosed. Close is
// idempotent.
func (r *Repo) Close() error { return r.eng.Close() }

// Datastore returns the metadata datastore. Writing the SDK's keys (the
// quota counters, /blocks, the records under /meta/sales) through it behind
// the repo's back is outside the contract: the repo and the reservations
// store re-read what they change, but the invariants Verify checks no
// longer hold. Other keys are free to use.
func (r *Repo) Datastore() datastore.Batching { return r.eng.Meta() }

// Quota returns a snapshot of the durable counters.
func (r *Repo) Quota() Quota {
	c := r.eng.Counters()
	return Quota{Max: r.eng.Max(), Used: c.Used, Reserved: c.Reserved}
}

// Available returns Max - Used - Reserved (zero when over quota).
func (r *Repo) Available() uint64 { return r.Quota().Available() }

// HasAvailable reports whether n more bytes fit: exactly when Reserve(n)
// would succeed, were nothing else to change in between.
func (r *Repo) HasAvailable(n uint64) bool { return n <= r.Available() }

// Reserve adds n to Reserved, failing with ErrQuotaNotEnough when
// Used+Reserved+n would exceed Max.
func (r *Repo) Reserve(ctx context.Context, n uint64) error {
	err := r.eng.Update(ctx, func(tx *engine.Tx) error { return tx.Reserve(n) })
	if err != nil {
		return fmt.Errorf("reserve %d bytes: %w", n, err)
	}
	return nil
}

// Release subtracts n from Reserved, failing with ErrReleaseExceedsReserved
// when n > Reserved.
func (r *Repo) Release(ctx context.Context, n uint64) error {
	err := r.eng.Update(ctx, func(tx *engine.Tx) error { return tx.Release(n) })
	if err != nil {
		return fmt.Errorf("release %d bytes: %w", n, err)
	}
	return nil
}

// PutBlock stores data under key and adds its length to Used, in one
// atomic change. Overwriting a block counts only the difference in size.
// It fails with ErrQuotaNotEnough, storing nothing, when the block does not
// fit in what is neither used nor reserved: bytes reserved for a download
// must be released first (reservations.Store.PutBlock does both at once).
// A key that is not a proper key below the block prefix (the zero Key, the
// root, a key not in its clean form: see ErrInvalidKey) is refused with
// ErrInvalidKey, and nothing is written.
func (r *Repo) PutBlock(ctx context.Context, key datastore.Key, data []byte) error {
	if err := engine.CheckBlockKey(key); err != nil {
		return fmt.Errorf("put block: %w", err)
	}
	err := r.eng.Update(ctx, func(tx *engine.Tx) error { return tx.PutBlock(key, data) })
	if err != nil {
		return fmt.Errorf("put block %s: %w", key, err)
	}
	return nil
}

// GetBlock returns the block stored under key. A missing block is an error
// that errors.Is datastore.ErrNotFound; a key no block can have,
// ErrInvalidKey.
func (r *Repo) GetBlock(ctx context.Context, key datastore.Key) ([]byte, error) {
	if err := engine.CheckBlockKey(key); err != nil {
		return nil, fmt.Errorf("get block: %w", err)
	}
	b, err := r.eng.GetBlock(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("get block %s: %w", key, err)
	}
	return b, nil
}

// HasBlock reports whether a block is stored under key. A key no block can
// have is ErrInvalidKey.
func (r *Repo) HasBlock(ctx context.Context, key datastore.Key) (bool, error) {
	if err := engine.CheckBlockKey(key); err != nil {
		return false, fmt.Errorf("has block: %w", err)
	}
	ok, err := r.eng.HasBlock(ctx, key)
	if err != nil {
		return false, fmt.Errorf("has block %s: %w", key, err)
	}
	return ok, nil
}

// DeleteBlock removes the block stored under key and subtracts its length
// from Used, in one atomic change. Deleting a missing block is not an
// error; a key no block can have is ErrInvalidKey, and nothing is written.
func (r *Repo) DeleteBlock(ctx context.Context, key datastore.Key) error {
	if err := engine.CheckBlockKey(key); err != nil {
		return fmt.Errorf("delete block: %w", err)
	}
	err := r.eng.Update(ctx, func(tx *engine.Tx) error {
		_, err := tx.DeleteBlock(key)
		return err
	})
	if err != nil {
		return fmt.Errorf("delete block %s: %w", key, err)
	}
	return nil
}

// Verify checks that the counters on disk equal those in memory and that
// Used is the sum of the sizes of the stored blocks. It reads one state
// between two committed changes: on the embedded LevelDB with blocks in
// it, a snapshot taken once the changes in flight are durable, read while
// later changes go on; elsewhere it holds changes off while it reads
// every block's size. Call it from tests, after a restart or from an
// operator's command, not on a hot path. Differences are reported in an
// error that matches ErrInvariant.
func (r *Repo) Verify(ctx context.Context) error {
	return r.eng.Snapshot(ctx, func(tx *engine.Tx) error { return tx.VerifyCounters() })
}

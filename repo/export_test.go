package repo

import (
	"time"

	"github.com/syndtr/goleveldb/leveldb/storage"
)

// WithStorageForTest wraps the goleveldb storage of the database Open opens
// (tests: fault injection, fsync counting).
func WithStorageForTest(wrap func(storage.Storage) storage.Storage) Option {
	return func(o *options) { o.wrapStorage = wrap }
}

// WithClockForTest sets the clock that spaces the retries of a failed
// reopen (at most one per second of it), so tests need not sleep.
func WithClockForTest(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

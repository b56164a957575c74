package repo

import (
	"github.com/stowage/stowage/internal/engine"
	"github.com/syndtr/goleveldb/leveldb/storage"
)

// WithStorageForTest wraps the goleveldb storage of the database Open opens
// (tests: fault injection, fsync counting).
func WithStorageForTest(wrap func(storage.Storage) storage.Storage) Option {
	return func(o *options) { o.wrapStorage = wrap }
}

// Keys of the quota counters in the metadata datastore, for tests that
// read them behind the repo's back.
var (
	UsedKey     = engine.UsedKey
	ReservedKey = engine.ReservedKey
)

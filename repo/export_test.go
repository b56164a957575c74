package repo

import "github.com/syndtr/goleveldb/leveldb/storage"

// WithStorageForTest wraps the goleveldb storage of the database Open opens
// (tests: fault injection, fsync counting).
func WithStorageForTest(wrap func(storage.Storage) storage.Storage) Option {
	return func(o *options) { o.wrapStorage = wrap }
}

package repo

import "github.com/stowage/stowage/internal/engine"

// Keys of the quota counters in the metadata datastore, for tests that
// read them behind the repo's back.
var (
	UsedKey     = engine.UsedKey
	ReservedKey = engine.ReservedKey
)

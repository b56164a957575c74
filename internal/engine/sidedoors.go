package engine

import "github.com/syndtr/goleveldb/leveldb/storage"

// Of returns the engine behind a *repo.Repo (package repo sets it), so
// packages of this module can stage changes without the repo exporting
// its write path.
var Of func(repo any) *Engine

// WithStorage returns a repo.Option (package repo sets it) that wraps the
// goleveldb storage of a repo opened with repo.Open, so tests of other
// packages can inject faults (fail an fsync).
var WithStorage func(wrap func(storage.Storage) storage.Storage) any

// Ext returns the value stored under key, creating it with mk on first
// use: state that every user of one repo must share (one reservations
// state per repo, however many Stores are made on it).
func (e *Engine) Ext(key any, mk func() any) any {
	e.extMu.Lock()
	defer e.extMu.Unlock()
	if e.ext == nil {
		e.ext = map[any]any{}
	}
	v, ok := e.ext[key]
	if !ok {
		v = mk()
		e.ext[key] = v
	}
	return v
}

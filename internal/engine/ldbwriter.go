package engine

import (
	"fmt"

	"github.com/ipfs/go-datastore"
	"github.com/syndtr/goleveldb/leveldb"

	"github.com/stowage/stowage/internal/ldb"
)

// The embedded LevelDB (package ldb) is written and read through its own
// calls, which skip go-datastore's batch and query machinery. This file
// is the only one that knows the type.

// ldbWriter writes a group as one goleveldb batch, built in the group's
// order (so the last write of a key wins without sorting), with the
// counters once. The batch is reused: only the leader writes, one group
// at a time, so it needs no lock.
type ldbWriter struct {
	d     *ldb.DS
	spare *leveldb.Batch
	key   []byte // scratch: a key as bytes, copied by the batch
}

// ldbWriterFor returns a writer for ds when it is the embedded LevelDB
// holding the blocks too, and nil otherwise.
func ldbWriterFor(ds datastore.Batching) writer {
	d, ok := ds.(*ldb.DS)
	if !ok {
		return nil
	}
	return &ldbWriter{d: d}
}

func (w *ldbWriter) write(group []*change, base, final Counters) (err error, unknown bool) {
	b := w.spare
	w.spare = nil
	if b == nil {
		b = new(leveldb.Batch)
	}
	for _, c := range group {
		for _, o := range c.ops {
			w.key = appendKey(w.key[:0], o, false)
			if o.del {
				b.Delete(w.key)
			} else {
				b.Put(w.key, o.value)
			}
		}
	}
	if final.Used != base.Used {
		b.Put(UsedKey.Bytes(), encodeCounter(final.Used))
	}
	if final.Reserved != base.Reserved {
		b.Put(ReservedKey.Bytes(), encodeCounter(final.Reserved))
	}
	err = w.d.Write(b)
	b.Reset() // goleveldb keeps no reference to a written batch
	w.spare = b
	if err != nil {
		return fmt.Errorf("repo: commit: %w", err), true
	}
	return nil, false
}

// snapshot is a consistent, read-only state of a datastore, held until
// released.
type snapshot interface {
	datastore.Read
	Release()
}

// snapshotOf takes a snapshot of ds, or returns nil when it has none.
func snapshotOf(ds datastore.Read) (snapshot, error) {
	d, ok := ds.(*ldb.DS)
	if !ok {
		return nil, nil
	}
	s, err := d.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("repo: snapshot: %w", err)
	}
	return s, nil
}

// orderedScan scans prefix of store in key order without the query
// machinery, when store is the embedded LevelDB or one of its snapshots;
// ok is false otherwise. (Concrete types, not an interface: fn then need
// not escape to the heap.)
func orderedScan(store datastore.Read, prefix datastore.Key, after string, keysOnly bool, fn func(key string, value []byte) error) (ok bool, err error) {
	switch d := store.(type) {
	case *ldb.DS:
		return true, d.ScanAfter(prefix, after, keysOnly, fn)
	case *ldb.Snapshot:
		return true, d.ScanAfter(prefix, after, keysOnly, fn)
	}
	return false, nil
}

package ldb

import (
	"context"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/syndtr/goleveldb/leveldb"
)

// Snapshot is a read-only view of the database as it was when Snapshot
// was called: every batch written before it in full, none written after.
// It is a datastore.Read and is safe for concurrent use. Release it when
// done (LevelDB keeps the versions it sees until then). After the DS is
// closed every read fails with ErrClosed.
type Snapshot struct {
	d *DS
	s *leveldb.Snapshot
}

var _ datastore.Read = (*Snapshot)(nil)

// Snapshot takes a snapshot of the database.
func (d *DS) Snapshot() (*Snapshot, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	s, err := d.db.GetSnapshot()
	if err != nil {
		return nil, err
	}
	return &Snapshot{d: d, s: s}, nil
}

// Release releases the snapshot; reads after it fail.
func (s *Snapshot) Release() { s.s.Release() }

// Get returns the value under key.
func (s *Snapshot) Get(_ context.Context, key datastore.Key) ([]byte, error) {
	if err := s.d.enter(); err != nil {
		return nil, err
	}
	defer s.d.leave()
	v, err := s.s.Get(key.Bytes(), nil)
	return v, notFound(err)
}

// Has reports whether key is present.
func (s *Snapshot) Has(_ context.Context, key datastore.Key) (bool, error) {
	if err := s.d.enter(); err != nil {
		return false, err
	}
	defer s.d.leave()
	return s.s.Has(key.Bytes(), nil)
}

// GetSize returns the length of the value under key, read in place.
func (s *Snapshot) GetSize(_ context.Context, key datastore.Key) (int, error) {
	if err := s.d.enter(); err != nil {
		return 0, err
	}
	defer s.d.leave()
	return sizeOf(s.s.NewIterator, key)
}

// Query runs q on the snapshot, as DS.Query does on the database.
func (s *Snapshot) Query(_ context.Context, q query.Query) (query.Results, error) {
	if err := s.d.enter(); err != nil {
		return nil, err
	}
	defer s.d.leave()
	return s.d.query(q, s.s.NewIterator), nil
}

// Scan is DS.Scan on the snapshot.
func (s *Snapshot) Scan(prefix datastore.Key, keysOnly bool, fn func(key string, value []byte) error) error {
	return s.ScanAfter(prefix, "", keysOnly, fn)
}

// ScanAfter is Scan of the keys under prefix that sort after after (all of
// them when after is empty), as DS.ScanAfter.
func (s *Snapshot) ScanAfter(prefix datastore.Key, after string, keysOnly bool, fn func(key string, value []byte) error) error {
	if err := s.d.enter(); err != nil {
		return err
	}
	defer s.d.leave()
	return scanIter(s.s.NewIterator(rangeAfter(prefix, after), nil), prefix, keysOnly, fn)
}

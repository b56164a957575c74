// Package ldb is the embedded LevelDB datastore behind repo.Open: a
// datastore.Batching over github.com/syndtr/goleveldb, the engine
// go-ds-leveldb wraps, with the differences the repo's guarantees rest on:
//
//   - a query reports the iterator's error instead of ending early, so a
//     corrupt table is an error, never a shorter result (go-ds-leveldb v0.5
//     does not check it);
//   - the goleveldb storage can be wrapped, so tests can fail an fsync;
//   - every call after Close fails with ErrClosed instead of panicking.
package ldb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/syndtr/goleveldb/leveldb"
	lerrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/storage"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// ErrClosed is returned by every call on a closed DS.
var ErrClosed = errors.New("ldb: closed")

// Options configure Open.
type Options struct {
	// NoSync turns off the fsync of the journal on every write.
	NoSync bool
	// WrapStorage, when set, wraps the file storage goleveldb writes
	// through (tests use it to fail an fsync).
	WrapStorage func(storage.Storage) storage.Storage
	// ReadOnly opens the database for reading only: the journal is
	// replayed into memory, nothing is written, so it opens on a full disk.
	// Every write fails.
	ReadOnly bool
}

// DS is a LevelDB datastore. It is safe for concurrent use.
type DS struct {
	db   *leveldb.DB
	stor storage.Storage
	wo   *opt.WriteOptions

	// Every call enters and leaves; Close turns later calls away and
	// waits for those in flight. Unlike a read lock, a call entered twice
	// (a read inside a scan's callback) cannot deadlock with Close: the
	// inner one fails with ErrClosed.
	mu     sync.Mutex
	idle   sync.Cond
	n      int
	closed bool
}

var _ datastore.Batching = (*DS)(nil)

// bloom is the tables' filter: a read of a key that is not there (a free
// slot, a new block, a block not yet in a reservation's index: most
// changes make one or more) is answered without reading the tables'
// blocks. Tables written without it (by an earlier release) are read as
// before, and a release without it reads these.
var bloom = filter.NewBloomFilter(10)

// Open opens (creating if needed) the LevelDB database in dir.
func Open(dir string, o Options) (*DS, error) {
	fs, err := storage.OpenFile(dir, o.ReadOnly)
	if err != nil {
		return nil, fmt.Errorf("ldb: open %s: %w", dir, err)
	}
	var stor storage.Storage = fs
	if o.WrapStorage != nil {
		stor = o.WrapStorage(fs)
	}
	lo := &opt.Options{NoSync: o.NoSync, ReadOnly: o.ReadOnly, Filter: bloom}
	db, err := leveldb.Open(stor, lo)
	if lerrors.IsCorrupted(err) && !o.ReadOnly {
		db, err = leveldb.Recover(stor, lo)
	}
	if err != nil {
		fs.Close()
		return nil, fmt.Errorf("ldb: open %s: %w", dir, err)
	}
	d := &DS{db: db, stor: fs, wo: &opt.WriteOptions{Sync: !o.NoSync}}
	d.idle.L = &d.mu
	return d, nil
}

// Close closes the database; calls in flight finish first.
func (d *DS) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	for d.n > 0 {
		d.idle.Wait()
	}
	d.mu.Unlock()
	// goleveldb does not close a storage it was handed.
	return errors.Join(d.db.Close(), d.stor.Close())
}

// enter admits a call, or fails with ErrClosed; leave ends it.
func (d *DS) enter() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	d.n++
	return nil
}

func (d *DS) leave() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n--
	if d.n == 0 && d.closed {
		d.idle.Broadcast()
	}
}

func notFound(err error) error {
	if errors.Is(err, leveldb.ErrNotFound) {
		return datastore.ErrNotFound
	}
	return err
}

// Get returns the value under key.
func (d *DS) Get(_ context.Context, key datastore.Key) ([]byte, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	v, err := d.db.Get(key.Bytes(), nil)
	return v, notFound(err)
}

// Has reports whether key is present, without copying its value.
func (d *DS) Has(_ context.Context, key datastore.Key) (bool, error) {
	if err := d.enter(); err != nil {
		return false, err
	}
	defer d.leave()
	return d.db.Has(key.Bytes(), nil)
}

// GetSize returns the length of the value under key, reading it in place
// through an iterator rather than copying it.
func (d *DS) GetSize(_ context.Context, key datastore.Key) (int, error) {
	if err := d.enter(); err != nil {
		return 0, err
	}
	defer d.leave()
	return sizeOf(d.db.NewIterator, key)
}

// sizeOf is the length of key's value, read through an iterator of
// newIter (the database's or a snapshot's) rather than copied.
func sizeOf(newIter func(*util.Range, *opt.ReadOptions) iterator.Iterator, key datastore.Key) (int, error) {
	k := key.Bytes()
	it := newIter(&util.Range{Start: k, Limit: append(k[:len(k):len(k)], 0)}, nil)
	defer it.Release()
	if it.First() {
		return len(it.Value()), nil
	}
	if err := it.Error(); err != nil {
		return -1, err
	}
	return -1, datastore.ErrNotFound
}

// Put stores value under key.
func (d *DS) Put(_ context.Context, key datastore.Key, value []byte) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.db.Put(key.Bytes(), value, d.wo)
}

// Delete removes key; a missing key is not an error.
func (d *DS) Delete(_ context.Context, key datastore.Key) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.db.Delete(key.Bytes(), d.wo)
}

// Sync is a no-op: every write is already as durable as the options make it.
func (d *DS) Sync(context.Context, datastore.Key) error { return nil }

// Batch returns a batch applied atomically, in staging order, by Commit.
func (d *DS) Batch(context.Context) (datastore.Batch, error) {
	return &batch{d: d}, nil
}

type batch struct {
	d *DS
	b leveldb.Batch
}

func (b *batch) Put(_ context.Context, key datastore.Key, value []byte) error {
	b.b.Put(key.Bytes(), value)
	return nil
}

func (b *batch) Delete(_ context.Context, key datastore.Key) error {
	b.b.Delete(key.Bytes())
	return nil
}

func (b *batch) Commit(context.Context) error {
	if err := b.d.enter(); err != nil {
		return err
	}
	defer b.d.leave()
	return b.d.db.Write(&b.b, b.d.wo)
}

// Write applies b atomically and in order, as durable as the options make
// it. The engine builds b as changes queue, so a group costs no staging.
func (d *DS) Write(b *leveldb.Batch) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.db.Write(b, d.wo)
}

// Query runs q. Prefix and key order are served by the LevelDB iterator;
// everything else by query.NaiveQueryApply. An iterator error ends the
// results with that error.
func (d *DS) Query(_ context.Context, q query.Query) (query.Results, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	return d.query(q, d.db.NewIterator), nil
}

// query runs q over the iterators newIter makes (the database's or a
// snapshot's).
func (d *DS) query(q query.Query, newIter func(*util.Range, *opt.ReadOptions) iterator.Iterator) query.Results {
	naive := q
	naive.Prefix = "" // the iterator's range
	rng := prefixRange(datastore.NewKey(q.Prefix))
	if len(q.Orders) == 1 {
		if _, ok := q.Orders[0].(query.OrderByKey); ok {
			naive.Orders = nil
		}
	}
	it := newIter(rng, nil)
	done := false
	res := query.ResultsFromIterator(q, query.Iterator{
		Next: func() (query.Result, bool) {
			if done {
				return query.Result{}, false
			}
			if err := d.enter(); err != nil {
				done = true
				return query.Result{Error: err}, true
			}
			defer d.leave()
			if !it.Next() {
				done = true
				if err := it.Error(); err != nil {
					return query.Result{Error: fmt.Errorf("ldb: query %s: %w", q.Prefix, err)}, true
				}
				return query.Result{}, false
			}
			e := query.Entry{Key: string(it.Key()), Size: len(it.Value())}
			if !q.KeysOnly {
				e.Value = append([]byte(nil), it.Value()...)
			}
			return query.Result{Entry: e}, true
		},
		Close: func() error {
			it.Release()
			return nil
		},
	})
	return query.NaiveQueryApply(naive, res)
}

// Scan calls fn, in key order, with every key under prefix and its value
// (nil when keysOnly), without the query machinery. The value is fn's to
// keep. An iterator error ends the scan with that error.
func (d *DS) Scan(prefix datastore.Key, keysOnly bool, fn func(key string, value []byte) error) error {
	return d.ScanAfter(prefix, "", keysOnly, fn)
}

// ScanAfter is Scan of the keys under prefix that sort after after (all of
// them when after is empty). It starts where they start: the keys before,
// and the deletes of keys before not yet compacted away, are not read.
func (d *DS) ScanAfter(prefix datastore.Key, after string, keysOnly bool, fn func(key string, value []byte) error) error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return scanIter(d.db.NewIterator(rangeAfter(prefix, after), nil), prefix, keysOnly, fn)
}

// rangeAfter is the range of the keys under prefix that sort after after
// (all of them when after is empty).
func rangeAfter(prefix datastore.Key, after string) *util.Range {
	rng := prefixRange(prefix)
	if after == "" {
		return rng
	}
	if rng == nil {
		rng = &util.Range{}
	}
	// The least key after after.
	if start := append([]byte(after), 0); bytes.Compare(start, rng.Start) > 0 {
		rng = &util.Range{Start: start, Limit: rng.Limit}
	}
	return rng
}

func scanIter(it iterator.Iterator, prefix datastore.Key, keysOnly bool, fn func(key string, value []byte) error) error {
	defer it.Release()
	for it.Next() {
		var v []byte
		if !keysOnly {
			v = append([]byte(nil), it.Value()...)
		}
		if err := fn(string(it.Key()), v); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("ldb: scan %s: %w", prefix, err)
	}
	return nil
}

// Compact compacts the whole database and returns once it is done
// (benchmarks: a setup that wrote much is settled before what they time).
func (d *DS) Compact() error {
	if err := d.enter(); err != nil {
		return err
	}
	defer d.leave()
	return d.db.CompactRange(util.Range{})
}

// prefixRange is the range of the keys under prefix (nil: every key).
func prefixRange(prefix datastore.Key) *util.Range {
	if p := prefix.String(); p != "/" {
		return util.BytesPrefix([]byte(p + "/"))
	}
	return nil
}

// NewTransaction opens a LevelDB transaction. goleveldb documents them as
// expensive for small writes: batches are atomic too, and the repo uses
// them unless told otherwise.
func (d *DS) NewTransaction(_ context.Context, readOnly bool) (datastore.Txn, error) {
	if err := d.enter(); err != nil {
		return nil, err
	}
	defer d.leave()
	tx, err := d.db.OpenTransaction()
	if err != nil {
		return nil, err
	}
	return &txn{d: d, tx: tx}, nil
}

type txn struct {
	d  *DS
	tx *leveldb.Transaction
}

func (t *txn) Get(_ context.Context, key datastore.Key) ([]byte, error) {
	v, err := t.tx.Get(key.Bytes(), nil)
	return v, notFound(err)
}

func (t *txn) Has(_ context.Context, key datastore.Key) (bool, error) {
	return t.tx.Has(key.Bytes(), nil)
}

func (t *txn) GetSize(ctx context.Context, key datastore.Key) (int, error) {
	v, err := t.Get(ctx, key)
	if err != nil {
		return -1, err
	}
	return len(v), nil
}

func (t *txn) Query(ctx context.Context, q query.Query) (query.Results, error) {
	return nil, errors.New("ldb: queries inside a transaction are not supported")
}

func (t *txn) Put(_ context.Context, key datastore.Key, value []byte) error {
	return t.tx.Put(key.Bytes(), value, nil)
}

func (t *txn) Delete(_ context.Context, key datastore.Key) error {
	return t.tx.Delete(key.Bytes(), nil)
}

func (t *txn) Commit(context.Context) error {
	if err := t.d.enter(); err != nil {
		return err
	}
	defer t.d.leave()
	return t.tx.Commit()
}

func (t *txn) Discard(context.Context) { t.tx.Discard() }

package engine

import (
	"context"
	"fmt"
	"strings"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
)

// DiskCounters reads the counters from the datastore. Call it from View.
func (tx *Tx) DiskCounters() (Counters, error) {
	tx.e.dbMu.RLock()
	defer tx.e.dbMu.RUnlock()
	return readCounters(tx.ctx, tx.metaStore())
}

// Get reads a metadata record outside any change (what is durable).
func (e *Engine) Get(ctx context.Context, key datastore.Key) ([]byte, error) {
	if !e.life.enter() {
		return nil, ErrClosed
	}
	defer e.life.leave()
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	return e.meta.Get(ctx, key)
}

// GetBlock reads a block outside any change.
func (e *Engine) GetBlock(ctx context.Context, key datastore.Key) ([]byte, error) {
	if !e.life.enter() {
		return nil, ErrClosed
	}
	defer e.life.leave()
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	return e.blocks.Get(ctx, e.blockKey(key))
}

// HasBlock reports whether a block is durable.
func (e *Engine) HasBlock(ctx context.Context, key datastore.Key) (bool, error) {
	if !e.life.enter() {
		return false, ErrClosed
	}
	defer e.life.leave()
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	return e.blocks.Has(ctx, e.blockKey(key))
}

// Scan calls fn for every durable metadata record under prefix, in key
// order. A read error ends the scan with that error.
func (e *Engine) Scan(ctx context.Context, prefix datastore.Key, keysOnly bool, fn func(key string, value []byte) error) error {
	if !e.life.enter() {
		return ErrClosed
	}
	defer e.life.leave()
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	return scan(ctx, e.meta, prefix, keysOnly, byKey, func(en query.Entry) error { return fn(en.Key, en.Value) })
}

// byKey asks a scan for key order.
var byKey = []query.Order{query.OrderByKey{}}

// scan calls fn for every entry under prefix, in the given orders (none:
// the store's).
func scan(ctx context.Context, ds datastore.Read, prefix datastore.Key, keysOnly bool, orders []query.Order, fn func(query.Entry) error) error {
	q := query.Query{Prefix: prefix.String(), KeysOnly: keysOnly, ReturnsSizes: keysOnly, Orders: orders}
	res, err := ds.Query(ctx, q)
	if err != nil {
		return fmt.Errorf("repo: scan %s: %w", prefix, err)
	}
	defer res.Close()
	// NextSync, not Next (nor datastore.QueryIter, which uses Next): on
	// results built from an iterator (the map datastore's, most wrappers'),
	// Next starts a goroutine per query to feed a channel; NextSync reads
	// on this one.
	for {
		r, ok := res.NextSync()
		if !ok {
			return nil
		}
		if r.Error != nil {
			return fmt.Errorf("repo: scan %s: %w", prefix, r.Error)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r.Entry); err != nil {
			return err
		}
	}
}

func (e *Engine) blockKey(key datastore.Key) datastore.Key {
	if e.separate {
		return key
	}
	return BlocksPrefix.Child(key)
}

// ScanBlocks calls fn with the key (as the caller named it) and size of
// every stored block. Call it from View.
func (tx *Tx) ScanBlocks(fn func(key datastore.Key, size uint64) error) error {
	e := tx.e
	e.dbMu.RLock()
	defer e.dbMu.RUnlock()
	prefix := datastore.NewKey("/")
	if !e.separate {
		prefix = BlocksPrefix
	}
	blocks := tx.blockStore()
	return scan(tx.ctx, blocks, prefix, true, nil, func(en query.Entry) error {
		size := en.Size
		if size < 0 {
			n, err := blocks.GetSize(tx.ctx, datastore.RawKey(en.Key))
			if err != nil {
				return fmt.Errorf("repo: size of block %s: %w", en.Key, err)
			}
			size = n
		}
		k := en.Key
		if !e.separate {
			k = strings.TrimPrefix(k, BlocksPrefix.String())
		}
		return fn(datastore.RawKey(k), uint64(size))
	})
}

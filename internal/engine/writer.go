package engine

import (
	"context"
	"fmt"

	"github.com/ipfs/go-datastore"
)

// writer makes a group of changes durable: the commit pipeline knows the
// datastore only through it. Only the leader of the commit queue calls
// write, one group at a time, under the read lock of dbMu (a reopen
// replaces the writer with the datastore).
type writer interface {
	// write writes the changes of group, in order (the last write of a
	// key wins), and the counters as final if they moved from base, as
	// one atomic batch or transaction. unknown reports a failure after
	// which the datastore may or may not hold the group.
	write(group []*change, base, final Counters) (err error, unknown bool)
}

// dsWriter writes groups to any datastore.Batching, as batches (or
// transactions, with txn), blocks in a store of their own when separate.
type dsWriter struct {
	meta, blocks datastore.Batching
	separate     bool // blocks live in their own datastore
	txn          bool // groups as transactions instead of batches
}

func (w *dsWriter) write(group []*change, base, final Counters) (err error, unknown bool) {
	ctx := context.Background() // one caller's ctx must not fail the others
	var ops []op
	if len(group) == 1 {
		ops = group[0].ops // a Tx writes each key once
	} else {
		ops = lastWrites(group)
	}
	meta, blockPuts, blockDels := w.plan(ops, base, final)
	// With a separate block store the two stores cannot change atomically
	// together: blocks are deleted before and written after the metadata
	// that counts them, so a crash in between over-counts Used, never
	// under-counts it.
	if err, unknown := w.commit(ctx, w.blocks, blockDels, false); err != nil {
		return err, unknown
	}
	if err, unknown := w.commit(ctx, w.meta, meta, w.txn); err != nil {
		return err, unknown || len(blockDels) > 0
	}
	if err, _ := w.commit(ctx, w.blocks, blockPuts, false); err != nil {
		return &blocksAfterMeta{err}, true
	}
	return nil, false
}

// lastWrites returns the writes of changes, in order, keeping the last
// write of each key only, as if the changes ran one by one: a datastore
// whose batches do not keep their order (a map of keys, as go-datastore's
// basic batch is) so gets the same result.
func lastWrites(changes []*change) []op {
	var ops []op
	last := map[okey]int{}
	for _, c := range changes {
		for _, o := range c.ops {
			if i, seen := last[o.okey]; seen {
				ops[i] = o
			} else {
				last[o.okey] = len(ops)
				ops = append(ops, o)
			}
		}
	}
	return ops
}

// plan sorts the writes of one change (or lastWrites of several) into what
// goes to the metadata store (the counters too, if they moved from base)
// and what to the block store.
func (w *dsWriter) plan(ops []op, base, final Counters) (meta, blockPuts, blockDels []op) {
	meta = make([]op, 0, len(ops)+2)
	for _, o := range ops {
		switch {
		case !o.blocks || !w.separate:
			meta = append(meta, o)
		case o.del:
			blockDels = append(blockDels, o)
		default:
			blockPuts = append(blockPuts, o)
		}
	}
	if final.Used != base.Used {
		meta = append(meta, op{okey: okey{key: UsedKey.String()}, value: encodeCounter(final.Used)})
	}
	if final.Reserved != base.Reserved {
		meta = append(meta, op{okey: okey{key: ReservedKey.String()}, value: encodeCounter(final.Reserved)})
	}
	return meta, blockPuts, blockDels
}

// stage stages ops on b.
func (w *dsWriter) stage(ctx context.Context, b datastore.Write, ops []op) error {
	for _, o := range ops {
		k := keyOf(o, w.separate)
		var err error
		if o.del {
			err = b.Delete(ctx, k)
		} else {
			err = b.Put(ctx, k, o.value)
		}
		if err != nil {
			return fmt.Errorf("repo: stage %s: %w", k, err)
		}
	}
	return nil
}

// keyOf is the key o writes in its datastore: blocks that share the
// metadata datastore live under BlocksPrefix.
func keyOf(o op, separate bool) datastore.Key {
	if o.blocks && !separate {
		return datastore.RawKey(string(appendKey(nil, o, separate)))
	}
	return datastore.RawKey(o.key)
}

// appendKey appends keyOf(o, separate) to b, as bytes.
func appendKey(b []byte, o op, separate bool) []byte {
	if o.blocks && !separate {
		b = append(b, BlocksPrefix.String()...)
	}
	return append(b, o.key...)
}

// blocksAfterMeta is a failed write of blocks whose metadata (and counters)
// were committed: the counters on disk are the group's.
type blocksAfterMeta struct{ err error }

func (b *blocksAfterMeta) Error() string { return b.err.Error() }
func (b *blocksAfterMeta) Unwrap() error { return b.err }

// commit writes ops to ds in one batch or transaction.
func (w *dsWriter) commit(ctx context.Context, ds datastore.Batching, ops []op, txn bool) (err error, unknown bool) {
	if len(ops) == 0 {
		return nil, false
	}
	var b datastore.Write
	var commit func(context.Context) error
	var discard func()
	if txn {
		t, err := ds.(datastore.TxnDatastore).NewTransaction(ctx, false)
		if err != nil {
			return fmt.Errorf("repo: begin transaction: %w", err), false
		}
		b, commit, discard = t, t.Commit, func() { t.Discard(ctx) }
	} else {
		bt, err := ds.Batch(ctx)
		if err != nil {
			return fmt.Errorf("repo: begin batch: %w", err), false
		}
		b, commit, discard = bt, bt.Commit, func() { discardBatch(ctx, bt) }
	}
	if err := w.stage(ctx, b, ops); err != nil {
		discard()
		return err, false
	}
	if err := commit(ctx); err != nil {
		discard()
		return fmt.Errorf("repo: commit: %w", err), true
	}
	return nil, false
}

// discardBatch releases an uncommitted batch through the store's own
// cancel or discard, where it has one (flatfs leaves temporary files and
// badger logs a warning otherwise).
func discardBatch(ctx context.Context, b any) {
	switch b := b.(type) {
	case interface{ Discard(context.Context) }:
		b.Discard(ctx)
	case interface{ Discard(context.Context) error }:
		_ = b.Discard(ctx)
	case interface{ Cancel() error }:
		_ = b.Cancel()
	case interface{ Discard() }:
		b.Discard()
	}
}

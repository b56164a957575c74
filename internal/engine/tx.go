package engine

import (
	"context"
	"errors"
	"math/bits"

	"github.com/ipfs/go-datastore"
)

// Tx is one change being staged. It reads through the change's own writes,
// then the overlay of changes staged before it, then the datastore; its
// writes are applied in the order they are staged. A Tx is used only by the
// function Update or View runs, on that goroutine.
type Tx struct {
	e        *Engine
	ctx      context.Context
	c        Counters
	base     Counters      // the counters before this change
	txn      datastore.Txn // shared mode: the datastore transaction
	ops      []op
	idx      map[okey]int // the op of each key, once ops are many
	after    []func()
	readOnly bool
	// snap: a view's snapshot of the metadata datastore, read instead of
	// the overlay and the live datastore (see view.go).
	snap datastore.Read
}

var errReadOnly = errors.New("repo: write in a read-only view")

// Context is the context of the call that runs the Tx.
func (tx *Tx) Context() context.Context { return tx.ctx }

// Counters are the counters as this change leaves them so far.
func (tx *Tx) Counters() Counters { return tx.c }

// Max is the configured quota.
func (tx *Tx) Max() uint64 { return tx.e.max }

// AfterStage registers f to run once the change has joined the commit
// queue (or, if it writes nothing, once it is done), still under the
// staging lock. It does not run for an abandoned change.
func (tx *Tx) AfterStage(f func()) { tx.after = append(tx.after, f) }

// lookup finds a pending write of k: this change's own, else the overlay's.
func (tx *Tx) lookup(k okey) (value []byte, del, found bool) {
	if i, ok := tx.find(k); ok {
		return tx.ops[i].value, tx.ops[i].del, true
	}
	if tx.snap != nil {
		return nil, false, false
	}
	if p, ok := tx.e.overlay.get(k); ok {
		return p.value, p.del, true
	}
	return nil, false, false
}

func (tx *Tx) get(k okey) ([]byte, error) {
	if v, del, ok := tx.lookup(k); ok {
		if del {
			return nil, datastore.ErrNotFound
		}
		return v, nil
	}
	tx.e.dbMu.RLock()
	defer tx.e.dbMu.RUnlock()
	if k.blocks {
		return tx.blockStore().Get(tx.ctx, tx.e.blockKey(datastore.RawKey(k.key)))
	}
	return tx.metaStore().Get(tx.ctx, datastore.RawKey(k.key))
}

// metaStore is where the change reads metadata: its transaction in shared
// mode, else the datastore (behind the overlay).
func (tx *Tx) metaStore() datastore.Read {
	if tx.txn != nil {
		return tx.txn
	}
	if tx.snap != nil {
		return tx.snap
	}
	return tx.e.meta
}

// blockStore is where the change reads blocks.
func (tx *Tx) blockStore() datastore.Read {
	if !tx.e.separate {
		return tx.metaStore()
	}
	return tx.e.blocks
}

// Get reads a metadata record; a missing one is datastore.ErrNotFound.
func (tx *Tx) Get(key datastore.Key) ([]byte, error) {
	return tx.get(okey{key: key.String()})
}

// Has reports whether a metadata record exists.
func (tx *Tx) Has(key datastore.Key) (bool, error) {
	k := okey{key: key.String()}
	if _, del, ok := tx.lookup(k); ok {
		return !del, nil
	}
	tx.e.dbMu.RLock()
	defer tx.e.dbMu.RUnlock()
	return tx.metaStore().Has(tx.ctx, key)
}

func (tx *Tx) stageOp(o op) error {
	if tx.readOnly {
		return errReadOnly
	}
	if i, ok := tx.find(o.okey); ok {
		tx.ops[i] = o // one write per key and change: the last
		return nil
	}
	if tx.idx != nil {
		tx.idx[o.okey] = len(tx.ops)
	} else if len(tx.ops) == scanOps {
		tx.idx = make(map[okey]int, 2*scanOps)
		for i, o := range tx.ops {
			tx.idx[o.okey] = i
		}
		tx.idx[o.okey] = len(tx.ops)
	}
	if tx.ops == nil {
		tx.ops = make([]op, 0, 8)
	}
	tx.ops = append(tx.ops, o)
	return nil
}

// scanOps is how many ops a change holds before they are indexed by key:
// a handful (most changes write under ten records) is found faster by
// looking through them.
const scanOps = 16

// find returns the index of the op of k in this change.
func (tx *Tx) find(k okey) (int, bool) {
	if tx.idx != nil {
		i, ok := tx.idx[k]
		return i, ok
	}
	for i := range tx.ops {
		if tx.ops[i].okey == k {
			return i, true
		}
	}
	return 0, false
}

// Put stages a write of a metadata record. Quota keys are the engine's.
func (tx *Tx) Put(key datastore.Key, value []byte) error {
	return tx.stageOp(op{okey: okey{key: key.String()}, value: value})
}

// Delete stages the removal of a metadata record.
func (tx *Tx) Delete(key datastore.Key) error {
	return tx.stageOp(op{okey: okey{key: key.String()}, del: true})
}

// Reserve adds n to Reserved, or fails with ErrQuotaNotEnough.
func (tx *Tx) Reserve(n uint64) error {
	c, err := tx.c.reserve(tx.e.max, n)
	if err != nil {
		c, err = tx.withinStart(err, func(limit uint64) (Counters, error) { return tx.c.reserve(limit, n) })
	}
	if err == nil {
		tx.c = c
	}
	return err
}

// withinStart retries a quota move that does not fit under Max against
// what the repo held before the change: a change that only moves bytes
// already held (Reserved to Used and back, as a reservation's blocks are
// written and deleted) must work on a repo reopened with a Max below what
// it holds. It returns the original error when that does not fit either.
func (tx *Tx) withinStart(err error, move func(limit uint64) (Counters, error)) (Counters, error) {
	held, carry := bits.Add64(tx.base.Used, tx.base.Reserved, 0)
	if carry != 0 || held <= tx.e.max {
		return tx.c, err
	}
	c, err2 := move(held)
	if err2 != nil {
		return tx.c, err
	}
	return c, nil
}

// Release takes n from Reserved, or fails with ErrReleaseExceedsReserved.
func (tx *Tx) Release(n uint64) error {
	c, err := tx.c.release(n)
	if err == nil {
		tx.c = c
	}
	return err
}

// BlockSize returns the size of the block under key and whether it exists.
// It asks the block store whether the key exists before reading its size,
// so a new block costs one existence check.
func (tx *Tx) BlockSize(key datastore.Key) (uint64, bool, error) {
	k := okey{blocks: true, key: key.String()}
	if v, del, ok := tx.lookup(k); ok {
		return uint64(len(v)), !del, nil
	}
	tx.e.dbMu.RLock()
	defer tx.e.dbMu.RUnlock()
	bk := tx.e.blockKey(key)
	ok, err := tx.blockStore().Has(tx.ctx, bk)
	if err != nil || !ok {
		return 0, false, err
	}
	n, err := tx.blockStore().GetSize(tx.ctx, bk)
	if err != nil {
		return 0, false, err
	}
	return uint64(n), true, nil
}

// PutBlock stages a block, adding its length to Used (an overwrite counts
// the difference); ErrQuotaNotEnough when it does not fit.
func (tx *Tx) PutBlock(key datastore.Key, data []byte) error {
	old, _, err := tx.BlockSize(key)
	if err != nil {
		return err
	}
	return tx.ReplaceBlock(key, data, old)
}

// ReplaceBlock is PutBlock for a caller that has just read, with BlockSize
// in this change, the size of the block stored under key (zero: none).
func (tx *Tx) ReplaceBlock(key datastore.Key, data []byte, old uint64) error {
	if err := CheckBlockKey(key); err != nil {
		return err
	}
	c, err := tx.c.store(tx.e.max, old, uint64(len(data)))
	if err != nil {
		c, err = tx.withinStart(err, func(limit uint64) (Counters, error) { return tx.c.store(limit, old, uint64(len(data))) })
	}
	if err != nil {
		return err
	}
	if err := tx.stageOp(op{okey: okey{blocks: true, key: key.String()}, value: data}); err != nil {
		return err
	}
	tx.c = c
	return nil
}

// ForgetBlock stages the removal of a block whose size the caller's own
// records give (written in the same atomic change as the block), and
// subtracts that size from Used without reading the block. Were the block
// missing (a crash between a separate block store and the metadata that
// counts it), Used counted it: subtracting its size corrects that.
func (tx *Tx) ForgetBlock(key datastore.Key, size uint64) error {
	if err := tx.stageOp(op{okey: okey{blocks: true, key: key.String()}, del: true}); err != nil {
		return err
	}
	tx.c.Used -= min(size, tx.c.Used)
	return nil
}

// DeleteBlock stages the removal of a block and subtracts its size from
// Used, returning that size (zero for a missing block, which is no error).
func (tx *Tx) DeleteBlock(key datastore.Key) (uint64, error) {
	if err := CheckBlockKey(key); err != nil {
		return 0, err
	}
	old, ok, err := tx.BlockSize(key)
	if err != nil || !ok {
		return 0, err
	}
	if err := tx.stageOp(op{okey: okey{blocks: true, key: key.String()}, del: true}); err != nil {
		return 0, err
	}
	tx.c, _ = tx.c.store(tx.e.max, old, 0) // shrinking always fits
	return old, nil
}

// Generation changes whenever staged changes were dropped (a failed group)
// or the database was reopened: state derived from earlier reads is stale.
// For use under the staging lock.
func (tx *Tx) Generation() uint64 { return tx.e.gen }

// Dirty reports whether the change has staged a write or moved a counter.
func (tx *Tx) Dirty() bool { return len(tx.ops) > 0 || tx.c != tx.base }

// Shared reports whether the engine runs in shared mode.
func (tx *Tx) Shared() bool { return tx.e.shared }

package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/go-datastore"
)

// blockKey maps a caller's block key into the block datastore.
func (r *Repo) blockKey(key datastore.Key) datastore.Key {
	if r.shared {
		return blocksPrefix.Child(key)
	}
	return key
}

// PutBlock stores data under key and adds its length to Used. Overwriting a
// block counts only the difference in size. It fails with ErrQuotaNotEnough,
// storing nothing, when the block does not fit in what is neither used nor
// reserved: bytes reserved for a download must be released (see
// reservations.Store.Release) before the blocks they were reserved for are
// put.
func (r *Repo) PutBlock(ctx context.Context, key datastore.Key, data []byte) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	bk, old, err := r.lockedBlock(ctx, key)
	if err != nil {
		return fmt.Errorf("put block %s: %w", key, err)
	}
	cur := r.Quota()
	next, err := cur.store(old, uint64(len(data)))
	if err != nil {
		return fmt.Errorf("put block %s: %w", key, err)
	}
	if r.shared {
		err = r.write(ctx, []Record{{bk, data}, {UsedKey, encodeCounter(next.Used)}}, nil)
	} else {
		err = r.putSeparate(ctx, bk, data, cur.Used, next.Used)
	}
	if err != nil {
		return fmt.Errorf("put block %s: %w", key, err)
	}
	r.setQuota(next)
	return nil
}

// putSeparate writes a block to a separate block store. A grown Used is
// persisted before the block and a shrunk one after it, so a crash between
// the two writes over-counts rather than under-counts.
func (r *Repo) putSeparate(ctx context.Context, bk datastore.Key, data []byte, oldUsed, newUsed uint64) error {
	if newUsed > oldUsed {
		if err := r.meta.Put(ctx, UsedKey, encodeCounter(newUsed)); err != nil {
			return fmt.Errorf("repo: write used counter: %w", err)
		}
		if err := r.blocks.Put(ctx, bk, data); err != nil {
			return errors.Join(err, r.restoreUsed(ctx, oldUsed))
		}
		return nil
	}
	if err := r.blocks.Put(ctx, bk, data); err != nil {
		return err
	}
	if newUsed != oldUsed {
		if err := r.meta.Put(ctx, UsedKey, encodeCounter(newUsed)); err != nil {
			// The smaller block is stored but Used (in memory and on disk)
			// still counts the larger one: an over-count, never an under-count.
			return fmt.Errorf("repo: write used counter: %w", err)
		}
	}
	return nil
}

// restoreUsed puts back the Used counter after a failed block write. If even
// that fails, the counter on disk over-counts until the next write of Used.
func (r *Repo) restoreUsed(ctx context.Context, used uint64) error {
	if err := r.meta.Put(ctx, UsedKey, encodeCounter(used)); err != nil {
		r.log.Warn("could not restore used counter; it over-counts until the next block write", "err", err)
		return fmt.Errorf("repo: restore used counter: %w", err)
	}
	return nil
}

// GetBlock returns the block stored under key. A missing block is an error
// that errors.Is datastore.ErrNotFound.
func (r *Repo) GetBlock(ctx context.Context, key datastore.Key) ([]byte, error) {
	b, err := r.blocks.Get(ctx, r.blockKey(key))
	if err != nil {
		return nil, fmt.Errorf("get block %s: %w", key, err)
	}
	return b, nil
}

// HasBlock reports whether a block is stored under key.
func (r *Repo) HasBlock(ctx context.Context, key datastore.Key) (bool, error) {
	ok, err := r.blocks.Has(ctx, r.blockKey(key))
	if err != nil {
		return false, fmt.Errorf("has block %s: %w", key, err)
	}
	return ok, nil
}

// DeleteBlock removes the block stored under key and subtracts its length
// from Used. Deleting a missing block is not an error.
func (r *Repo) DeleteBlock(ctx context.Context, key datastore.Key) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	bk, old, err := r.lockedBlock(ctx, key)
	if err != nil {
		return fmt.Errorf("delete block %s: %w", key, err)
	}
	if old == 0 {
		if ok, err := r.blocks.Has(ctx, bk); err != nil || !ok {
			if err != nil {
				return fmt.Errorf("delete block %s: %w", key, err)
			}
			return nil
		}
	}
	cur := r.Quota()
	next, _ := cur.store(old, 0) // shrinking always fits
	if r.shared {
		err = r.write(ctx, []Record{{UsedKey, encodeCounter(next.Used)}}, []datastore.Key{bk})
	} else {
		// Block first, counter second: a crash in between over-counts.
		if err = r.blocks.Delete(ctx, bk); err == nil && next.Used != cur.Used {
			if err = r.meta.Put(ctx, UsedKey, encodeCounter(next.Used)); err != nil {
				// The block is gone but Used (in memory and on disk) still
				// counts it: an over-count, corrected by the next write.
				return fmt.Errorf("delete block %s: block deleted, used counter not written: %w", key, err)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("delete block %s: %w", key, err)
	}
	r.setQuota(next)
	return nil
}

// lockedBlock returns the block datastore's key for key and the size of the
// block stored there (zero when missing). Called with writeMu held.
func (r *Repo) lockedBlock(ctx context.Context, key datastore.Key) (datastore.Key, uint64, error) {
	if r.closed {
		return datastore.Key{}, 0, ErrClosed
	}
	bk := r.blockKey(key)
	size, err := r.blockSize(ctx, bk)
	return bk, size, err
}

// blockSize returns the stored size of a block, zero when it is missing.
func (r *Repo) blockSize(ctx context.Context, bk datastore.Key) (uint64, error) {
	n, err := r.blocks.GetSize(ctx, bk)
	switch {
	case errors.Is(err, datastore.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, err
	}
	return uint64(n), nil
}

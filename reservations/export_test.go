package reservations

import (
	"context"
	"fmt"

	"github.com/ipfs/go-datastore"
)

// PutBlocksForTest writes blocks of a reservation as Store.PutBlock does
// (the same records and quota moves), all in one change: the setup of a
// reservation of many blocks in benchmarks and tests. The keys must be
// new.
func PutBlocksForTest(ctx context.Context, s *Store, id ReservationID, keys []datastore.Key, data []byte) error {
	n := uint64(len(data))
	return s.update(ctx, func(t txn) error {
		r, err := t.reservation(id)
		if err != nil {
			return err
		}
		for _, key := range keys {
			if n > r.Size {
				return fmt.Errorf("%w: reservation holds %d", ErrBytesOutOfBounds, r.Size)
			}
			if err := t.Release(n); err != nil {
				return err
			}
			r.Size, r.Used = r.Size-n, r.Used+n
			if err := t.ReplaceBlock(key, data, 0); err != nil {
				return err
			}
			if err := t.putBlockIndex(s.st, id, blockIndexKey(id, key), n); err != nil {
				return err
			}
		}
		return t.putReservation(r)
	})
}

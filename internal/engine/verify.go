package engine

import (
	"errors"
	"fmt"

	"github.com/ipfs/go-datastore"
)

// ErrInvariant is re-exported by package repo.
var ErrInvariant = errors.New("repo: counters do not add up")

// VerifyCounters checks that the counters on disk equal those in memory and
// that Used is the sum of the sizes of the stored blocks. Call it from View.
func (tx *Tx) VerifyCounters() error {
	mem := tx.Counters()
	disk, err := tx.DiskCounters()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	var sum uint64
	var n int
	err = tx.ScanBlocks(func(_ datastore.Key, size uint64) error {
		sum += size
		n++
		return nil
	})
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	var errs []error
	if disk != mem {
		errs = append(errs, fmt.Errorf("%w: counters on disk (used %d, reserved %d) differ from memory (used %d, reserved %d)",
			ErrInvariant, disk.Used, disk.Reserved, mem.Used, mem.Reserved))
	}
	if sum != mem.Used {
		errs = append(errs, fmt.Errorf("%w: used %d, %d stored blocks hold %d: difference %+d",
			ErrInvariant, mem.Used, n, sum, int64(mem.Used-sum)))
	}
	return errors.Join(errs...)
}

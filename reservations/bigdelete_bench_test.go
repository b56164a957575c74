package reservations_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/internal/ldb"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// BenchmarkBigDelete: issue 17, item 8. DeleteReservation of a reservation
// of 4,000 / 16,000 / 64,000 blocks on LevelDB without fsync, while 4
// goroutines run small changes (ReserveSlot, then DeleteReservation, each
// call timed). Before the delete, the same 4 run alone for 200 ms: the
// baseline. Metrics: us/block (the delete's time per block deleted), the
// others' p50/p99/max latency during the delete (p50-us, p99-us, max-us)
// and in the baseline (base-*), and p99-ratio (p99 / base-p99). ns/op
// includes the setup; ignore it.
func BenchmarkBigDelete(b *testing.B) {
	const others = 4
	const blockSize = 256
	for _, n := range []int{4000, 16000, 64000} {
		b.Run(fmt.Sprintf("blocks=%d", n), func(b *testing.B) {
			ctx := b.Context()
			r, err := repo.Open(ctx, b.TempDir(), repo.WithNoSync(), repo.WithQuotaMaxBytes(benchQuota))
			require.NoError(b, err)
			b.Cleanup(func() { _ = r.Close() })
			s := reservations.New(r)
			_, slots := callerSetup(b, s, others+1, false)
			big := slots[others]
			big.Ask.SlotSize = uint64(n * blockSize)
			data := make([]byte, blockSize)
			next := make([]uint64, others) // each caller's next slot index
			var base, during []time.Duration
			var deleting time.Duration
			for i := range b.N {
				big.Index = uint64(i)
				res, err := s.ReserveSlot(ctx, big)
				require.NoError(b, err)
				keys := make([]datastore.Key, n)
				for j := range keys {
					keys[j] = datastore.NewKey(fmt.Sprintf("big/%d/%06d", i, j))
				}
				for j := 0; j < n; j += 4000 {
					require.NoError(b, reservations.PutBlocksForTest(ctx, s, res.ID, keys[j:min(j+4000, n)], data))
				}
				settle(b, r)

				base = append(base, runOthers(b, s, slots[:others], next, func() { time.Sleep(200 * time.Millisecond) })...)
				during = append(during, runOthers(b, s, slots[:others], next, func() {
					start := time.Now()
					require.NoError(b, s.DeleteReservation(ctx, res.ID))
					deleting += time.Since(start)
				})...)
			}
			b.StopTimer()
			require.NoError(b, s.Verify(ctx))
			us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
			b.ReportMetric(us(deleting)/float64(b.N*n), "us/block")
			slices.Sort(base)
			slices.Sort(during)
			b.ReportMetric(us(quantile(during, 0.5)), "p50-us")
			b.ReportMetric(us(quantile(during, 0.99)), "p99-us")
			b.ReportMetric(us(during[len(during)-1]), "max-us")
			b.ReportMetric(us(quantile(base, 0.5)), "base-p50-us")
			b.ReportMetric(us(quantile(base, 0.99)), "base-p99-us")
			b.ReportMetric(us(base[len(base)-1]), "base-max-us")
			b.ReportMetric(float64(quantile(during, 0.99))/float64(quantile(base, 0.99)), "p99-ratio")
		})
	}
}

// BenchmarkBigDeleteAlone: DeleteReservation of 4,000 / 16,000 / 64,000
// blocks with nothing else running, on LevelDB without fsync: us/block
// with less noise than BenchmarkBigDelete's, to show it flat.
func BenchmarkBigDeleteAlone(b *testing.B) {
	const blockSize = 256
	for _, n := range []int{4000, 16000, 64000} {
		b.Run(fmt.Sprintf("blocks=%d", n), func(b *testing.B) {
			ctx := b.Context()
			r, err := repo.Open(ctx, b.TempDir(), repo.WithNoSync(), repo.WithQuotaMaxBytes(benchQuota))
			require.NoError(b, err)
			b.Cleanup(func() { _ = r.Close() })
			s := reservations.New(r)
			_, slots := callerSetup(b, s, 1, false)
			big := slots[0]
			big.Ask.SlotSize = uint64(n * blockSize)
			data := make([]byte, blockSize)
			var deleting time.Duration
			for i := range b.N {
				big.Index = uint64(i)
				res, err := s.ReserveSlot(ctx, big)
				require.NoError(b, err)
				keys := make([]datastore.Key, n)
				for j := range keys {
					keys[j] = datastore.NewKey(fmt.Sprintf("big/%d/%06d", i, j))
				}
				for j := 0; j < n; j += 4000 {
					require.NoError(b, reservations.PutBlocksForTest(ctx, s, res.ID, keys[j:min(j+4000, n)], data))
				}
				settle(b, r)
				start := time.Now()
				require.NoError(b, s.DeleteReservation(ctx, res.ID))
				deleting += time.Since(start)
			}
			b.ReportMetric(float64(deleting)/float64(time.Microsecond)/float64(b.N*n), "us/block")
		})
	}
}

// settle compacts the repo's LevelDB: blocks written over hours would be
// compacted long before their reservation is deleted, and a setup that
// wrote them in a second would otherwise leave LevelDB's write slowdown
// (a millisecond per write while level 0 holds many tables) to the
// delete.
func settle(b *testing.B, r *repo.Repo) {
	require.NoError(b, r.Datastore().(*ldb.DS).Compact())
}

// runOthers runs ReserveSlot + DeleteReservation cycles on each slot, one
// goroutine per slot, while meanwhile runs, and returns the latency of
// every call.
func runOthers(b *testing.B, s *reservations.Store, slots []stowage.Slot, next []uint64, meanwhile func()) []time.Duration {
	ctx := context.Background()
	stop := make(chan struct{})
	lat := make([][]time.Duration, len(slots))
	var wg sync.WaitGroup
	for c, slot := range slots {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				slot.Index = next[c]
				next[c]++
				start := time.Now()
				r, err := s.ReserveSlot(ctx, slot)
				lat[c] = append(lat[c], time.Since(start))
				if err != nil {
					b.Error(err)
					return
				}
				start = time.Now()
				err = s.DeleteReservation(ctx, r.ID)
				lat[c] = append(lat[c], time.Since(start))
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	meanwhile()
	close(stop)
	wg.Wait()
	return slices.Concat(lat...)
}

// quantile is the q-quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

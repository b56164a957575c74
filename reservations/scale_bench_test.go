package reservations_test

import (
	"context"
	"encoding/binary"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/internal/ldb"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// Issue 22: Verify and ReclaimExpired at 100,000 reservations over 100
// availabilities, on LevelDB without fsync.

const scaleAvail, scaleRes = 100, 100_000

// scaleValidUntil is when the fixture's reservations expire: long after
// every now the benchmarks use.
var scaleValidUntil = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)

// buildScale writes the fixture into dir with direct batched writes (the
// records exactly as the Store writes them, its indexes included) and
// opens a repo on it.
func buildScale(b *testing.B, dir string) (*repo.Repo, *reservations.Store, []reservations.AvailabilityID) {
	return buildFixture(b, dir, scaleAvail, scaleRes)
}

// buildFixture writes nAvail availabilities and nRes reservations spread
// over them into dir (see buildScale) and opens a repo on it.
func buildFixture(b testing.TB, dir string, scaleAvail, scaleRes int) (*repo.Repo, *reservations.Store, []reservations.AvailabilityID) {
	db, err := ldb.Open(dir, ldb.Options{NoSync: true})
	require.NoError(b, err)
	var batch leveldb.Batch
	flush := func() {
		require.NoError(b, db.Write(&batch))
		batch.Reset()
	}
	put := func(k datastore.Key, v []byte) { batch.Put(k.Bytes(), v) }
	aids := make([]reservations.AvailabilityID, scaleAvail)
	var reserved uint64
	per := scaleRes / scaleAvail
	for i := range scaleAvail {
		aid := reservations.AvailabilityID(uuid.Must(uuid.NewV7()))
		aids[i] = aid
		a := reservations.Availability{ID: aid, TotalSize: 1 << 40, Size: 1<<40 - uint64(per)*benchBlock, Duration: 1 << 20, MinPrice: u(1), MaxCollateral: u(1)}
		reserved += a.Size
		v, err := a.MarshalJSON()
		require.NoError(b, err)
		put(reservations.KeyOf(a), v)
		put(datastore.NewKey("/meta/sales/availabilities/"+aid.String()), nil)
	}
	for i := range scaleRes {
		r := reservations.Reservation{
			ID: reservations.ReservationID(uuid.Must(uuid.NewV7())), AvailabilityID: aids[i%scaleAvail],
			Size: benchBlock, SlotSize: benchBlock, RequestID: reqID(7), SlotIndex: uint64(i), ValidUntil: scaleValidUntil,
		}
		reserved += r.Size
		v, err := r.MarshalJSON()
		require.NoError(b, err)
		put(reservations.KeyOf(r), v)
		put(datastore.NewKey("/meta/sales/byid/"+r.ID.String()), []byte(r.AvailabilityID.String()))
		put(datastore.NewKey(slotKey(r.RequestID.String(), i)), []byte(r.AvailabilityID.String()+"/"+r.ID.String()))
		for _, kv := range reservations.IndexEntriesForTest(r) {
			put(kv.Key, kv.Value)
		}
		if batch.Len() > 10_000 {
			flush()
		}
	}
	put(datastore.NewKey("/meta/quota/reserved"), binary.BigEndian.AppendUint64(nil, reserved))
	put(datastore.NewKey("/meta/sales/layout"), []byte(strconv.Itoa(reservations.LayoutForTest)))
	flush()
	require.NoError(b, db.Close())
	// Compact fully, as a store that has lived a while is.
	raw, err := leveldb.OpenFile(dir, nil)
	require.NoError(b, err)
	require.NoError(b, raw.CompactRange(util.Range{}))
	require.NoError(b, raw.Close())
	r, err := repo.Open(context.Background(), dir, repo.WithNoSync(), repo.WithQuotaMaxBytes(benchQuota))
	require.NoError(b, err)
	b.Cleanup(func() { _ = r.Close() })
	s := reservations.New(r)
	return r, s, aids
}

// BenchmarkVerifyScale: Verify of the fixture beside a raw scan of every
// record it reads (keys and values, through the same LevelDB).
func BenchmarkVerifyScale(b *testing.B) {
	r, s, _ := buildScale(b, b.TempDir())
	ctx := context.Background()
	require.NoError(b, s.Verify(ctx))
	b.Run("stowage", func(b *testing.B) {
		for b.Loop() {
			require.NoError(b, s.Verify(ctx))
		}
	})
	d := r.Datastore().(*ldb.DS)
	rawScan := func() {
		n := 0
		for _, p := range []string{"/meta", "/blocks"} {
			require.NoError(b, d.Scan(datastore.NewKey(p), false, func(string, []byte) error { n++; return nil }))
		}
		require.Greater(b, n, 3*scaleRes)
	}
	b.Run("baseline", func(b *testing.B) {
		for b.Loop() {
			rawScan()
		}
	})
	// The two in turn, so that a machine whose load drifts slows both
	// alike: the ratio of their total times.
	b.Run("interleaved", func(b *testing.B) {
		var verify, raw time.Duration
		for b.Loop() {
			start := time.Now()
			require.NoError(b, s.Verify(ctx))
			mid := time.Now()
			rawScan()
			verify, raw = verify+mid.Sub(start), raw+time.Since(mid)
		}
		b.ReportMetric(float64(verify.Milliseconds())/float64(b.N), "verify-ms")
		b.ReportMetric(float64(raw.Milliseconds())/float64(b.N), "scan-ms")
		b.ReportMetric(float64(verify)/float64(raw), "ratio")
	})
}

// BenchmarkVerifyWriterLatency: a writer's ReserveSlot + DeleteReservation
// cycles on the fixture, alone ("idle") and while Verify runs back to back
// ("verify"). Metrics: the cycle's p50, p99 and max latency in µs, and the
// Verifies completed.
func BenchmarkVerifyWriterLatency(b *testing.B) {
	_, s, _ := buildScale(b, b.TempDir())
	ctx := context.Background()
	slot := stowage.Slot{RequestID: stowage.RequestID{0xee}, Ask: stowage.StorageAsk{SlotSize: benchBlock, Duration: 1, Reward: u(1), Collateral: u(1)}}
	for _, verifying := range []bool{false, true} {
		name := "idle"
		if verifying {
			name = "verify"
		}
		b.Run(name, func(b *testing.B) {
			var stop atomic.Bool
			var verifies atomic.Int64
			var wg sync.WaitGroup
			if verifying && b.N > 1 {
				wg.Go(func() {
					for !stop.Load() {
						if err := s.Verify(ctx); err != nil {
							b.Error(err)
							return
						}
						verifies.Add(1)
					}
				})
			}
			cycle := func(i int) time.Duration {
				slot.Index = uint64(i)
				start := time.Now()
				res, err := s.ReserveSlot(ctx, slot)
				require.NoError(b, err)
				require.NoError(b, s.DeleteReservation(ctx, res.ID))
				return time.Since(start)
			}
			cycle(-1) // hints loaded
			var lat []time.Duration
			b.ResetTimer()
			// With Verify: at least three of them, so the cycles span them.
			for i := 0; i < b.N || verifying && b.N > 1 && verifies.Load() < 3; i++ {
				lat = append(lat, cycle(i))
			}
			stop.Store(true)
			wg.Wait()
			reportLatency(b, lat)
			b.ReportMetric(float64(verifies.Load()), "verifies")
		})
	}
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(q float64) float64 {
		return float64(lat[min(len(lat)-1, int(q*float64(len(lat))))].Microseconds())
	}
	b.ReportMetric(at(0.5), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), "max-µs")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkReclaimExpiredScale: ReclaimExpired on the fixture with none
// expired, and with 1,000 expired reservations added before each call.
func BenchmarkReclaimExpiredScale(b *testing.B) {
	_, s, _ := buildScale(b, b.TempDir())
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	b.Run("none-expired", func(b *testing.B) {
		for b.Loop() {
			n, err := s.ReclaimExpired(ctx, now)
			require.NoError(b, err)
			require.Zero(b, n)
		}
	})
	b.Run("1000-expired", func(b *testing.B) {
		slot := stowage.Slot{RequestID: stowage.RequestID{0xdd}, Ask: stowage.StorageAsk{SlotSize: benchBlock, Duration: 1, Reward: u(1), Collateral: u(1)}, Expiry: now.Add(-time.Hour)}
		idx := 0
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			for range 1000 {
				slot.Index = uint64(idx)
				idx++
				_, err := s.ReserveSlot(ctx, slot)
				require.NoError(b, err)
			}
			b.StartTimer()
			n, err := s.ReclaimExpired(ctx, now)
			require.NoError(b, err)
			require.Equal(b, 1000, n)
		}
	})
}

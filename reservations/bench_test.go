package reservations_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	dsleveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/storage"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/internal/faultfs"
	"github.com/stowage/stowage/internal/ldb"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// Each benchmark runs a stowage operation ("stowage") beside a raw baseline
// ("baseline") that does the same datastore reads and one batch write per
// step, with records of the same sizes and none of the package's logic, in
// the same run, so the ratio of the two can be read off.

const (
	benchQuota = 1 << 60
	benchBlock = 1 << 10 // Store.PutBlock blocks of the cycle
)

// openCountedRepo is repo.Open(dir) with fsync, built from the same parts
// (internal/ldb over goleveldb, the same engine) so the journal's fsyncs can
// be counted: repo.Open's storage hook is unexported. The write path is the
// same; only the reopen after a failed write, which no benchmark exercises,
// is missing.
func openCountedRepo(b *testing.B, syncs *atomic.Int64) *repo.Repo {
	db, err := ldb.Open(b.TempDir(), ldb.Options{WrapStorage: func(s storage.Storage) storage.Storage {
		return faultfs.CountSyncs(s, syncs)
	}})
	require.NoError(b, err)
	r, err := repo.New(b.Context(), db, repo.WithQuotaMaxBytes(benchQuota))
	require.NoError(b, err)
	b.Cleanup(func() {
		_ = r.Close()
		_ = db.Close()
	})
	return r
}

// runCallers runs b.N cycles spread over callers goroutines and reports
// cycles per second. cycle gets the caller's number and the caller's own
// count of cycles so far.
func runCallers(b *testing.B, callers int, cycle func(caller, i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for c := range callers {
		wg.Go(func() {
			for i := 0; next.Add(1) <= int64(b.N); i++ {
				if err := cycle(c, i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	cpu := cpuTime() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/cycle")
	b.ReportMetric(cpu.Seconds()/b.Elapsed().Seconds(), "cores")
}

// cpuTime is the CPU time the process has used (user and system, every
// goroutine and goleveldb's compactions included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// callerSetup gives each caller an availability and a slot that only it
// can take (shared: one availability and slots every caller can take).
// ReserveSlot picks the availability itself, so the terms do the steering:
// availability k has MinPrice = MaxCollateral = k+1, and caller c's slots
// pay c+1 and ask c+1 collateral, which only availability c accepts.
func callerSetup(b *testing.B, s *reservations.Store, callers int, shared bool) ([]reservations.AvailabilityID, []stowage.Slot) {
	ids := make([]reservations.AvailabilityID, callers)
	slots := make([]stowage.Slot, callers)
	for c := range callers {
		k := uint64(c + 1)
		if shared {
			k = 1
		}
		if c == 0 || !shared {
			a, err := s.AddAvailability(b.Context(), reservations.Availability{TotalSize: 1 << 40, Duration: 1 << 20, MinPrice: u(k), MaxCollateral: u(k)})
			require.NoError(b, err)
			ids[c] = a.ID
		} else {
			ids[c] = ids[0]
		}
		slots[c] = stowage.Slot{
			RequestID: stowage.RequestID{byte(c), byte(c >> 8), 0xbe},
			Ask:       stowage.StorageAsk{SlotSize: 2 * benchBlock, Duration: 1, Reward: u(k), Collateral: u(k)},
		}
	}
	return ids, slots
}

// BenchmarkCycleFsync: issues 8 and 18. Reservation cycles on LevelDB with
// fsync at 1 to 32 concurrent callers, each on its own availability or all
// on one, beside the fsync limit: the same batches through a plain group
// commit over goleveldb, without the reads ("baseline-writes", the limit)
// and with every read the Store does ("baseline"). Metrics: cycles/s,
// commits/fsync, CPU µs per cycle and cores used.
func BenchmarkCycleFsync(b *testing.B) {
	for _, kind := range []cycleKind{slotCycle, releaseCycle} {
		for _, shared := range []bool{false, true} {
			avail := "own"
			if shared {
				avail = "shared"
			}
			for _, callers := range []int{1, 4, 16, 32} {
				name := fmt.Sprintf("%s/%s/callers=%d", kind.name, avail, callers)
				b.Run(name+"/stowage", func(b *testing.B) {
					var syncs atomic.Int64
					r := openCountedRepo(b, &syncs)
					s := reservations.New(r)
					ids, slots := callerSetup(b, s, callers, shared)
					data := make([]byte, benchBlock)
					syncs.Store(0)
					before := r.Stats().CommitSeconds
					runCallers(b, callers, func(c, i int) error {
						return kind.stowage(context.Background(), s, ids[c], slots[c], c, i, data)
					})
					b.ReportMetric(float64(commitsPerCycle*b.N)/float64(syncs.Load()), "commits/fsync")
					after := r.Stats().CommitSeconds
					b.ReportMetric(1e6*(after.Sum-before.Sum)/float64(after.Count-before.Count), "µs/write")
				})
				for _, lv := range []reads{readsNone, readsAll} {
					row := map[reads]string{readsNone: "/baseline-writes", readsAll: "/baseline"}[lv]
					b.Run(name+row, func(b *testing.B) {
						var syncs atomic.Int64
						db := openGroupDB(b, &syncs)
						rec := newRawRecords(b)
						aids := make([]string, callers)
						for c := range callers {
							aids[c] = uuid.Must(uuid.NewV7()).String()
							if shared && c > 0 {
								aids[c] = aids[0]
							}
							require.NoError(b, db.write(b.Context(), []rawOp{{key: availKey(aids[c]), value: rec.avail}}))
						}
						syncs.Store(0)
						db.writeNanos.Store(0)
						runCallers(b, callers, func(c, i int) error {
							return kind.raw(context.Background(), db, lv, rec, aids[c], "req"+strconv.Itoa(c), c, i)
						})
						b.ReportMetric(float64(commitsPerCycle*b.N)/float64(syncs.Load()), "commits/fsync")
						b.ReportMetric(float64(db.writeNanos.Load())/1e3/float64(syncs.Load()), "µs/write")
					})
				}
			}
		}
	}
}

// BenchmarkCycle: issue 18's CPU of one change, seen alone. The cycle
// ReserveSlot → Store.PutBlock ×2 → DeleteReservation, one caller, on the
// in-memory map and on LevelDB without and with fsync, beside the same
// datastore operations done raw with the least reads ("baseline-min", the
// limit: goleveldb opened directly, or the same map) and with every read
// the Store does through go-datastore ("baseline": go-ds-leveldb, or the
// map).
func BenchmarkCycle(b *testing.B) {
	type backend struct {
		name  string
		store func(b *testing.B) *repo.Repo
		raw   func(b *testing.B) datastore.Batching
		min   func(b *testing.B) rawDB
	}
	mem := func(*testing.B) datastore.Batching { return dssync.MutexWrap(datastore.NewMapDatastore()) }
	openRepo := func(opts ...repo.Option) func(b *testing.B) *repo.Repo {
		return func(b *testing.B) *repo.Repo {
			r, err := repo.Open(b.Context(), b.TempDir(), append(opts, repo.WithQuotaMaxBytes(benchQuota))...)
			require.NoError(b, err)
			b.Cleanup(func() { _ = r.Close() })
			return r
		}
	}
	openRaw := func(noSync bool) func(b *testing.B) datastore.Batching {
		return func(b *testing.B) datastore.Batching {
			db, err := dsleveldb.NewDatastore(b.TempDir(), &dsleveldb.Options{NoSync: noSync})
			require.NoError(b, err)
			b.Cleanup(func() { _ = db.Close() })
			return db
		}
	}
	openMin := func(sync bool) func(b *testing.B) rawDB {
		return func(b *testing.B) rawDB { return openLDBRaw(b, sync) }
	}
	backends := []backend{
		{"mem", func(b *testing.B) *repo.Repo {
			r, err := repo.New(b.Context(), mem(b), repo.WithQuotaMaxBytes(benchQuota))
			require.NoError(b, err)
			return r
		}, mem, func(b *testing.B) rawDB { return dsRaw{mem(b)} }},
		{"leveldb-nosync", openRepo(repo.WithNoSync()), openRaw(true), openMin(false)},
		{"leveldb-fsync", openRepo(), openRaw(false), openMin(true)},
	}
	for _, be := range backends {
		b.Run(be.name+"/stowage", func(b *testing.B) {
			s := reservations.New(be.store(b))
			ids, slots := callerSetup(b, s, 1, false)
			data := make([]byte, benchBlock)
			runCallers(b, 1, func(c, i int) error {
				return slotCycle.stowage(b.Context(), s, ids[c], slots[c], c, i, data)
			})
		})
		raw := func(db rawDB, lv reads) func(b *testing.B) {
			return func(b *testing.B) {
				rec := newRawRecords(b)
				aid := uuid.Must(uuid.NewV7()).String()
				require.NoError(b, db.write(b.Context(), []rawOp{{key: availKey(aid), value: rec.avail}}))
				runCallers(b, 1, func(c, i int) error {
					return slotCycle.raw(b.Context(), db, lv, rec, aid, "req", c, i)
				})
			}
		}
		b.Run(be.name+"/baseline-min", func(b *testing.B) { raw(be.min(b), readsMin)(b) })
		b.Run(be.name+"/baseline", func(b *testing.B) { raw(dsRaw{be.raw(b)}, readsAll)(b) })
	}
}

// BenchmarkOpenFindAvailability: issue 9. Open a LevelDB repo holding
// 100,000 reservations over 100 availabilities and run the first
// FindAvailability, beside opening the same directory with go-ds-leveldb
// and reading the 100 availability records by key.
func BenchmarkOpenFindAvailability(b *testing.B) {
	const nAvail, nRes = 100, 100_000
	dir := b.TempDir()
	keys := buildBig(b, dir, nAvail, nRes)
	ctx := context.Background()
	b.Run("stowage", func(b *testing.B) {
		for b.Loop() {
			r, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(benchQuota))
			require.NoError(b, err)
			_, err = reservations.New(r).FindAvailability(ctx, findSlot(benchBlock, 1, u(1), u(1)))
			require.NoError(b, err)
			require.NoError(b, r.Close())
		}
	})
	b.Run("baseline", func(b *testing.B) {
		for b.Loop() {
			db, err := dsleveldb.NewDatastore(dir, nil)
			require.NoError(b, err)
			for _, k := range keys {
				_, err := db.Get(ctx, k)
				require.NoError(b, err)
			}
			require.NoError(b, db.Close())
		}
	})
}

// buildBig fills dir (without fsync, several callers so writes group) and
// returns the keys of the availability records.
func buildBig(b *testing.B, dir string, nAvail, nRes int) []datastore.Key {
	ctx := context.Background()
	r, err := repo.Open(ctx, dir, repo.WithNoSync(), repo.WithQuotaMaxBytes(benchQuota))
	require.NoError(b, err)
	s := reservations.New(r)
	keys := make([]datastore.Key, nAvail)
	ids := make([]reservations.AvailabilityID, nAvail)
	for i := range nAvail {
		a, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 1 << 40, Duration: 1 << 20, MinPrice: u(1), MaxCollateral: u(1)})
		require.NoError(b, err)
		ids[i], keys[i] = a.ID, reservations.KeyOf(a)
	}
	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < nRes; i += workers {
				if _, err := s.CreateReservation(ctx, ids[i%nAvail], anySlot(reqID(7), uint64(i), benchBlock)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(b, r.Close())
	// Compact fully, so that no open in the timed loops pays for the build.
	db, err := leveldb.OpenFile(dir, nil)
	require.NoError(b, err)
	require.NoError(b, db.CompactRange(util.Range{}))
	require.NoError(b, db.Close())
	return keys
}

// BenchmarkHeapPerReservation: what a live reservation costs in heap, on
// the in-memory map (which holds the records themselves) beside the same
// records put into the map directly. The difference is the Store's own.
func BenchmarkHeapPerReservation(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	b.Run("stowage", func(b *testing.B) {
		var per float64
		for b.Loop() {
			ds := dssync.MutexWrap(datastore.NewMapDatastore())
			r, err := repo.New(ctx, ds, repo.WithQuotaMaxBytes(benchQuota))
			require.NoError(b, err)
			s := reservations.New(r)
			a, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 1 << 40, Duration: 1 << 20, MinPrice: u(1), MaxCollateral: u(1)})
			require.NoError(b, err)
			_, err = s.FindAvailability(ctx, findSlot(1, 1, u(1), u(1))) // hints loaded
			require.NoError(b, err)
			before := heapAlloc()
			for i := range n {
				_, err := s.CreateReservation(ctx, a.ID, anySlot(reqID(7), uint64(i), benchBlock))
				require.NoError(b, err)
			}
			per = (float64(heapAlloc()) - float64(before)) / n
			runtime.KeepAlive(s)
			runtime.KeepAlive(ds)
		}
		b.ReportMetric(per, "B/reservation")
	})
	b.Run("baseline", func(b *testing.B) {
		var per float64
		for b.Loop() {
			ds := dssync.MutexWrap(datastore.NewMapDatastore())
			db := dsRaw{ds}
			rec := newRawRecords(b)
			aid := uuid.Must(uuid.NewV7()).String()
			require.NoError(b, db.write(ctx, []rawOp{{key: availKey(aid), value: rec.avail}}))
			before := heapAlloc()
			for i := range n {
				rid := uuid.Must(uuid.NewV7()).String()
				own := rec
				own.res = bytes.Clone(rec.res) // the map keeps the slice it is given; the Store encodes each record anew
				require.NoError(b, rawReserve(ctx, db, readsAll, own, aid, rid, slotKey(reqID(7).String(), i)))
			}
			per = (float64(heapAlloc()) - float64(before)) / n
			runtime.KeepAlive(ds)
		}
		b.ReportMetric(per, "B/reservation")
	})
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

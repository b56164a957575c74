package reservations_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/google/uuid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	leveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// Each benchmark runs the Store beside a raw baseline that performs the same
// datastore reads and batch writes, with pre-encoded values and none of the
// package's logic, on the same kind of datastore. The ratio of the two is the
// package's overhead.

type backend struct {
	name string
	open func(b *testing.B) datastore.Batching
}

var backends = []backend{
	{"mem", func(b *testing.B) datastore.Batching { return dssync.MutexWrap(datastore.NewMapDatastore()) }},
	{"leveldb-nosync", func(b *testing.B) datastore.Batching { return openLevelDB(b, true) }},
	{"leveldb-fsync", func(b *testing.B) datastore.Batching { return openLevelDB(b, false) }},
}

func openLevelDB(b *testing.B, noSync bool) datastore.Batching {
	db, err := leveldb.NewDatastore(b.TempDir(), &leveldb.Options{NoSync: noSync})
	require.NoError(b, err)
	b.Cleanup(func() { _ = db.Close() })
	return db
}

const huge = 1 << 60

func benchStore(b *testing.B, ds datastore.Batching) (*reservations.Store, reservations.Availability) {
	r, err := repo.New(b.Context(), ds, repo.WithQuotaMaxBytes(huge))
	require.NoError(b, err)
	s := reservations.New(r)
	a, err := s.CreateAvailability(b.Context(), huge/2, 1000, u(1), u(1))
	require.NoError(b, err)
	return s, a
}

// rawRecords holds realistic pre-encoded records for the baseline.
type rawRecords struct {
	availKey, resKey datastore.Key
	avail, res       []byte
}

func newRawRecords(b *testing.B) rawRecords {
	a := reservations.Availability{ID: reservations.AvailabilityID(uuid.Must(uuid.NewV7())), Size: huge / 2, Duration: 1000, MinPrice: u(1), MaxCollateral: u(1)}
	r := reservations.Reservation{ID: reservations.ReservationID(uuid.Must(uuid.NewV7())), AvailabilityID: a.ID, Size: 1 << 30, RequestID: reqID(1)}
	ab, err := a.MarshalJSON()
	require.NoError(b, err)
	rb, err := r.MarshalJSON()
	require.NoError(b, err)
	return rawRecords{availKey: a.Key(), resKey: r.Key(), avail: ab, res: rb}
}

func rawBatch(ctx context.Context, ds datastore.Batching, put []repo.Record, del []datastore.Key) error {
	batch, err := ds.Batch(ctx)
	if err != nil {
		return err
	}
	for _, p := range put {
		if err := batch.Put(ctx, p.Key, p.Value); err != nil {
			return err
		}
	}
	for _, k := range del {
		if err := batch.Delete(ctx, k); err != nil {
			return err
		}
	}
	return batch.Commit(ctx)
}

func counterBytes(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// rawCreate: read the availability, write the reservation and the shrunk
// availability in one batch.
func rawCreate(ctx context.Context, ds datastore.Batching, rec rawRecords, resKey datastore.Key) error {
	if _, err := ds.Get(ctx, rec.availKey); err != nil {
		return err
	}
	return rawBatch(ctx, ds, []repo.Record{{Key: resKey, Value: rec.res}, {Key: rec.availKey, Value: rec.avail}}, nil)
}

// rawRelease: read the reservation, write it and the Reserved counter.
func rawRelease(ctx context.Context, ds datastore.Batching, rec rawRecords, resKey datastore.Key, reserved uint64) error {
	if _, err := ds.Get(ctx, resKey); err != nil {
		return err
	}
	return rawBatch(ctx, ds, []repo.Record{{Key: resKey, Value: rec.res}, {Key: repo.ReservedKey, Value: counterBytes(reserved)}}, nil)
}

// rawDelete: read the reservation and the availability, delete one and write
// the other.
func rawDelete(ctx context.Context, ds datastore.Batching, rec rawRecords, resKey datastore.Key) error {
	if _, err := ds.Get(ctx, resKey); err != nil {
		return err
	}
	if _, err := ds.Get(ctx, rec.availKey); err != nil {
		return err
	}
	return rawBatch(ctx, ds, []repo.Record{{Key: rec.availKey, Value: rec.avail}}, []datastore.Key{resKey})
}

func resKeyN(rec rawRecords, i int) datastore.Key {
	return rec.availKey.ChildString(fmt.Sprintf("%036d", i))
}

// step is one timed iteration; it may stop the timer for untimed setup.
type step func(b *testing.B, i int) error

// benchPair runs an operation of the Store and its raw baseline on every
// backend, side by side.
func benchPair(b *testing.B,
	store func(b *testing.B, s *reservations.Store, a reservations.Availability) step,
	raw func(b *testing.B, ds datastore.Batching, rec rawRecords) step,
) {
	loop := func(b *testing.B, do step) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if err := do(b, i); err != nil {
				b.Fatal(err)
			}
		}
	}
	for _, be := range backends {
		b.Run(be.name+"/stowage", func(b *testing.B) {
			s, a := benchStore(b, be.open(b))
			loop(b, store(b, s, a))
		})
		b.Run(be.name+"/raw", func(b *testing.B) {
			ds := be.open(b)
			rec := newRawRecords(b)
			require.NoError(b, ds.Put(b.Context(), rec.availKey, rec.avail))
			require.NoError(b, ds.Put(b.Context(), rec.resKey, rec.res))
			loop(b, raw(b, ds, rec))
		})
	}
}

func BenchmarkCreateReservation(b *testing.B) {
	benchPair(b, func(_ *testing.B, s *reservations.Store, a reservations.Availability) step {
		return func(b *testing.B, i int) error {
			_, err := s.CreateReservation(b.Context(), a.ID, 1024, reqID(1), uint64(i))
			return err
		}
	}, func(_ *testing.B, ds datastore.Batching, rec rawRecords) step {
		return func(b *testing.B, i int) error {
			return rawCreate(b.Context(), ds, rec, resKeyN(rec, i))
		}
	})
}

func BenchmarkRelease(b *testing.B) {
	benchPair(b, func(b *testing.B, s *reservations.Store, a reservations.Availability) step {
		res, err := s.CreateReservation(b.Context(), a.ID, huge/4, reqID(1), 0)
		require.NoError(b, err)
		return func(b *testing.B, _ int) error {
			return s.Release(b.Context(), res.ID, a.ID, 1)
		}
	}, func(_ *testing.B, ds datastore.Batching, rec rawRecords) step {
		return func(b *testing.B, i int) error {
			return rawRelease(b.Context(), ds, rec, rec.resKey, uint64(i))
		}
	})
}

func BenchmarkDeleteReservation(b *testing.B) {
	benchPair(b, func(_ *testing.B, s *reservations.Store, a reservations.Availability) step {
		return func(b *testing.B, _ int) error {
			b.StopTimer()
			res, err := s.CreateReservation(b.Context(), a.ID, 1024, reqID(1), 0)
			b.StartTimer()
			if err != nil {
				return err
			}
			return s.DeleteReservation(b.Context(), res.ID, a.ID)
		}
	}, func(_ *testing.B, ds datastore.Batching, rec rawRecords) step {
		return func(b *testing.B, i int) error {
			b.StopTimer()
			key := resKeyN(rec, i)
			err := rawCreate(b.Context(), ds, rec, key)
			b.StartTimer()
			if err != nil {
				return err
			}
			return rawDelete(b.Context(), ds, rec, key)
		}
	})
}

// One sale's accounting: create a reservation, release its bytes in two
// writes, delete it.
func BenchmarkCycle(b *testing.B) {
	benchPair(b, func(_ *testing.B, s *reservations.Store, a reservations.Availability) step {
		return func(b *testing.B, _ int) error {
			return cycle(b.Context(), s, a.ID, 0)
		}
	}, func(_ *testing.B, ds datastore.Batching, rec rawRecords) step {
		return func(b *testing.B, i int) error {
			return rawCycle(b.Context(), ds, rec, resKeyN(rec, i), uint64(i))
		}
	})
}

func cycle(ctx context.Context, s *reservations.Store, id reservations.AvailabilityID, slot uint64) error {
	res, err := s.CreateReservation(ctx, id, 1024, reqID(1), slot)
	if err != nil {
		return err
	}
	if err := s.Release(ctx, res.ID, id, 512); err != nil {
		return err
	}
	if err := s.Release(ctx, res.ID, id, 256); err != nil {
		return err
	}
	return s.DeleteReservation(ctx, res.ID, id)
}

func rawCycle(ctx context.Context, ds datastore.Batching, rec rawRecords, key datastore.Key, n uint64) error {
	if err := rawCreate(ctx, ds, rec, key); err != nil {
		return err
	}
	if err := rawRelease(ctx, ds, rec, key, n); err != nil {
		return err
	}
	if err := rawRelease(ctx, ds, rec, key, n); err != nil {
		return err
	}
	return rawDelete(ctx, ds, rec, key)
}

// 32 concurrent callers, each running sale cycles on its own availability,
// on LevelDB with fsync, beside one caller doing the same. Compare ns/op:
// with perfect scaling the 32-caller figure would be 32 times smaller.
func BenchmarkCycleConcurrent(b *testing.B) {
	for _, callers := range []int{1, 32} {
		b.Run(fmt.Sprintf("leveldb-fsync/callers=%d", callers), func(b *testing.B) {
			ds := openLevelDB(b, false)
			r, err := repo.New(b.Context(), ds, repo.WithQuotaMaxBytes(huge))
			require.NoError(b, err)
			s := reservations.New(r)
			ids := make(chan reservations.AvailabilityID, callers)
			for range callers {
				a, err := s.CreateAvailability(b.Context(), 1<<40, 1000, u(1), u(1))
				require.NoError(b, err)
				ids <- a.ID
			}
			b.SetParallelism((callers + 1) / 2) // GOMAXPROCS is 2 on CI
			if callers == 1 {
				b.SetParallelism(1)
			}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				var id reservations.AvailabilityID
				select {
				case id = <-ids:
				default:
					a, err := s.CreateAvailability(context.Background(), 1<<40, 1000, u(1), u(1))
					if err != nil {
						b.Error(err)
						return
					}
					id = a.ID
				}
				for pb.Next() {
					if err := cycle(context.Background(), s, id, 0); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

package repo_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-datastore"
	dsleveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/storage"

	"github.com/stowage/stowage/internal/faultfs"
	"github.com/stowage/stowage/repo"
)

// runWriters runs b.N writes spread over n goroutines and reports writes
// per second and writes per fsync (when syncs is counted).
func runWriters(b *testing.B, n int, syncs *atomic.Int64, put func(key string) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	if syncs != nil {
		syncs.Store(0)
	}
	b.SetBytes(blockSize)
	b.ResetTimer()
	for w := range n {
		wg.Go(func() {
			for i := 0; next.Add(1) <= int64(b.N); i++ {
				if err := put("/w" + strconv.Itoa(w) + "/" + strconv.Itoa(i)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
	if syncs != nil {
		b.ReportMetric(float64(b.N)/float64(syncs.Load()), "writes/fsync")
	}
}

const blockSize = 64 << 10

// BenchmarkPutBlockFsync: issue 9. 64 KiB blocks with fsync from 1 and 16
// writers: repo.PutBlock on repo.Open beside go-ds-leveldb's Put with the
// same concurrency ("baseline"), and beside the same synced goleveldb Put on
// a counted storage ("goleveldb-put"), which shows how many Puts
// goleveldb's own write merging puts behind one fsync.
func BenchmarkPutBlockFsync(b *testing.B) {
	data := make([]byte, blockSize)
	for _, writers := range []int{1, 16} {
		name := fmt.Sprintf("writers=%d", writers)
		b.Run(name+"/stowage", func(b *testing.B) {
			var syncs atomic.Int64
			r, err := repo.Open(b.Context(), b.TempDir(), repo.WithQuotaMaxBytes(1<<60),
				repo.WithStorageForTest(func(s storage.Storage) storage.Storage { return faultfs.CountSyncs(s, &syncs) }))
			require.NoError(b, err)
			b.Cleanup(func() { _ = r.Close() })
			runWriters(b, writers, &syncs, func(key string) error {
				return r.PutBlock(context.Background(), datastore.RawKey(key), data)
			})
		})
		b.Run(name+"/baseline", func(b *testing.B) {
			db, err := dsleveldb.NewDatastore(b.TempDir(), nil)
			require.NoError(b, err)
			b.Cleanup(func() { _ = db.Close() })
			runWriters(b, writers, nil, func(key string) error {
				return db.Put(context.Background(), datastore.RawKey(key), data)
			})
		})
		b.Run(name+"/goleveldb-put", func(b *testing.B) {
			var syncs atomic.Int64
			fs, err := storage.OpenFile(b.TempDir(), false)
			require.NoError(b, err)
			db, err := leveldb.Open(faultfs.CountSyncs(fs, &syncs), nil)
			require.NoError(b, err)
			b.Cleanup(func() {
				_ = db.Close()
				_ = fs.Close()
			})
			wo := &opt.WriteOptions{Sync: true}
			runWriters(b, writers, &syncs, func(key string) error {
				return db.Put(datastore.RawKey(key).Bytes(), data, wo)
			})
		})
	}
}

// BenchmarkPutBlockNoSync: blocks of 1 KiB and 64 KiB from one writer
// without fsync, where the CPU shows: repo.PutBlock on repo.Open beside
// go-ds-leveldb's Put ("baseline"). PutBlock reads before it writes (the
// size of a block already under the key, for the quota), which a Put does
// not: with the bloom filter a new key costs the filter's check, plus the
// reads of table index and filter blocks the block cache does not hold.
func BenchmarkPutBlockNoSync(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10} {
		data := make([]byte, size)
		name := fmt.Sprintf("size=%d", size)
		run := func(b *testing.B, put func(key string) error) {
			b.SetBytes(int64(size))
			i := 0
			for b.Loop() {
				i++
				if err := put("/w/" + strconv.Itoa(i)); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.Run(name+"/stowage", func(b *testing.B) {
			r, err := repo.Open(b.Context(), b.TempDir(), repo.WithQuotaMaxBytes(1<<60), repo.WithNoSync())
			require.NoError(b, err)
			b.Cleanup(func() { _ = r.Close() })
			run(b, func(key string) error { return r.PutBlock(context.Background(), datastore.RawKey(key), data) })
		})
		b.Run(name+"/baseline", func(b *testing.B) {
			db, err := dsleveldb.NewDatastore(b.TempDir(), &dsleveldb.Options{NoSync: true})
			require.NoError(b, err)
			b.Cleanup(func() { _ = db.Close() })
			run(b, func(key string) error { return db.Put(context.Background(), datastore.RawKey(key), data) })
		})
	}
}

package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb/storage"

	"github.com/stowage/stowage/internal/ldb"
)

var errInjected = errors.New("injected failure")

// gate holds a write of the store under test while armed: the caller
// leading the group stays inside it until release is closed. writes counts
// the writes that reached the store.
type gate struct {
	armed   atomic.Bool
	entered chan struct{}
	release chan struct{}
	writes  atomic.Int32
	fail    atomic.Bool // gateDS only: the commits fail
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) pass() {
	g.writes.Add(1)
	if g.armed.CompareAndSwap(true, false) {
		close(g.entered)
		<-g.release
	}
}

// gateDS gates the commit of every batch of a datastore.
type gateDS struct {
	datastore.Batching
	g *gate
}

func (d gateDS) Batch(ctx context.Context) (datastore.Batch, error) {
	b, err := d.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &gateBatch{Batch: b, g: d.g}, nil
}

type gateBatch struct {
	datastore.Batch
	g *gate
}

func (b *gateBatch) Commit(ctx context.Context) error {
	b.g.pass()
	if b.g.fail.Load() {
		return errInjected
	}
	return b.Batch.Commit(ctx)
}

// gateStorage gates the fsync of goleveldb's journal: the embedded
// database, whose groups the engine writes as one prebuilt batch.
type gateStorage struct {
	storage.Storage
	g *gate
}

func (s gateStorage) Create(fd storage.FileDesc) (storage.Writer, error) {
	w, err := s.Storage.Create(fd)
	if err != nil || fd.Type != storage.TypeJournal {
		return w, err
	}
	return gateWriter{Writer: w, g: s.g}, nil
}

type gateWriter struct {
	storage.Writer
	g *gate
}

func (w gateWriter) Sync() error {
	w.g.pass()
	return w.Writer.Sync()
}

// gatedStores are the stores the write path is tested on, each with a
// gate on its writes: any datastore (a map; LevelDB behind a wrapper) and
// the embedded LevelDB, written through ldb.DS.Write.
func gatedStores(t *testing.T) map[string]func(*gate) datastore.Batching {
	return map[string]func(*gate) datastore.Batching{
		"map": func(g *gate) datastore.Batching {
			return gateDS{dssync.MutexWrap(datastore.NewMapDatastore()), g}
		},
		"leveldb-wrapped": func(g *gate) datastore.Batching {
			db, err := ldb.Open(t.TempDir(), ldb.Options{NoSync: true})
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			return gateDS{db, g}
		},
		"leveldb": func(g *gate) datastore.Batching {
			db, err := ldb.Open(t.TempDir(), ldb.Options{WrapStorage: func(s storage.Storage) storage.Storage {
				return gateStorage{s, g}
			}})
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			return db
		},
	}
}

// Two changes of one key staged behind a group being written form the next
// group together; the later one wins, as if they ran one by one.
func TestGroup_PutAndDeleteOfOneKey(t *testing.T) {
	key := datastore.NewKey("/k")
	put := func(tx *Tx) error { return tx.Put(key, []byte("v")) }
	del := func(tx *Tx) error { return tx.Delete(key) }
	for name, mk := range gatedStores(t) {
		for _, tc := range []struct {
			name        string
			first, then func(*Tx) error
			present     bool
		}{
			{"put then delete", put, del, false},
			{"delete then put", del, put, true},
		} {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				g := newGate()
				ds := mk(g)
				e, err := New(t.Context(), Config{Max: 100, Meta: ds})
				require.NoError(t, err)
				t.Cleanup(func() { _ = e.Close() })
				if !tc.present {
					require.NoError(t, e.Update(t.Context(), put), "the key exists before")
				}
				base := g.writes.Load()

				g.armed.Store(true)
				var wg sync.WaitGroup
				errs := make([]error, 3)
				wg.Go(func() {
					errs[0] = e.Update(t.Context(), func(tx *Tx) error { return tx.Put(datastore.NewKey("/lead"), nil) })
				})
				<-g.entered // the lead is writing its group
				for i, fn := range []func(*Tx) error{tc.first, tc.then} {
					staged := make(chan struct{})
					wg.Go(func() {
						errs[i+1] = e.Update(t.Context(), func(tx *Tx) error {
							tx.AfterStage(func() { close(staged) })
							return fn(tx)
						})
					})
					<-staged
				}
				close(g.release)
				wg.Wait()
				for _, err := range errs {
					require.NoError(t, err)
				}
				assert.Equal(t, base+2, g.writes.Load(), "the two changes were written as one group")

				ok, err := ds.Has(t.Context(), key)
				require.NoError(t, err)
				assert.Equal(t, tc.present, ok)
				fresh, err := New(t.Context(), Config{Max: 100, Meta: ds})
				require.NoError(t, err)
				require.NoError(t, fresh.View(t.Context(), func(tx *Tx) error {
					ok, err := tx.Has(key)
					require.NoError(t, err)
					assert.Equal(t, tc.present, ok)
					return nil
				}))
			})
		}
	}
}

// discardDS records the batches it hands out and how they end.
type discardDS struct {
	datastore.Batching
	failPut, failCommit atomic.Bool
	batches, discards   atomic.Int32
	cancel              bool // batches have Cancel() error instead of Discard(ctx)
}

func (d *discardDS) Batch(ctx context.Context) (datastore.Batch, error) {
	b, err := d.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	d.batches.Add(1)
	rb := &recBatch{Batch: b, d: d}
	if d.cancel {
		return &cancelBatch{rb}, nil
	}
	return &discardingBatch{rb}, nil
}

type recBatch struct {
	datastore.Batch
	d *discardDS
}

func (b *recBatch) Put(ctx context.Context, k datastore.Key, v []byte) error {
	if b.d.failPut.Load() {
		return errInjected
	}
	return b.Batch.Put(ctx, k, v)
}

func (b *recBatch) Commit(ctx context.Context) error {
	if b.d.failCommit.Load() {
		return errInjected
	}
	return b.Batch.Commit(ctx)
}

type discardingBatch struct{ *recBatch }

func (b *discardingBatch) Discard(context.Context) { b.d.discards.Add(1) }

type cancelBatch struct{ *recBatch }

func (b *cancelBatch) Cancel() error { b.d.discards.Add(1); return nil }

func TestAbandonedBatch_IsDiscarded(t *testing.T) {
	for _, cancel := range []bool{false, true} {
		name := map[bool]string{false: "Discard", true: "Cancel"}[cancel]
		t.Run(name, func(t *testing.T) {
			d := &discardDS{Batching: dssync.MutexWrap(datastore.NewMapDatastore()), cancel: cancel}
			e, err := New(t.Context(), Config{Max: 100, Meta: d})
			require.NoError(t, err)
			reserve := func(n uint64) error {
				return e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(n) })
			}

			// A refused change never makes a batch.
			require.ErrorIs(t, reserve(101), ErrQuotaNotEnough)
			assert.Zero(t, d.batches.Load())

			// A batch that fails while staged is discarded; the outcome is
			// known, so writes go on.
			d.failPut.Store(true)
			require.ErrorIs(t, reserve(10), errInjected)
			assert.NotErrorIs(t, reserve(10), ErrWriteFailed)
			assert.Equal(t, int32(2), d.discards.Load())
			d.failPut.Store(false)
			require.NoError(t, reserve(10))
			assert.Equal(t, int32(2), d.discards.Load(), "a committed batch is not discarded")

			// A batch whose commit fails is discarded too.
			d.failCommit.Store(true)
			require.ErrorIs(t, reserve(10), ErrWriteFailed)
			assert.Equal(t, int32(3), d.discards.Load())
			assert.Equal(t, d.batches.Load(), d.discards.Load()+1)
		})
	}
}

// Tx.ScanAfter merges the change's own writes into the store's records, in
// key order, from after on; fn's error ends it there.
func TestTx_ScanAfter(t *testing.T) {
	for name, mk := range gatedStores(t) {
		t.Run(name, func(t *testing.T) {
			e, err := New(t.Context(), Config{Max: 100, Meta: mk(newGate())})
			require.NoError(t, err)
			t.Cleanup(func() { _ = e.Close() })
			require.NoError(t, e.Update(t.Context(), func(tx *Tx) error {
				for _, k := range []string{"/p/1", "/p/3", "/p/5", "/q/0"} {
					if err := tx.Put(datastore.NewKey(k), []byte(k)); err != nil {
						return err
					}
				}
				return nil
			}))
			errStop := errors.New("stop")
			require.NoError(t, e.Update(t.Context(), func(tx *Tx) error {
				require.NoError(t, tx.Put(datastore.NewKey("/p/2"), []byte("/p/2")))
				require.NoError(t, tx.Delete(datastore.NewKey("/p/3")))
				require.NoError(t, tx.Put(datastore.NewKey("/p/6"), []byte("/p/6")))
				scan := func(after string, limit int) []string {
					var got []string
					err := tx.ScanAfter(datastore.NewKey("/p"), after, false, func(k string, v []byte) error {
						if len(got) == limit {
							return errStop
						}
						assert.Equal(t, k, string(v))
						got = append(got, k)
						return nil
					})
					if limit < 10 {
						assert.ErrorIs(t, err, errStop)
					} else {
						assert.NoError(t, err)
					}
					return got
				}
				assert.Equal(t, []string{"/p/1", "/p/2", "/p/5", "/p/6"}, scan("", 10))
				assert.Equal(t, []string{"/p/2", "/p/5", "/p/6"}, scan("/p/1", 10))
				assert.Equal(t, []string{"/p/5", "/p/6"}, scan("/p/2", 10))
				assert.Equal(t, []string{"/p/6"}, scan("/p/5", 10))
				assert.Equal(t, []string{"/p/2"}, scan("/p/1", 1))
				return nil
			}))
		})
	}
}

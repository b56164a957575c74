package engine

import (
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb/storage"

	"github.com/stowage/stowage/internal/ldb"
)

// Many callers read, change and write one record at once: whoever holds
// the staging lock stages the others' changes, and none is lost or left
// waiting (a stranded change would hang the test). Once every call has
// returned the engine is idle and the overlay holds nothing.
func TestConcurrentUpdates_NoneLostNoneStranded(t *testing.T) {
	const callers, each = 8, 150
	key := datastore.NewKey("/counter")
	for name, mk := range gatedStores(t) {
		t.Run(name, func(t *testing.T) {
			ds := mk(newGate())
			e, err := New(t.Context(), Config{Max: 1 << 20, Meta: ds})
			require.NoError(t, err)
			t.Cleanup(func() { _ = e.Close() })
			var wg sync.WaitGroup
			for c := range callers {
				wg.Go(func() {
					for i := range each {
						err := e.Update(t.Context(), func(tx *Tx) error {
							n := 0
							switch b, err := tx.Get(key); {
							case err == nil:
								if n, err = strconv.Atoi(string(b)); err != nil {
									return err
								}
							case !errors.Is(err, datastore.ErrNotFound):
								return err
							}
							if err := tx.Reserve(1); err != nil {
								return err
							}
							own := datastore.NewKey("/own/" + strconv.Itoa(c) + "/" + strconv.Itoa(i))
							if err := tx.Put(own, nil); err != nil {
								return err
							}
							return tx.Put(key, []byte(strconv.Itoa(n+1)))
						})
						if !assert.NoError(t, err) {
							return
						}
					}
				})
			}
			wg.Wait()

			b, err := ds.Get(t.Context(), key)
			require.NoError(t, err)
			assert.Equal(t, strconv.Itoa(callers*each), string(b))
			assert.Equal(t, Counters{Reserved: callers * each}, e.Counters())
			cs, err := readCounters(t.Context(), ds)
			require.NoError(t, err)
			assert.Equal(t, Counters{Reserved: callers * each}, cs)
			e.stageMu.Lock()
			defer e.stageMu.Unlock()
			assert.Empty(t, e.overlay.m, "an idle engine keeps nothing in the overlay")
			assert.Empty(t, e.overlay.keys)
			assert.Empty(t, e.overlay.retired)
		})
	}
}

// A scan in a change sees the durable records and the changes staged
// before it, in key order, and nothing outside its prefix.
func TestScan_MergesStagedChanges(t *testing.T) {
	for name, mk := range gatedStores(t) {
		t.Run(name, func(t *testing.T) {
			g := newGate()
			ds := mk(g)
			e, err := New(t.Context(), Config{Max: 100, Meta: ds})
			require.NoError(t, err)
			t.Cleanup(func() { _ = e.Close() })
			put := func(keys ...string) func(*Tx) error {
				return func(tx *Tx) error {
					for _, k := range keys {
						if err := tx.Put(datastore.NewKey(k), []byte(k)); err != nil {
							return err
						}
					}
					return nil
				}
			}
			require.NoError(t, e.Update(t.Context(), put("/p/a", "/p/b", "/p/d", "/pp/x", "/q/y")))

			g.armed.Store(true)
			var wg sync.WaitGroup
			wg.Go(func() { assert.NoError(t, e.Update(t.Context(), put("/lead"))) })
			<-g.entered // the lead is writing its group; what follows is queued
			staged := make(chan struct{})
			wg.Go(func() {
				assert.NoError(t, e.Update(t.Context(), func(tx *Tx) error {
					tx.AfterStage(func() { close(staged) })
					if err := tx.Delete(datastore.NewKey("/p/a")); err != nil {
						return err
					}
					return put("/p/c", "/p/e/f")(tx)
				}))
			})
			<-staged
			var got []string
			scanned := make(chan struct{})
			wg.Go(func() {
				assert.NoError(t, e.Update(t.Context(), func(tx *Tx) error {
					tx.AfterStage(func() { close(scanned) })
					if err := tx.Put(datastore.NewKey("/p/0"), []byte("/p/0")); err != nil {
						return err
					}
					return tx.Scan(datastore.NewKey("/p"), false, func(k string, v []byte) error {
						assert.Equal(t, k, string(v))
						got = append(got, k)
						return nil
					})
				}))
			})
			<-scanned // staged behind the queued change, before any is durable
			close(g.release)
			wg.Wait()
			assert.Equal(t, []string{"/p/0", "/p/b", "/p/c", "/p/d", "/p/e/f"}, got)
		})
	}
}

// A change submitted while the combiner holds the staging lock, after it
// found nothing more to stage, is staged by the combiner once it lets go
// of the lock: it is not left waiting for the next caller.
func TestCombine_ChangeSubmittedAsTheLockIsReleased(t *testing.T) {
	e, err := New(t.Context(), Config{Max: 100, Meta: dssync.MutexWrap(datastore.NewMapDatastore())})
	require.NoError(t, err)
	busy := make(chan struct{})
	e.testBusy = func() { close(busy) }
	late := make(chan error, 1)
	var once sync.Once
	e.testDrained = func() {
		once.Do(func() {
			go func() { late <- e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(2) }) }()
			<-busy // the late change is submitted and found the lock held
		})
	}
	// A change that writes nothing: no group follows whose end would
	// stage the late change.
	require.NoError(t, e.Update(t.Context(), func(tx *Tx) error { return nil }))
	select {
	case err := <-late:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		// Not closed: Close would wait for the stranded call.
		t.Fatal("the change submitted as the lock was released was never staged")
	}
	assert.Equal(t, Counters{Reserved: 2}, e.Counters())
	require.NoError(t, e.Close())
}

// A change keeps one write per key, the last, whether it has few ops
// (looked through) or many (indexed), and reads its own writes.
func TestTx_OneWritePerKey(t *testing.T) {
	for _, n := range []int{5, scanOps, 3 * scanOps} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			ds := dssync.MutexWrap(datastore.NewMapDatastore())
			e, err := New(t.Context(), Config{Max: 100, Meta: ds})
			require.NoError(t, err)
			t.Cleanup(func() { _ = e.Close() })
			key := func(i int) datastore.Key { return datastore.NewKey("/k/" + strconv.Itoa(i)) }
			require.NoError(t, e.Update(t.Context(), func(tx *Tx) error {
				for i := range n {
					require.NoError(t, tx.Put(key(i), []byte("first")))
				}
				require.NoError(t, tx.Put(key(n-1), []byte("last")))
				require.NoError(t, tx.Delete(key(0)))
				require.Len(t, tx.ops, n)
				v, err := tx.Get(key(n - 1))
				require.NoError(t, err)
				assert.Equal(t, "last", string(v))
				_, err = tx.Get(key(0))
				assert.ErrorIs(t, err, datastore.ErrNotFound)
				return nil
			}))
			ok, err := ds.Has(t.Context(), key(0))
			require.NoError(t, err)
			assert.False(t, ok)
			v, err := ds.Get(t.Context(), key(n-1))
			require.NoError(t, err)
			assert.Equal(t, "last", string(v))
		})
	}
}

// syncHolds holds chosen fsyncs of goleveldb's journal: the i-th (from 1)
// records the goroutine that makes it, signals entered[i] and waits for
// released[i].
type syncHolds struct {
	storage.Storage
	n                 atomic.Int32
	entered, released map[int32]chan struct{}
	by                map[int32]string
}

// goroutine names the calling goroutine ("goroutine 42"), from its stack.
func goroutine() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := strings.Cut(string(buf), " [")
	return id
}

func (s *syncHolds) Create(fd storage.FileDesc) (storage.Writer, error) {
	w, err := s.Storage.Create(fd)
	if err != nil || fd.Type != storage.TypeJournal {
		return w, err
	}
	return holdWriter{w, s}, nil
}

type holdWriter struct {
	storage.Writer
	s *syncHolds
}

func (w holdWriter) Sync() error {
	i := w.s.n.Add(1)
	if c, ok := w.s.entered[i]; ok {
		w.s.by[i] = goroutine()
		close(c)
		<-w.s.released[i]
	}
	return w.Writer.Sync()
}

// With keepLead or more changes queued behind its group, the leader writes
// the next group itself; with fewer, it hands the lead on to a queued
// change, whose caller writes it.
func TestLeader_KeepsTheLeadOnlyWithManyQueued(t *testing.T) {
	for _, queued := range []int{keepLead - 1, keepLead + 2} {
		t.Run(strconv.Itoa(queued), func(t *testing.T) {
			h := &syncHolds{
				entered:  map[int32]chan struct{}{2: make(chan struct{}), 3: make(chan struct{})},
				released: map[int32]chan struct{}{2: make(chan struct{}), 3: make(chan struct{})},
				by:       map[int32]string{},
			}
			db, err := ldb.Open(t.TempDir(), ldb.Options{WrapStorage: func(s storage.Storage) storage.Storage {
				h.Storage = s
				return h
			}})
			require.NoError(t, err)
			t.Cleanup(func() { _ = db.Close() })
			e, err := New(t.Context(), Config{Max: 1 << 20, Meta: db})
			require.NoError(t, err)
			put := func(k string) func(*Tx) error {
				return func(tx *Tx) error { return tx.Put(datastore.NewKey(k), nil) }
			}
			require.NoError(t, e.Update(t.Context(), put("/first"))) // sync 1
			base := h.n.Load()
			require.Equal(t, int32(1), base)

			leader := make(chan error, 1)
			go func() { leader <- e.Update(t.Context(), put("/lead")) }()
			<-h.entered[2] // the leader is writing its group
			var wg sync.WaitGroup
			for i := range queued {
				staged := make(chan struct{})
				wg.Go(func() {
					assert.NoError(t, e.Update(t.Context(), func(tx *Tx) error {
						tx.AfterStage(func() { close(staged) })
						return put("/q/" + strconv.Itoa(i))(tx)
					}))
				})
				<-staged
			}
			close(h.released[2])
			<-h.entered[3] // the queued group is being written
			close(h.released[3])
			require.NoError(t, <-leader)
			wg.Wait()
			if queued >= keepLead {
				assert.Equal(t, h.by[2], h.by[3], "the leader wrote the next group")
			} else {
				assert.NotEqual(t, h.by[2], h.by[3], "the lead moved on")
			}
			assert.Equal(t, int32(3), h.n.Load(), "one write per group")
			require.NoError(t, e.Close())
		})
	}
}

// A change that writes nothing may have read writes not yet durable (a
// record another call is deleting, say): it succeeds only once they are,
// and fails with them. Otherwise "already deleted" could be acknowledged
// for a delete that a crash or a failed write then undoes.
func TestReadOnlyChange_WaitsForWhatItMayHaveRead(t *testing.T) {
	key := datastore.NewKey("/k")
	for _, fail := range []bool{false, true} {
		t.Run(map[bool]string{false: "durable", true: "failed"}[fail], func(t *testing.T) {
			g := newGate()
			e, err := New(t.Context(), Config{Max: 100, Meta: gateDS{dssync.MutexWrap(datastore.NewMapDatastore()), g}})
			require.NoError(t, err)
			t.Cleanup(func() { _ = e.Close() })
			require.NoError(t, e.Update(t.Context(), func(tx *Tx) error { return tx.Put(key, []byte("v")) }))

			g.armed.Store(true)
			deleted := make(chan error, 1)
			go func() { deleted <- e.Update(t.Context(), func(tx *Tx) error { return tx.Delete(key) }) }()
			<-g.entered // the delete is being written
			staged := make(chan struct{})
			gone := make(chan error, 1)
			go func() {
				gone <- e.Update(t.Context(), func(tx *Tx) error {
					tx.AfterStage(func() { close(staged) })
					if _, err := tx.Get(key); !errors.Is(err, datastore.ErrNotFound) {
						return fmt.Errorf("the pending delete is not seen: %v", err)
					}
					return nil // nothing to write: it is gone already
				})
			}()
			<-staged
			g.fail.Store(fail)
			close(g.release)
			if fail {
				require.ErrorIs(t, <-deleted, errInjected)
				err := <-gone
				require.ErrorIs(t, err, errInjected, "what it read was never written")
			} else {
				require.NoError(t, <-deleted)
				require.NoError(t, <-gone)
			}
		})
	}
}

package repo_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/failstore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/internal/faultfs"
	"github.com/stowage/stowage/internal/owner"
	"github.com/stowage/stowage/repo"
)

var (
	saleKey  = datastore.NewKey("/host/sales/r1")
	blockKey = datastore.NewKey("/r1/0")
)

// saleChange is a host's change: it reserves bytes for a sale, stores one
// of its blocks and records the sale's state, all in one Update.
func saleChange(tx *repo.Tx) error {
	if err := tx.Reserve(64); err != nil {
		return err
	}
	if err := tx.PutBlock(blockKey, make([]byte, 32)); err != nil {
		return err
	}
	return tx.Put(saleKey, []byte("filling"))
}

// saleState is what a repo holds of saleChange: all of it or none.
func saleState(t *testing.T, r *repo.Repo) (all, none bool) {
	t.Helper()
	var rec, blk bool
	var q repo.Quota
	require.NoError(t, r.View(t.Context(), func(tx *repo.Tx) error {
		var err error
		if rec, err = tx.Has(saleKey); err != nil {
			return err
		}
		q = tx.Quota()
		return nil
	}))
	blk, err := r.HasBlock(t.Context(), blockKey)
	require.NoError(t, err)
	all = rec && blk && q.Used == 32 && q.Reserved == 64
	none = !rec && !blk && q.Used == 0 && q.Reserved == 0
	return all, none
}

// TestUpdate_FailureAtEveryWrite fails each write of an Update in turn (a
// Put or Delete of the datastore or of a batch, a batch's Commit) and
// checks that a fresh repo on the datastore holds all of the change or none
// of it, all when Update succeeded, and that the failed repo's counters
// are the fresh repo's.
func TestUpdate_FailureAtEveryWrite(t *testing.T) {
	run := func(at int64) (writes int64) {
		base := newMem()
		var n atomic.Int64
		fs := failstore.NewFailstore(base, func(op string) error {
			switch op {
			case "put", "delete", "batch-put", "batch-delete", "batch-commit":
				if n.Add(1) == at {
					return errInjected
				}
			}
			return nil
		})
		r, err := repo.New(t.Context(), fs, repo.WithQuotaMaxBytes(1000))
		require.NoError(t, err)
		defer func() { require.NoError(t, r.Close()) }()
		n.Store(0)
		err = r.Update(t.Context(), saleChange)
		writes = n.Load()
		if at == 0 {
			require.NoError(t, err)
		} else {
			require.ErrorIs(t, err, errInjected, "failure at write %d", at)
		}
		fresh, err := repo.New(t.Context(), base, repo.WithQuotaMaxBytes(1000))
		require.NoError(t, err)
		all, none := saleState(t, fresh)
		if at == 0 {
			assert.True(t, all, "no failure: the whole change")
		} else {
			assert.True(t, all || none, "failure at write %d: all or nothing", at)
		}
		assert.Equal(t, fresh.Quota(), r.Quota(), "failure at write %d: memory and datastore", at)
		require.NoError(t, fresh.Verify(t.Context()))
		return writes
	}
	n := run(0)
	require.Greater(t, n, int64(2), "the change writes the record, the block and the counters")
	for at := int64(1); at <= n; at++ {
		run(at)
	}
}

func TestUpdate_AbortsOnError(t *testing.T) {
	r, _ := newRepo(t, 1000)
	errHost := errors.New("host says no")
	err := r.Update(t.Context(), func(tx *repo.Tx) error {
		if err := saleChange(tx); err != nil {
			return err
		}
		return errHost
	})
	require.ErrorIs(t, err, errHost)
	_, none := saleState(t, r)
	assert.True(t, none, "an aborted change writes nothing")
	assert.Equal(t, repo.Quota{Max: 1000}, r.Quota())
}

func TestUpdate_PanicIsAnError(t *testing.T) {
	for _, name := range []string{"update", "view"} {
		t.Run(name, func(t *testing.T) {
			for _, open := range []func(t *testing.T) *repo.Repo{
				func(t *testing.T) *repo.Repo { r, _ := newRepo(t, 1000); return r },
				func(t *testing.T) *repo.Repo {
					r, err := repo.Open(t.Context(), t.TempDir(), repo.WithNoSync(), repo.WithQuotaMaxBytes(1000))
					require.NoError(t, err)
					t.Cleanup(func() { _ = r.Close() })
					return r
				},
			} {
				r := open(t)
				run := r.Update
				if name == "view" {
					run = r.View
				}
				err := run(t.Context(), func(tx *repo.Tx) error {
					if name == "update" {
						require.NoError(t, saleChange(tx))
					}
					panic("host bug")
				})
				require.ErrorIs(t, err, repo.ErrPanic)
				assert.Contains(t, err.Error(), "host bug")
				_, none := saleState(t, r)
				assert.True(t, none, "a change that panicked writes nothing")
				require.NoError(t, r.Update(t.Context(), saleChange), "the repo goes on")
				all, _ := saleState(t, r)
				assert.True(t, all)
			}
		})
	}
}

func TestTx_ReadsItsOwnWrites(t *testing.T) {
	r, _ := newRepo(t, 1000)
	a, b, c := datastore.NewKey("/host/a"), datastore.NewKey("/host/b"), datastore.NewKey("/host/c")
	require.NoError(t, r.Update(t.Context(), func(tx *repo.Tx) error {
		require.NoError(t, tx.Put(a, []byte("1")))
		require.NoError(t, tx.Put(b, []byte("2")))
		return nil
	}))
	require.NoError(t, r.Update(t.Context(), func(tx *repo.Tx) error {
		require.NoError(t, tx.Put(c, []byte("3")))
		require.NoError(t, tx.Delete(a))
		require.NoError(t, tx.Put(b, []byte("two")))
		v, err := tx.Get(b)
		require.NoError(t, err)
		assert.Equal(t, "two", string(v))
		_, err = tx.Get(a)
		assert.ErrorIs(t, err, datastore.ErrNotFound)
		ok, err := tx.Has(c)
		require.NoError(t, err)
		assert.True(t, ok)
		var got []string
		require.NoError(t, tx.Scan(datastore.NewKey("/host"), func(k datastore.Key, v []byte) error {
			got = append(got, k.String()+"="+string(v))
			return nil
		}))
		assert.Equal(t, []string{"/host/b=two", "/host/c=3"}, got)
		require.NoError(t, tx.Reserve(10))
		require.NoError(t, tx.PutBlock(blockKey, []byte("abc")))
		assert.Equal(t, repo.Quota{Max: 1000, Used: 3, Reserved: 10}, tx.Quota())
		require.NoError(t, tx.DeleteBlock(blockKey))
		assert.Equal(t, repo.Quota{Max: 1000, Reserved: 10}, tx.Quota())
		return nil
	}))
	errStop := errors.New("stop")
	require.NoError(t, r.View(t.Context(), func(tx *repo.Tx) error {
		n := 0
		err := tx.Scan(datastore.NewKey("/host"), func(datastore.Key, []byte) error { n++; return errStop })
		assert.ErrorIs(t, err, errStop, "fn's error ends the scan")
		assert.Equal(t, 1, n)
		return nil
	}))
}

func TestTx_RefusesTheSDKsKeys(t *testing.T) {
	r, _ := newRepo(t, 1000)
	for _, k := range []datastore.Key{
		datastore.NewKey("/meta"), datastore.NewKey("/meta/quota/used"), datastore.NewKey("/meta/quota/reserved"),
		datastore.NewKey("/meta/sales/layout"), datastore.NewKey("/meta/sales/reservations/x"),
		datastore.NewKey("/blocks"), datastore.NewKey("/blocks/r1/0"),
	} {
		err := r.Update(t.Context(), func(tx *repo.Tx) error { return tx.Put(k, []byte{0, 0, 0, 0, 0, 0, 0, 9}) })
		assert.ErrorIs(t, err, repo.ErrReservedKey, "put %s", k)
		err = r.Update(t.Context(), func(tx *repo.Tx) error { return tx.Delete(k) })
		assert.ErrorIs(t, err, repo.ErrReservedKey, "delete %s", k)
	}
	for _, k := range []datastore.Key{{}, datastore.RawKey("/"), datastore.RawKey("/a//b"), datastore.RawKey("/a/../meta/x")} {
		err := r.Update(t.Context(), func(tx *repo.Tx) error { return tx.Put(k, nil) })
		assert.ErrorIs(t, err, repo.ErrInvalidKey, "put %q", k.String())
	}
	// Keys beside the SDK's are the host's.
	require.NoError(t, r.Update(t.Context(), func(tx *repo.Tx) error {
		return tx.Put(datastore.NewKey("/metadata/x"), []byte("mine"))
	}))
	// A user has no capability: the zero Token grants nothing.
	require.NoError(t, r.Update(t.Context(), func(tx *repo.Tx) error {
		_, err := tx.Owner(owner.Token{})
		assert.ErrorIs(t, err, repo.ErrReservedKey)
		return tx.Put(datastore.NewKey("/host/x"), nil)
	}))
	assert.Nil(t, r.Owner(owner.Token{}))
	_, err := repo.Open(t.Context(), t.TempDir(), repo.WithOwnerStorage(owner.Token{}, nil))
	assert.ErrorIs(t, err, repo.ErrInvalidOption)
	// An owner writes its own keys and no other SDK key.
	require.NoError(t, r.Update(t.Context(), func(tx *repo.Tx) error {
		o, err := tx.Owner(owner.Reservations)
		require.NoError(t, err)
		require.NoError(t, o.Put(datastore.NewKey("/meta/sales/x"), []byte("ok")))
		assert.ErrorIs(t, o.Put(datastore.NewKey("/meta/quota/used"), nil), repo.ErrReservedKey)
		assert.ErrorIs(t, o.Delete(datastore.NewKey("/blocks/x")), repo.ErrReservedKey)
		return nil
	}))
	assert.Equal(t, repo.Quota{Max: 1000}, r.Quota(), "no counter was written")
	require.NoError(t, r.Verify(t.Context()))
}

func TestView_RefusesWrites(t *testing.T) {
	r, _ := newRepo(t, 1000)
	require.NoError(t, r.View(t.Context(), func(tx *repo.Tx) error {
		assert.ErrorIs(t, tx.Put(saleKey, nil), repo.ErrReadOnly)
		assert.ErrorIs(t, tx.Delete(saleKey), repo.ErrReadOnly)
		assert.ErrorIs(t, tx.Reserve(1), repo.ErrReadOnly)
		assert.ErrorIs(t, tx.Release(1), repo.ErrReadOnly)
		assert.ErrorIs(t, tx.PutBlock(blockKey, nil), repo.ErrReadOnly)
		assert.ErrorIs(t, tx.DeleteBlock(blockKey), repo.ErrReadOnly)
		return nil
	}))
	_, none := saleState(t, r)
	assert.True(t, none)
}

// TestView_NeverSeesHalfAChange runs 32 writers, each of whose Updates
// reserves bytes, stores a block and records its running totals, against
// readers whose Views check that the records add up to the counters.
func TestView_NeverSeesHalfAChange(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) *repo.Repo
	}{
		{"leveldb", func(t *testing.T) *repo.Repo {
			r, err := repo.Open(t.Context(), t.TempDir(), repo.WithNoSync())
			require.NoError(t, err)
			t.Cleanup(func() { _ = r.Close() })
			return r
		}},
		{"memory", func(t *testing.T) *repo.Repo { r, _ := newRepo(t, repo.DefaultQuotaMaxBytes); return r }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.open(t)
			const writers, rounds = 32, 20
			prefix := datastore.NewKey("/host/acct")
			ctx := t.Context()
			var wg sync.WaitGroup
			done := make(chan struct{})
			for w := range writers {
				wg.Go(func() {
					key := prefix.ChildString(fmt.Sprint(w))
					for i := range rounds {
						err := r.Update(ctx, func(tx *repo.Tx) error {
							var reserved, used uint64
							if v, err := tx.Get(key); err == nil {
								reserved, used = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
							} else if !errors.Is(err, datastore.ErrNotFound) {
								return err
							}
							n := uint64(w + 1)
							if err := tx.Reserve(n); err != nil {
								return err
							}
							if err := tx.PutBlock(datastore.NewKey(fmt.Sprintf("/%d/%d", w, i)), make([]byte, n)); err != nil {
								return err
							}
							return tx.Put(key, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, reserved+n), used+n))
						})
						if !assert.NoError(t, err) {
							return
						}
					}
				})
			}
			views := 0
			var vwg sync.WaitGroup
			vwg.Go(func() {
				for {
					err := r.View(ctx, func(tx *repo.Tx) error {
						var reserved, used uint64
						err := tx.Scan(prefix, func(_ datastore.Key, v []byte) error {
							reserved += binary.BigEndian.Uint64(v)
							used += binary.BigEndian.Uint64(v[8:])
							return nil
						})
						if err != nil {
							return err
						}
						q := tx.Quota()
						assert.Equal(t, reserved, q.Reserved, "the records and Reserved of one state")
						assert.Equal(t, used, q.Used, "the records and Used of one state")
						return nil
					})
					if !assert.NoError(t, err) {
						return
					}
					views++
					select {
					case <-done:
						return
					default:
					}
				}
			})
			wg.Wait()
			close(done)
			vwg.Wait()
			assert.Positive(t, views)
			var total uint64
			for w := range writers {
				total += uint64(w+1) * rounds
			}
			assert.Equal(t, repo.Quota{Max: r.Quota().Max, Used: total, Reserved: total}, r.Quota())
			require.NoError(t, r.Verify(ctx))
		})
	}
}

func TestUpdate_Closed(t *testing.T) {
	r, _ := newRepo(t, 1000)
	require.NoError(t, r.Close())
	assert.ErrorIs(t, r.Update(context.Background(), saleChange), repo.ErrClosed)
	assert.ErrorIs(t, r.View(context.Background(), func(*repo.Tx) error { return nil }), repo.ErrClosed)
	assert.ErrorIs(t, r.Update(context.Background(), nil), repo.ErrInvalidOption)
}

func TestTx_UsedAfterItsFunction(t *testing.T) {
	r, _ := newRepo(t, 1000)
	var kept *repo.Tx
	require.NoError(t, r.Update(t.Context(), func(tx *repo.Tx) error { kept = tx; return nil }))
	assert.ErrorIs(t, kept.Put(saleKey, []byte("late")), repo.ErrClosed)
	assert.ErrorIs(t, kept.Reserve(1), repo.ErrClosed)
	_, err := kept.Get(saleKey)
	assert.ErrorIs(t, err, repo.ErrClosed)
	assert.Equal(t, repo.Quota{}, kept.Quota())
	// The next change is not reached through the kept Tx.
	require.NoError(t, r.Update(t.Context(), func(tx *repo.Tx) error {
		assert.ErrorIs(t, kept.Put(saleKey, []byte("late")), repo.ErrClosed)
		return nil
	}))
	_, none := saleState(t, r)
	assert.True(t, none)
}

// TestUpdate_LevelDBFaults fails the journal's fsync of an Update on the
// embedded LevelDB, and fills the disk under it: the repo reopens its
// database itself, and it, as a repo opened afresh, holds all of the
// change or none of it.
func TestUpdate_LevelDBFaults(t *testing.T) {
	for _, name := range []string{"fsync", "full"} {
		t.Run(name, func(t *testing.T) {
			ctx := t.Context()
			dir := t.TempDir()
			var f faultfs.Faults
			r, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(1000), repo.WithStorageForTest(f.Wrap))
			require.NoError(t, err)
			if name == "fsync" {
				f.FailNextJournalSync()
			} else {
				f.SetFull(true)
			}
			err = r.Update(ctx, saleChange)
			require.ErrorIs(t, err, repo.ErrWriteFailed)
			f.SetFull(false)
			all, none := saleState(t, r)
			assert.True(t, all || none, "all or nothing")
			require.NoError(t, r.Close())

			fresh, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(1000))
			require.NoError(t, err)
			defer fresh.Close()
			all2, none2 := saleState(t, fresh)
			assert.True(t, all2 || none2, "all or nothing after a reopen")
			assert.Equal(t, all, all2, "the repo and a fresh one agree")
			require.NoError(t, fresh.Verify(ctx))
		})
	}
}

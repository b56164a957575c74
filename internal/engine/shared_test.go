package engine

import (
	"context"
	"errors"
	"testing"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newShared(t *testing.T, d *fakeTxnDS, blocks datastore.Batching) *Engine {
	t.Helper()
	e, err := New(t.Context(), Config{Max: 100, Meta: d, Blocks: blocks, Shared: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	return e
}

// A change is one transaction: what it reads and writes, with the
// counters; a View is a read-only one; every read path is one.
func TestShared_ChangesAreTransactions(t *testing.T) {
	d := newFakeTxnDS()
	e := newShared(t, d, nil)
	key := datastore.NewKey("/p/rec")
	w := e.Watch(datastore.NewKey("/p"))
	defer w.Stop()
	assert.True(t, w.Hit(), "other processes write unseen: a watch is hit from the start")
	ran := false
	require.NoError(t, e.Update(t.Context(), func(tx *Tx) error {
		assert.True(t, tx.Shared())
		tx.AfterStage(func() { ran = true })
		require.NoError(t, tx.Reserve(10))
		require.NoError(t, tx.PutBlock(datastore.NewKey("/b"), []byte("abc")))
		return tx.Put(key, []byte("v"))
	}))
	assert.True(t, ran)
	assert.Equal(t, Counters{Used: 3, Reserved: 10}, e.Counters())
	assert.Equal(t, 1, d.commits)
	assert.Equal(t, uint64(1), e.Stats().Commits)
	cs, err := readCounters(t.Context(), d)
	require.NoError(t, err)
	assert.Equal(t, Counters{Used: 3, Reserved: 10}, cs)

	// Another process moves the counters: the next change reads them.
	require.NoError(t, d.Put(t.Context(), ReservedKey, encodeCounter(20)))
	for name, read := range map[string]func(context.Context, func(*Tx) error) error{"View": e.View, "Read": e.Read, "Snapshot": e.Snapshot} {
		require.NoError(t, read(t.Context(), func(tx *Tx) error {
			assert.Equal(t, Counters{Used: 3, Reserved: 20}, tx.Counters(), name)
			v, err := tx.Get(key)
			require.NoError(t, err)
			assert.Equal(t, "v", string(v))
			require.ErrorIs(t, tx.Put(key, nil), errReadOnly)
			var keys []string
			require.NoError(t, tx.Scan(datastore.NewKey("/p"), true, func(k string, _ []byte) error {
				keys = append(keys, k)
				return nil
			}))
			assert.Equal(t, []string{"/p/rec"}, keys)
			return tx.VerifyCounters()
		}), name)
	}
	assert.Equal(t, Counters{Used: 3, Reserved: 20}, e.Counters(), "a read records the counters it saw")
	assert.Equal(t, 1, d.commits, "reads commit nothing")
}

// A conflict reruns the change from the start, reading again; the retries
// are counted, and are neither commits nor failures.
func TestShared_ConflictIsRetried(t *testing.T) {
	d := newFakeTxnDS()
	e := newShared(t, d, nil)
	d.set(func(d *fakeTxnDS) { d.conflicts, d.discards = 3, 0 })
	runs := 0
	require.NoError(t, e.Update(t.Context(), func(tx *Tx) error {
		runs++
		assert.Equal(t, Counters{}, tx.Counters(), "each attempt starts from what is committed")
		return tx.Reserve(5)
	}))
	assert.Equal(t, 4, runs)
	assert.Equal(t, uint64(3), e.Conflicts())
	st := e.Stats()
	assert.Equal(t, uint64(1), st.Commits)
	assert.Zero(t, st.WriteFailures)
	assert.Equal(t, uint64(3), st.Conflicts)
	assert.Equal(t, 4, d.discards, "every attempt's transaction is discarded (a no-op once committed)")
}

// A conflict on every attempt ends with ErrConflict: nothing was changed.
func TestShared_TooManyConflicts(t *testing.T) {
	d := newFakeTxnDS()
	e := newShared(t, d, nil)
	d.set(func(d *fakeTxnDS) { d.conflicts = maxAttempts })
	err := e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(5) })
	require.ErrorIs(t, err, ErrConflict)
	assert.Equal(t, uint64(maxAttempts), e.Conflicts())
	assert.Equal(t, Counters{}, e.Counters())
}

// A ctx that ends during the backoff ends the call with its error.
func TestShared_CtxEndsDuringBackoff(t *testing.T) {
	d := newFakeTxnDS()
	e := newShared(t, d, nil)
	ctx, cancel := context.WithCancel(t.Context())
	d.set(func(d *fakeTxnDS) { d.conflicts, d.discards, d.onCommit = 1_000, 0, cancel })
	require.ErrorIs(t, e.Update(ctx, func(tx *Tx) error { return tx.Reserve(5) }), context.Canceled)
	assert.Equal(t, 1, d.discards)
	assert.Zero(t, d.deadCtx, "the discard after the ctx ended had a ctx of its own (the grace)")
}

// A commit of unknown outcome is ErrWriteFailed, telling the caller to
// read back; later calls need nothing (no fail-stop in shared mode).
func TestShared_UnknownCommit(t *testing.T) {
	for _, applied := range []bool{false, true} {
		d := newFakeTxnDS()
		e := newShared(t, d, nil)
		d.set(func(d *fakeTxnDS) { d.unknown, d.applyLost = 1, applied })
		err := e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(5) })
		require.ErrorIs(t, err, ErrWriteFailed)
		require.ErrorIs(t, err, errCommitUnsure)
		assert.ErrorContains(t, err, "read back to learn it")
		assert.Equal(t, uint64(1), e.Stats().WriteFailures)
		require.NoError(t, e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(1) }))
		want := Counters{Reserved: 1}
		if applied {
			want.Reserved = 6
		}
		assert.Equal(t, want, e.Counters())
	}
}

// A lost connection fails the call with the error, nothing written, and
// the next call goes on.
func TestShared_LostConnection(t *testing.T) {
	d := newFakeTxnDS()
	e := newShared(t, d, nil)
	d.set(func(d *fakeTxnDS) { d.lostBegin = 1 })
	err := e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(5) })
	require.ErrorIs(t, err, errLost)
	assert.NotErrorIs(t, err, ErrWriteFailed)
	d.set(func(d *fakeTxnDS) { d.lostReads = 1 })
	require.ErrorIs(t, e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(5) }), errLost)
	require.NoError(t, e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(5) }))
	assert.Equal(t, Counters{Reserved: 5}, e.Counters())
	assert.Equal(t, 1, d.commits)
}

// Changes of one process wait for each other; the wait honours ctx.
func TestShared_WaitHonoursCtx(t *testing.T) {
	d := newFakeTxnDS()
	e := newShared(t, d, nil)
	inside, release := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- e.Update(context.Background(), func(tx *Tx) error {
			close(inside)
			<-release
			return tx.Reserve(1)
		})
	}()
	<-inside
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, e.Update(ctx, func(tx *Tx) error { return tx.Reserve(1) }), context.Canceled)
	close(release)
	require.NoError(t, <-done)
	mine := errors.New("mine")
	require.ErrorIs(t, e.Update(t.Context(), func(*Tx) error { return mine }), mine)
	require.ErrorIs(t, e.Update(t.Context(), func(*Tx) error { panic("oops") }), ErrPanic)
	ctx, cancel = context.WithCancel(t.Context())
	require.ErrorIs(t, e.Update(ctx, func(tx *Tx) error { cancel(); return tx.Reserve(1) }), context.Canceled)
	assert.Equal(t, Counters{Reserved: 1}, e.Counters())
}

// With blocks in a store of their own, a delete of a block precedes the
// metadata: when the metadata then does not commit, the call says the
// books need the change repeated (ErrWriteFailed), unless a later attempt
// committed metadata that accounts for the block.
func TestShared_SeparateBlocks(t *testing.T) {
	blk := datastore.NewKey("/blk")
	setup := func(t *testing.T) (*fakeTxnDS, *discardDS, *Engine) {
		d := newFakeTxnDS()
		blocks := &discardDS{Batching: dssync.MutexWrap(datastore.NewMapDatastore())}
		e := newShared(t, d, blocks)
		require.NoError(t, e.Update(t.Context(), func(tx *Tx) error { return tx.PutBlock(blk, []byte("abc")) }))
		ok, err := blocks.Has(t.Context(), blk)
		require.NoError(t, err)
		require.True(t, ok, "a block is written after its metadata")
		return d, blocks, e
	}
	// As reservations deletes a block: by the size its records give, so
	// that a block an earlier attempt deleted is still accounted for.
	deleteBlock := func(tx *Tx) error { return tx.ForgetBlock(blk, 3) }

	t.Run("conflict then commit", func(t *testing.T) {
		d, _, e := setup(t)
		d.set(func(d *fakeTxnDS) { d.conflicts = 1 })
		require.NoError(t, e.Update(t.Context(), deleteBlock))
		assert.Equal(t, Counters{}, e.Counters())
	})
	t.Run("conflict then another change", func(t *testing.T) {
		d, _, e := setup(t)
		d.set(func(d *fakeTxnDS) { d.conflicts = 1 })
		attempt := 0
		err := e.Update(t.Context(), func(tx *Tx) error {
			attempt++
			if attempt == 1 {
				return deleteBlock(tx)
			}
			return tx.Reserve(1)
		})
		require.ErrorIs(t, err, ErrWriteFailed)
		assert.ErrorContains(t, err, "repeat the change")
		assert.ErrorContains(t, err, "did not delete them")
	})
	t.Run("conflict then an error", func(t *testing.T) {
		d, _, e := setup(t)
		d.set(func(d *fakeTxnDS) { d.conflicts = 1 })
		mine, attempt := errors.New("mine"), 0
		err := e.Update(t.Context(), func(tx *Tx) error {
			if attempt++; attempt == 1 {
				return deleteBlock(tx)
			}
			return mine
		})
		require.ErrorIs(t, err, ErrWriteFailed)
		require.ErrorIs(t, err, mine)
	})
	t.Run("conflict then nothing", func(t *testing.T) {
		d, _, e := setup(t)
		d.set(func(d *fakeTxnDS) { d.conflicts = 1 })
		attempt := 0
		err := e.Update(t.Context(), func(tx *Tx) error {
			if attempt++; attempt == 1 {
				return deleteBlock(tx)
			}
			return nil
		})
		require.ErrorIs(t, err, ErrWriteFailed)
	})
	t.Run("conflict on every attempt", func(t *testing.T) {
		d, _, e := setup(t)
		d.set(func(d *fakeTxnDS) { d.conflicts = maxAttempts })
		err := e.Update(t.Context(), deleteBlock)
		require.ErrorIs(t, err, ErrWriteFailed)
		assert.ErrorContains(t, err, "a conflict on each of")
	})
	t.Run("the delete fails", func(t *testing.T) {
		_, blocks, e := setup(t)
		blocks.failCommit.Store(true)
		err := e.Update(t.Context(), deleteBlock)
		require.ErrorIs(t, err, ErrWriteFailed, "the block may be gone")
		require.ErrorIs(t, err, errInjected)
		blocks.failCommit.Store(false)
		blocks.failPut.Store(true)
		err = e.Update(t.Context(), func(tx *Tx) error { return tx.PutBlock(datastore.NewKey("/b2"), []byte("x")) })
		require.ErrorIs(t, err, ErrWriteFailed)
		assert.ErrorContains(t, err, "blocks after their metadata")
	})
}

// Shared mode needs transactions that work, not only the method.
func TestShared_NeedsTransactions(t *testing.T) {
	_, err := New(t.Context(), Config{Max: 1, Meta: dssync.MutexWrap(datastore.NewMapDatastore()), Shared: true})
	require.ErrorIs(t, err, ErrInvalid)
	d := newFakeTxnDS()
	d.set(func(d *fakeTxnDS) { d.lostBegin = 1 })
	_, err = New(t.Context(), Config{Max: 1, Meta: d, Shared: true})
	require.ErrorIs(t, err, ErrInvalid)
	d.set(func(d *fakeTxnDS) { d.lostReads = 1 })
	_, err = New(t.Context(), Config{Max: 1, Meta: d, Shared: true})
	require.ErrorIs(t, err, ErrInvalid)
}

package engine

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// runGroup runs fns[0] as a change that holds the semaphore until the
// others wait for it, each with the ctx of ctxs (t's when nil), then lets
// them all run; it returns their errors.
func runGroup(t *testing.T, e *Engine, ctxs []context.Context, fns ...func(tx *Tx) error) []error {
	t.Helper()
	entered, release := make(chan struct{}), make(chan struct{})
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		first := true
		errs[0] = e.Update(t.Context(), func(tx *Tx) error {
			if first {
				first = false
				close(entered)
				<-release
			}
			return fns[0](tx)
		})
	}()
	<-entered
	for i := 1; i < len(fns); i++ {
		ctx := t.Context()
		if ctxs != nil && ctxs[i] != nil {
			ctx = ctxs[i]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.Update(ctx, fns[i])
		}()
	}
	require.Eventually(t, func() bool { return e.sh.waitersNow() == len(fns)-1 }, testWait, testTick)
	close(release)
	wg.Wait()
	return errs
}

func reserveFn(n uint64) func(tx *Tx) error { return func(tx *Tx) error { return tx.Reserve(n) } }

// The changes of a host queued behind one holding the counters' locks
// join its transaction: one COMMIT for the group, each change seeing the
// earlier ones' writes.
func TestShared_QueuedChangesCommitAsOneGroup(t *testing.T) {
	d := newLockDS()
	e := newLockShared(t, d)
	var seen []uint64
	var mu sync.Mutex
	see := func(tx *Tx) error {
		mu.Lock()
		seen = append(seen, tx.Counters().Reserved)
		mu.Unlock()
		return tx.Reserve(1)
	}
	for _, err := range runGroup(t, e, nil, see, see, see, see) {
		require.NoError(t, err)
	}
	assert.Equal(t, []uint64{0, 1, 2, 3}, seen, "each change sees the earlier ones'")
	assert.Equal(t, 1, d.commits, "one COMMIT for the group")
	assert.Equal(t, uint64(4), e.Counters().Reserved)
	cs, err := readCounters(t.Context(), d)
	require.NoError(t, err)
	assert.Equal(t, uint64(4), cs.Reserved)
	_, _, _, live := d.stats()
	assert.Zero(t, live)
	assert.Equal(t, uint64(4), e.RetriesPerCall()[0])
}

// A group holds at most maxGroup changes; the others are handed the locks
// after it.
func TestShared_GroupIsBounded(t *testing.T) {
	d := newLockDS()
	e := newLockShared(t, d)
	fns := make([]func(*Tx) error, maxGroup+2)
	for i := range fns {
		fns[i] = reserveFn(1)
	}
	for _, err := range runGroup(t, e, nil, fns...) {
		require.NoError(t, err)
	}
	assert.Equal(t, 2, d.commits)
	assert.Equal(t, uint64(maxGroup+2), e.Counters().Reserved)
	_, _, _, live := d.stats()
	assert.Zero(t, live)
}

// Each change of a group keeps its own outcome: one that fails (its own
// error, a panic, its ctx ending) fails alone, and writes nothing; the
// others commit.
func TestShared_GroupMemberFailsAlone(t *testing.T) {
	errMine := errors.New("mine")
	ctx, cancel := context.WithCancel(t.Context())
	for name, tc := range map[string]struct {
		fn   func(tx *Tx) error
		ctx  context.Context
		want error
	}{
		"own error": {fn: func(tx *Tx) error {
			if err := tx.Reserve(1); err != nil {
				return err
			}
			return errMine
		}, want: errMine},
		"quota":    {fn: reserveFn(1000), want: ErrQuotaNotEnough},
		"panic":    {fn: func(tx *Tx) error { _ = tx.Reserve(1); panic("boom") }, want: ErrPanic},
		"ctx ends": {fn: func(tx *Tx) error { _ = tx.Reserve(1); cancel(); return nil }, ctx: ctx, want: context.Canceled},
	} {
		t.Run(name, func(t *testing.T) {
			d := newLockDS()
			e := newLockShared(t, d)
			errs := runGroup(t, e, []context.Context{nil, nil, tc.ctx, nil}, reserveFn(1), reserveFn(1), tc.fn, reserveFn(1))
			require.NoError(t, errs[0])
			require.NoError(t, errs[1])
			require.ErrorIs(t, errs[2], tc.want)
			require.NoError(t, errs[3])
			assert.Equal(t, uint64(3), e.Counters().Reserved)
			cs, err := readCounters(t.Context(), d)
			require.NoError(t, err)
			assert.Equal(t, uint64(3), cs.Reserved, "only the others' writes committed")
			_, _, _, live := d.stats()
			assert.Zero(t, live)
		})
	}
}

// A group whose COMMIT conflicts runs its changes again, alone: none fails.
func TestShared_GroupConflictRunsAlone(t *testing.T) {
	d := newLockDS()
	e := newLockShared(t, d)
	d.set(func(d *fakeTxnDS) { d.conflicts = 1 })
	for _, err := range runGroup(t, e, nil, reserveFn(1), reserveFn(1), reserveFn(1)) {
		require.NoError(t, err)
	}
	cs, err := readCounters(t.Context(), d)
	require.NoError(t, err)
	assert.Equal(t, uint64(3), cs.Reserved)
	_, _, _, live := d.stats()
	assert.Zero(t, live)
}

// A group's COMMIT of unknown outcome fails each of its changes with
// ErrWriteFailed, as it fails a change alone.
func TestShared_GroupUnknownCommit(t *testing.T) {
	d := newLockDS()
	e := newLockShared(t, d)
	d.set(func(d *fakeTxnDS) { d.unknown = 1 })
	for _, err := range runGroup(t, e, nil, reserveFn(1), reserveFn(1), reserveFn(1)) {
		require.ErrorIs(t, err, ErrWriteFailed)
	}
	_, _, _, live := d.stats()
	assert.Zero(t, live)
}

// A group's COMMIT runs on after a member's ctx ends, for the grace, and
// not longer.
func TestShared_GroupCommitCtx(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &sharedMode{grace: time.Second}
		lead, cancel := context.WithCancel(t.Context())
		gctx, stop := s.groupCtx(lead, []joined{{req: &joinReq{ctx: t.Context()}}})
		defer stop()
		cancel()
		synctest.Wait()
		require.NoError(t, gctx.Err(), "the others' COMMIT is not cut short")
		time.Sleep(time.Second - time.Nanosecond)
		require.NoError(t, gctx.Err())
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		require.ErrorIs(t, gctx.Err(), context.Canceled, "the grace after the first ctx ended")

		gctx, stop = s.groupCtx(t.Context(), []joined{{req: &joinReq{ctx: t.Context()}}})
		require.NoError(t, gctx.Err())
		stop()
		require.Error(t, gctx.Err())
	})
}

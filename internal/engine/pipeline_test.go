package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fakeWriter records the groups the pipeline writes. Each write first
// reports on entered (when set) and waits for release (when set); it then
// fails with errs' next error, if any.
type fakeWriter struct {
	mu      sync.Mutex
	groups  [][]string // the keys each group wrote, in order
	bases   []Counters
	finals  []Counters
	entered chan struct{}
	release chan struct{}
	errs    []fakeErr
}

type fakeErr struct {
	err     error
	unknown bool
}

func (w *fakeWriter) write(group []*change, base, final Counters) (error, bool) {
	if w.entered != nil {
		w.entered <- struct{}{}
	}
	if w.release != nil {
		<-w.release
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) > 0 {
		f := w.errs[0]
		w.errs = w.errs[1:]
		return f.err, f.unknown
	}
	var keys []string
	for _, c := range group {
		for _, o := range c.ops {
			keys = append(keys, o.key)
		}
	}
	w.groups, w.bases, w.finals = append(w.groups, keys), append(w.bases, base), append(w.finals, final)
	return nil, false
}

// newFakeEngine returns an engine on a map datastore whose groups go to w.
func newFakeEngine(t *testing.T, w *fakeWriter) *Engine {
	t.Helper()
	e, err := New(t.Context(), Config{Max: 1000, Meta: dssync.MutexWrap(datastore.NewMapDatastore())})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	e.w = w
	return e
}

// putting is a change that reserves n bytes and puts key; queued (if not
// nil) is signalled once the change is in the commit queue.
func putting(key string, n uint64, queued chan<- struct{}) func(tx *Tx) error {
	return func(tx *Tx) error {
		if queued != nil {
			tx.AfterStage(func() { queued <- struct{}{} })
		}
		if err := tx.Reserve(n); err != nil {
			return err
		}
		return tx.Put(datastore.NewKey(key), []byte(key))
	}
}

// heldFirst starts a change that leads and holds the writer in its write,
// and returns its outcome channel once the write has begun.
func heldFirst(t *testing.T, e *Engine, w *fakeWriter) <-chan error {
	w.entered, w.release = make(chan struct{}), make(chan struct{})
	out := make(chan error, 1)
	go func() { out <- e.Update(context.Background(), putting("/a", 1, nil)) }()
	<-w.entered
	return out
}

// queueBehind starts changes one by one, each queued before the next
// starts, and returns their outcome channels.
func queueBehind(e *Engine, keys ...string) []chan error {
	var outs []chan error
	for _, k := range keys {
		queued, out := make(chan struct{}), make(chan error, 1)
		go func() { out <- e.Update(context.Background(), putting(k, 1, queued)) }()
		<-queued
		outs = append(outs, out)
	}
	return outs
}

// Changes queued behind a write become the next group, in the order they
// were staged, written with the counters they leave; each caller learns
// its change is durable.
func TestPipeline_GroupsInStagedOrder(t *testing.T) {
	w := &fakeWriter{}
	e := newFakeEngine(t, w)
	first := heldFirst(t, e, w)
	outs := queueBehind(e, "/b", "/c", "/d")
	w.release <- struct{}{}
	require.NoError(t, <-first)
	<-w.entered
	w.release <- struct{}{}
	for _, out := range outs {
		require.NoError(t, <-out)
	}
	assert.Equal(t, [][]string{{"/a"}, {"/b", "/c", "/d"}}, w.groups)
	assert.Equal(t, []Counters{{}, {Reserved: 1}}, w.bases)
	assert.Equal(t, []Counters{{Reserved: 1}, {Reserved: 4}}, w.finals)
	assert.Equal(t, Counters{Reserved: 4}, e.Counters())
	st := e.Stats()
	assert.Equal(t, uint64(2), st.Commits)
	assert.Equal(t, uint64(4), st.Changes)
}

// A group whose write fails (nothing written) fails its changes and every
// change queued behind it, which was checked against it; the engine goes
// on from the durable state.
func TestPipeline_FailedGroupFailsWhatQueuedBehind(t *testing.T) {
	boom := errors.New("boom")
	w := &fakeWriter{errs: []fakeErr{{err: boom}}}
	e := newFakeEngine(t, w)
	first := heldFirst(t, e, w)
	outs := queueBehind(e, "/b", "/c")
	w.release <- struct{}{}
	require.ErrorIs(t, <-first, boom)
	for _, out := range outs {
		err := <-out
		require.ErrorIs(t, err, boom)
		assert.ErrorContains(t, err, "an earlier change in the commit queue failed")
	}
	w.entered, w.release = nil, nil
	assert.Equal(t, Counters{}, e.Counters())
	require.NoError(t, e.Update(t.Context(), func(tx *Tx) error {
		_, err := tx.Get(datastore.NewKey("/b"))
		require.ErrorIs(t, err, datastore.ErrNotFound, "the overlay forgot the failed changes")
		assert.Equal(t, Counters{}, tx.Counters())
		return putting("/e", 2, nil)(tx)
	}))
	assert.Equal(t, Counters{Reserved: 2}, e.Counters())
	assert.Equal(t, [][]string{{"/e"}}, w.groups)
}

// After a write of unknown outcome an engine that cannot reopen its
// datastore refuses every later write with ErrWriteFailed (fail-stop);
// changes that write nothing still run.
func TestPipeline_UnknownOutcomeStopsWrites(t *testing.T) {
	w := &fakeWriter{errs: []fakeErr{{err: errors.New("fsync"), unknown: true}}}
	e := newFakeEngine(t, w)
	err := e.Update(t.Context(), putting("/a", 1, nil))
	require.ErrorIs(t, err, ErrWriteFailed)
	assert.ErrorContains(t, err, "no writes until the repo is reopened")
	require.ErrorIs(t, e.Update(t.Context(), putting("/b", 1, nil)), ErrWriteFailed)
	require.NoError(t, e.Update(t.Context(), func(tx *Tx) error { return nil }))
	assert.Empty(t, w.groups)
	assert.Equal(t, uint64(1), e.Stats().WriteFailures)
}

// A write whose metadata committed and whose blocks did not leaves the
// counters on disk at the group's: memory follows them.
func TestPipeline_BlocksAfterMetaKeepsTheGroupsCounters(t *testing.T) {
	w := &fakeWriter{errs: []fakeErr{{err: &blocksAfterMeta{errors.New("blocks")}, unknown: true}}}
	e := newFakeEngine(t, w)
	require.ErrorIs(t, e.Update(t.Context(), putting("/a", 5, nil)), ErrWriteFailed)
	assert.Equal(t, Counters{Reserved: 5}, e.Counters())
}

// A change that writes nothing, staged behind one still being written,
// shares that one's outcome: what it read may be that one's writes.
func TestPipeline_ReadOnlyChangeSharesTheOutcomeBefore(t *testing.T) {
	boom := errors.New("boom")
	w := &fakeWriter{errs: []fakeErr{{err: boom}}}
	e := newFakeEngine(t, w)
	first := heldFirst(t, e, w)
	out := make(chan error, 1)
	staged := make(chan struct{})
	go func() {
		out <- e.Update(context.Background(), func(tx *Tx) error {
			tx.AfterStage(func() { close(staged) })
			_, err := tx.Get(datastore.NewKey("/a"))
			return err
		})
	}()
	<-staged
	w.release <- struct{}{}
	require.ErrorIs(t, <-first, boom)
	err := <-out
	require.ErrorIs(t, err, boom)
	assert.ErrorContains(t, err, "a change staged before this one failed")
}

// A change abandoned (an error, a panic, an ended ctx) writes nothing.
func TestPipeline_AbandonedChanges(t *testing.T) {
	w := &fakeWriter{}
	e := newFakeEngine(t, w)
	mine := errors.New("mine")
	require.ErrorIs(t, e.Update(t.Context(), func(tx *Tx) error {
		_ = tx.Put(datastore.NewKey("/a"), nil)
		return mine
	}), mine)
	require.ErrorIs(t, e.Update(t.Context(), func(tx *Tx) error {
		_ = tx.Put(datastore.NewKey("/a"), nil)
		panic("oops")
	}), ErrPanic)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	require.ErrorIs(t, e.Update(ctx, putting("/a", 1, nil)), context.Canceled)
	ctx, cancel = context.WithCancel(t.Context())
	require.ErrorIs(t, e.Update(ctx, func(tx *Tx) error {
		cancel()
		return putting("/a", 1, nil)(tx)
	}), context.Canceled)
	assert.Empty(t, w.groups)
	assert.Equal(t, Counters{}, e.Counters())
	require.NoError(t, e.Close())
	require.ErrorIs(t, e.Update(t.Context(), putting("/a", 1, nil)), ErrClosed)
	require.NoError(t, e.Close(), "a second Close is a no-op")
}

// A leader that handed the lead on may retire its group after the next
// leader retired the last group and the engine went idle: the overlay
// still ends empty.
func TestPipeline_IdleOverlayEmptyWhateverOrderGroupsRetire(t *testing.T) {
	w := &fakeWriter{}
	e := newFakeEngine(t, w)
	secondDone := make(chan struct{})
	var calls atomic.Int32
	e.testRetire = func() {
		// The first leader waits until the second has retired its group.
		if calls.Add(1) == 1 {
			<-secondDone
		}
	}
	first := heldFirst(t, e, w)
	second := queueBehind(e, "/b")[0]
	w.release <- struct{}{}
	<-w.entered
	w.release <- struct{}{}
	require.NoError(t, <-second)
	close(secondDone)
	require.NoError(t, <-first)
	e.stageMu.Lock()
	defer e.stageMu.Unlock()
	assert.Empty(t, e.overlay.m, "an idle engine keeps nothing in the overlay")
	assert.Empty(t, e.overlay.retired)
}

// A leader with a full queue writes the next group at once: it does not
// wait for the staging lock (held here, as a long staging holds it) to
// retire the group it wrote from the overlay; the next staging does that.
func TestPipeline_LeaderWritesOnWhileStaging(t *testing.T) {
	w := &fakeWriter{}
	e := newFakeEngine(t, w)
	first := heldFirst(t, e, w)
	keys := make([]string, keepLead)
	for i := range keys {
		keys[i] = fmt.Sprintf("/q%d", i)
	}
	outs := queueBehind(e, keys...)
	e.stageMu.Lock()
	w.release <- struct{}{} // the first group is durable
	select {
	case <-w.entered:
	case <-time.After(10 * time.Second):
		e.stageMu.Unlock()
		<-w.entered // let the write go on, so that the engine closes
		w.release <- struct{}{}
		t.Fatal("the leader waited for the staging lock before it wrote the next group")
	}
	e.stageMu.Unlock()
	w.release <- struct{}{}
	require.NoError(t, <-first)
	for _, out := range outs {
		require.NoError(t, <-out)
	}
	assert.Len(t, w.groups, 2)
	assert.Len(t, w.groups[1], keepLead, "the queue, as one group")
	e.stageMu.Lock()
	defer e.stageMu.Unlock()
	assert.Empty(t, e.overlay.m, "an idle engine keeps nothing in the overlay")
	assert.Empty(t, e.overlay.retired)
}

package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// lockDS is fakeTxnDS with pgds's locked transactions and lock hand-over:
// it records the keys each locked transaction locks, counts the
// hand-overs (CommitAndBegin) and the transactions begun and not ended.
type lockDS struct {
	*fakeTxnDS

	lmu     sync.Mutex
	locked  [][]datastore.Key // what each NewLockedTransaction locked
	plain   int               // transactions begun by NewTransaction
	chained int               // CommitAndBegin that began a transaction
	live    int               // transactions begun, not yet ended
}

func newLockDS() *lockDS { return &lockDS{fakeTxnDS: newFakeTxnDS()} }

func (d *lockDS) NewTransaction(ctx context.Context, readOnly bool) (datastore.Txn, error) {
	d.lmu.Lock()
	d.plain++
	d.lmu.Unlock()
	return d.begin(ctx, readOnly)
}

func (d *lockDS) NewLockedTransaction(ctx context.Context, readOnly bool, lock, _ []datastore.Key) (datastore.Txn, error) {
	d.lmu.Lock()
	d.locked = append(d.locked, lock)
	d.lmu.Unlock()
	return d.begin(ctx, readOnly)
}

func (d *lockDS) begin(ctx context.Context, readOnly bool) (datastore.Txn, error) {
	t, err := d.fakeTxnDS.NewTransaction(ctx, readOnly)
	if err != nil {
		return nil, err
	}
	d.lmu.Lock()
	d.live++
	d.lmu.Unlock()
	return &lockTxn{fakeTxn: t.(*fakeTxn), ds: d}, nil
}

func (d *lockDS) stats() (locked [][]datastore.Key, plain, chained, live int) {
	d.lmu.Lock()
	defer d.lmu.Unlock()
	return append([][]datastore.Key(nil), d.locked...), d.plain, d.chained, d.live
}

type lockTxn struct {
	*fakeTxn
	ds    *lockDS
	ended bool // under ds.lmu
}

var (
	_ lockingTxnDatastore = (*lockDS)(nil)
	_ chainTxn            = (*lockTxn)(nil)
)

func (t *lockTxn) end() {
	t.ds.lmu.Lock()
	defer t.ds.lmu.Unlock()
	if !t.ended {
		t.ended = true
		t.ds.live--
	}
}

func (t *lockTxn) Commit(ctx context.Context) error {
	defer t.end()
	return t.fakeTxn.Commit(ctx)
}

func (t *lockTxn) Discard(ctx context.Context) {
	t.fakeTxn.Discard(ctx)
	t.end()
}

func (t *lockTxn) CommitAndBegin(ctx context.Context, _ []datastore.Key) (datastore.Txn, error) {
	if err := t.Commit(ctx); err != nil {
		return nil, err
	}
	t.ds.lmu.Lock()
	t.ds.chained++
	t.ds.lmu.Unlock()
	return t.ds.begin(ctx, false)
}

const (
	testWait = 10 * time.Second
	testTick = time.Millisecond
)

func newLockShared(t *testing.T, d *lockDS) *Engine {
	t.Helper()
	e, err := New(t.Context(), Config{Max: 100, Meta: d, Shared: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	d.lmu.Lock()
	d.locked, d.plain = nil, 0 // New's own reads aside
	d.lmu.Unlock()
	return e
}

// waitersNow returns how many calls wait for shared mode's semaphore.
func (s *sharedMode) waitersNow() int {
	s.chain.mu.Lock()
	defer s.chain.mu.Unlock()
	return s.chain.waiters
}

// runQueued runs one change that holds the semaphore until n more changes
// wait for it, then lets them all run; it returns their errors.
func runQueued(t *testing.T, e *Engine, n int, ctxs []context.Context) []error {
	t.Helper()
	entered, release := make(chan struct{}), make(chan struct{})
	errs := make([]error, n+1)
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
			return tx.Reserve(1)
		})
	}()
	<-entered
	for i := 1; i <= n; i++ {
		ctx := t.Context()
		if ctxs != nil {
			ctx = ctxs[i-1]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = e.Update(ctx, func(tx *Tx) error { return tx.Reserve(1) })
		}()
	}
	require.Eventually(t, func() bool { return e.sh.waitersNow() == n }, testWait, testTick)
	close(release)
	wg.Wait()
	return errs
}

// A change locks the counters before it begins; a view locks nothing. A
// host's queued changes hand the locks from one to the next, at most
// maxChain in a row, and no transaction is left holding them.
func TestShared_LocksHandedOverBetweenQueuedChanges(t *testing.T) {
	d := newLockDS()
	e := newLockShared(t, d)
	e.sh.group = 1 // no groups: queued changes each commit
	for _, err := range runQueued(t, e, maxChain+1, nil) {
		require.NoError(t, err)
	}
	assert.Equal(t, uint64(maxChain+2), e.Counters().Reserved)
	locked, plain, chained, live := d.stats()
	assert.Zero(t, plain, "every transaction is a locked one")
	// maxChain changes in a row on the first locks (maxChain-1
	// hand-overs), then a new lock, handed on to the last change.
	assert.Equal(t, [][]datastore.Key{counterKeys, counterKeys}, locked)
	assert.Equal(t, maxChain, chained)
	assert.Zero(t, live, "no transaction left holding the locks")

	require.NoError(t, e.View(t.Context(), func(tx *Tx) error { return nil }))
	locked, _, _, live = d.stats()
	assert.Empty(t, locked[len(locked)-1], "a view locks nothing")
	assert.Zero(t, live)
}

// Locks handed over to a change whose ctx then ends are ended, whoever
// notices: the waiter giving up, or the change that handed them over.
func TestShared_HandedLocksEndedWhenTheWaiterGivesUp(t *testing.T) {
	d := newLockDS()
	e := newLockShared(t, d)
	e.sh.group = 1 // no groups: the waiter would join the change
	ctx, cancel := context.WithCancel(t.Context())
	d.set(func(d *fakeTxnDS) { d.onCommit = cancel })
	errs := runQueued(t, e, 1, []context.Context{ctx})
	require.NoError(t, errs[0])
	require.ErrorIs(t, errs[1], context.Canceled)
	_, _, chained, live := d.stats()
	assert.Equal(t, 1, chained, "the locks were handed over")
	assert.Zero(t, live, "and then ended")
	assert.Equal(t, uint64(1), e.Counters().Reserved)
	d.set(func(d *fakeTxnDS) { d.onCommit = nil })
	require.NoError(t, e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(1) }))
	_, _, _, live = d.stats()
	assert.Zero(t, live)
}

// RetriesPerCall counts the calls by their retries; outside shared mode
// it is all zero.
func TestShared_RetriesPerCall(t *testing.T) {
	d := newLockDS()
	e := newLockShared(t, d)
	d.set(func(d *fakeTxnDS) { d.conflicts = 2 })
	require.NoError(t, e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(1) }))
	require.NoError(t, e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(1) }))
	r := e.RetriesPerCall()
	require.Len(t, r, maxAttempts)
	assert.Equal(t, uint64(1), r[0])
	assert.Equal(t, uint64(1), r[2])

	l, err := New(t.Context(), Config{Max: 100, Meta: datastore.NewMapDatastore()})
	require.NoError(t, err)
	defer l.Close()
	assert.Equal(t, make([]uint64, maxAttempts), l.RetriesPerCall())
}

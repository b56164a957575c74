package engine

import (
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// reopener stands in for the embedded database: every open returns the
// same records, through a store whose commits fail on command, unless
// the open itself is told to fail.
type reopener struct {
	mu       sync.Mutex
	data     datastore.Batching
	cur      *discardDS
	openErr  error
	roErr    error
	opens    int
	closes   int
	readOnly int
}

func newReopener() *reopener {
	return &reopener{data: dssync.MutexWrap(datastore.NewMapDatastore())}
}

func (r *reopener) open() (datastore.Batching, io.Closer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.opens++
	if r.openErr != nil {
		return nil, nil, r.openErr
	}
	r.cur = &discardDS{Batching: r.data}
	return r.cur, r, nil
}

func (r *reopener) openRO() (datastore.Batching, io.Closer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.roErr != nil {
		return nil, nil, r.roErr
	}
	r.readOnly++
	return &discardDS{Batching: r.data}, r, nil
}

func (r *reopener) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closes++
	return nil
}

func (r *reopener) failCommits(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cur.failCommit.Store(on)
}

func (r *reopener) setOpenErr(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.openErr = err
}

// fakeClock is a clock a test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newReopening(t *testing.T, r *reopener, clock *fakeClock) *Engine {
	t.Helper()
	e, err := New(t.Context(), Config{Max: 100, Open: r.open, OpenReadOnly: r.openRO, Now: clock.now, ReopenEvery: time.Minute})
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func reserve(t *testing.T, e *Engine, n uint64) error {
	return e.Update(t.Context(), func(tx *Tx) error { return tx.Reserve(n) })
}

// After a write of unknown outcome the engine reopens its database,
// reloads the counters from it and goes on.
func TestRecover_ReopensAndGoesOn(t *testing.T) {
	r, clock := newReopener(), &fakeClock{}
	e := newReopening(t, r, clock)
	require.NoError(t, reserve(t, e, 10))
	r.failCommits(true)
	err := reserve(t, e, 5)
	require.ErrorIs(t, err, ErrWriteFailed)
	assert.ErrorContains(t, err, "reopens its database and goes on")
	assert.Equal(t, 2, r.opens)
	assert.Equal(t, 1, r.closes)
	assert.Equal(t, Counters{Reserved: 10}, e.Counters(), "reloaded from the reopened database")
	require.NoError(t, reserve(t, e, 5), "the new store's commits work")
	assert.Equal(t, Counters{Reserved: 15}, e.Counters())
}

// When the reopen fails (a full disk) writes are refused, saying why,
// reads go on from the database opened read-only, and the first change
// once the interval has passed retries the reopen.
func TestRecover_FailedReopenReadsOnAndRetries(t *testing.T) {
	r, clock := newReopener(), &fakeClock{}
	e := newReopening(t, r, clock)
	require.NoError(t, reserve(t, e, 10))
	key := datastore.NewKey("/rec")
	require.NoError(t, e.Update(t.Context(), func(tx *Tx) error { return tx.Put(key, []byte("v")) }))

	full := errors.New("no space left on device")
	r.setOpenErr(full)
	r.failCommits(true)
	err := reserve(t, e, 5)
	require.ErrorIs(t, err, ErrWriteFailed)
	require.ErrorIs(t, err, full)
	require.ErrorIs(t, err, errInjected, "the group learns its write's own cause")
	assert.ErrorContains(t, err, "reads go on")

	err = reserve(t, e, 1)
	require.ErrorIs(t, err, full)
	assert.NotErrorIs(t, err, errInjected, "a later write learns only why it is refused")
	v, err := e.Get(t.Context(), key)
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))
	assert.Equal(t, 1, r.readOnly)

	opens := r.opens
	clock.add(30 * time.Second)
	require.ErrorIs(t, reserve(t, e, 1), full)
	assert.Equal(t, opens, r.opens, "no retry before the interval")
	r.setOpenErr(nil)
	clock.add(time.Minute)
	require.NoError(t, reserve(t, e, 1))
	assert.Equal(t, Counters{Reserved: 11}, e.Counters())
}

// With no read-only open (or a failed one) reads fail too, with why.
func TestRecover_NoReadOnlyDatabase(t *testing.T) {
	r, clock := newReopener(), &fakeClock{}
	e := newReopening(t, r, clock)
	require.NoError(t, reserve(t, e, 1))
	full := errors.New("no space left on device")
	r.roErr = errors.New("read-only open failed")
	r.setOpenErr(full)
	r.failCommits(true)
	err := reserve(t, e, 1)
	assert.ErrorContains(t, err, "reads fail too")
	_, err = e.Get(t.Context(), datastore.NewKey("/rec"))
	require.ErrorIs(t, err, full)
	_, err = e.GetBlock(t.Context(), datastore.NewKey("/b"))
	require.ErrorIs(t, err, full)
	_, err = e.HasBlock(t.Context(), datastore.NewKey("/b"))
	require.ErrorIs(t, err, full)
	require.ErrorIs(t, e.Scan(t.Context(), datastore.NewKey("/"), true, func(string, []byte) error { return nil }), full)
	_, err = e.CountBlocks(t.Context())
	require.ErrorIs(t, err, full)
	cs := closedStore{full}
	_, err = cs.GetSize(t.Context(), datastore.NewKey("/a"))
	require.ErrorIs(t, err, full)
	require.ErrorIs(t, cs.Put(t.Context(), datastore.NewKey("/a"), nil), full)
	require.ErrorIs(t, cs.Delete(t.Context(), datastore.NewKey("/a")), full)
	require.ErrorIs(t, cs.Sync(t.Context(), datastore.NewKey("/a")), full)
	require.NoError(t, cs.Close())
}

// A reopen that finds a corrupt counter keeps the database for reads and
// refuses writes.
func TestRecover_CorruptCounterRefusesWrites(t *testing.T) {
	r, clock := newReopener(), &fakeClock{}
	e := newReopening(t, r, clock)
	key := datastore.NewKey("/rec")
	require.NoError(t, e.Update(t.Context(), func(tx *Tx) error { return tx.Put(key, []byte("v")) }))
	require.NoError(t, r.data.Put(t.Context(), UsedKey, []byte("bad")))
	r.failCommits(true)
	require.ErrorIs(t, reserve(t, e, 1), ErrWriteFailed)
	err := reserve(t, e, 1)
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorIs(t, err, ErrWriteFailed)
	v, err := e.Get(t.Context(), key)
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))
}

package pgds_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/pgds"
	"github.com/stowage/stowage/pgds/internal/pgtest"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// hookDS is a pgds Datastore whose read-write transactions can be made to
// fail at Commit as a conflict would, can run a hook before their first write,
// and can be recorded.
type hookDS struct {
	*pgds.Datastore
	mu          sync.Mutex
	failCommits int                       // commits still to fail; negative: every one
	injected    int                       // commits failed so far
	beforeWrite func(ctx context.Context) // run (once) before the next Put
	trace       *[]txnTrace               // committed transactions, when recording
}

type traceOp struct {
	kind  string // get, has, size, query, put, delete
	key   string
	value []byte
	q     query.Query
}

type txnTrace []traceOp

func (d *hookDS) NewTransaction(ctx context.Context, readOnly bool) (datastore.Txn, error) {
	t, err := d.Datastore.NewTransaction(ctx, readOnly)
	if err != nil {
		return nil, err
	}
	return &hookTxn{Txn: t, d: d, readOnly: readOnly}, nil
}

func (d *hookDS) NewLockedTransaction(ctx context.Context, readOnly bool, lock, prefetch []datastore.Key) (datastore.Txn, error) {
	t, err := d.Datastore.NewLockedTransaction(ctx, readOnly, lock, prefetch)
	if err != nil {
		return nil, err
	}
	return &hookTxn{Txn: t, d: d, readOnly: readOnly}, nil
}

type hookTxn struct {
	datastore.Txn
	d        *hookDS
	readOnly bool
	ops      txnTrace
}

func (t *hookTxn) add(o traceOp) { t.ops = append(t.ops, o) }

func (t *hookTxn) Get(ctx context.Context, k datastore.Key) ([]byte, error) {
	t.add(traceOp{kind: "get", key: k.String()})
	return t.Txn.Get(ctx, k)
}

func (t *hookTxn) Has(ctx context.Context, k datastore.Key) (bool, error) {
	t.add(traceOp{kind: "has", key: k.String()})
	return t.Txn.Has(ctx, k)
}

func (t *hookTxn) GetSize(ctx context.Context, k datastore.Key) (int, error) {
	t.add(traceOp{kind: "size", key: k.String()})
	return t.Txn.GetSize(ctx, k)
}

func (t *hookTxn) Query(ctx context.Context, q query.Query) (query.Results, error) {
	t.add(traceOp{kind: "query", q: q})
	return t.Txn.Query(ctx, q)
}

func (t *hookTxn) Put(ctx context.Context, k datastore.Key, v []byte) error {
	t.d.mu.Lock()
	hook := t.d.beforeWrite
	t.d.beforeWrite = nil
	t.d.mu.Unlock()
	if hook != nil {
		hook(ctx)
	}
	t.add(traceOp{kind: "put", key: k.String(), value: v})
	return t.Txn.Put(ctx, k, v)
}

func (t *hookTxn) Delete(ctx context.Context, k datastore.Key) error {
	t.add(traceOp{kind: "delete", key: k.String()})
	return t.Txn.Delete(ctx, k)
}

func (t *hookTxn) Commit(ctx context.Context) error {
	d := t.d
	d.mu.Lock()
	fail := !t.readOnly && d.failCommits != 0
	if fail {
		d.failCommits--
		d.injected++
	}
	d.mu.Unlock()
	if fail {
		t.Txn.Discard(ctx)
		return fmt.Errorf("injected: %w", pgds.ErrSerialization)
	}
	err := t.Txn.Commit(ctx)
	if err == nil && !t.readOnly {
		d.mu.Lock()
		if d.trace != nil {
			*d.trace = append(*d.trace, t.ops)
		}
		d.mu.Unlock()
	}
	return err
}

// hookedStore opens a repo in shared mode on a hookDS of its own pool.
func hookedStore(t testing.TB, url string) (*hookDS, *reservations.Store, *repo.Repo) {
	return hookedStoreOn(t, url, func(h *hookDS) datastore.Batching { return h })
}

// plainDS is a hookDS without NewLockedTransaction: a datastore whose
// transactions take no locks, as another database's would.
type plainDS struct {
	datastore.Batching
	h *hookDS
}

func (p plainDS) NewTransaction(ctx context.Context, readOnly bool) (datastore.Txn, error) {
	return p.h.NewTransaction(ctx, readOnly)
}

// plainHookedStore is hookedStore on a plainDS.
func plainHookedStore(t testing.TB, url string) (*hookDS, *reservations.Store, *repo.Repo) {
	return hookedStoreOn(t, url, func(h *hookDS) datastore.Batching { return plainDS{Batching: h, h: h} })
}

func hookedStoreOn(t testing.TB, url string, wrap func(h *hookDS) datastore.Batching) (*hookDS, *reservations.Store, *repo.Repo) {
	t.Helper()
	ds, err := pgds.Open(t.Context(), url)
	require.NoError(t, err)
	t.Cleanup(func() { ds.Close() })
	h := &hookDS{Datastore: ds}
	r, err := repo.New(t.Context(), wrap(h), repo.WithShared(), repo.WithQuotaMaxBytes(1<<20))
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return h, reservations.New(r), r
}

func (d *hookDS) set(f func(d *hookDS)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

var testAsk = stowage.StorageAsk{Slots: 1, SlotSize: 100, Duration: 10}

// A change that conflicts at every attempt fails with ErrConflict after the
// bound, and nothing of it is written.
func TestShared_ConflictBoundIsErrConflictAndChangesNothing(t *testing.T) {
	h, s, r := hookedStore(t, pgtest.URL(t))
	ctx := t.Context()
	a, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 1000, Duration: 100})
	require.NoError(t, err)
	before := r.Quota()
	h.set(func(d *hookDS) { d.failCommits = -1 })

	_, err = s.ReserveSlot(ctx, stowage.Slot{RequestID: stowage.RequestID{1}, Ask: testAsk})
	require.ErrorIs(t, err, repo.ErrConflict)
	assert.ErrorIs(t, err, pgds.ErrSerialization, "the last conflict is in the error")
	assert.Contains(t, err.Error(), "30 attempts")
	h.set(func(d *hookDS) { d.failCommits = 0 })
	assert.Equal(t, 30, h.injected)
	assert.Equal(t, uint64(30), r.Stats().Conflicts)

	got, err := s.Availability(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, a, got, "the availability is unchanged")
	_, ok, err := s.ReservationForSlot(ctx, stowage.RequestID{1}, 0)
	require.NoError(t, err)
	assert.False(t, ok, "no reservation was written")
	rs, err := s.Reservations(ctx)
	require.NoError(t, err)
	assert.Empty(t, rs)
	assert.Equal(t, before, r.Quota())
	require.NoError(t, s.Verify(ctx))
}

// A change that conflicts a few times is retried and succeeds, once; the
// caller sees no error.
func TestShared_ConflictsAreRetriedTransparently(t *testing.T) {
	h, s, r := hookedStore(t, pgtest.URL(t))
	ctx := t.Context()
	a, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 1000, Duration: 100})
	require.NoError(t, err)
	h.set(func(d *hookDS) { d.failCommits = 3 })

	res, err := s.ReserveSlot(ctx, stowage.Slot{RequestID: stowage.RequestID{1}, Ask: testAsk})
	require.NoError(t, err)
	assert.Equal(t, uint64(3), r.Stats().Conflicts)
	got, err := s.Availability(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(900), got.Size, "reserved once")
	rs, err := s.Reservations(ctx)
	require.NoError(t, err)
	assert.Equal(t, []reservations.Reservation{res}, rs)
	require.NoError(t, s.Verify(ctx))
}

// On a datastore without locks (another database than pgds), a real
// serialization failure: another host changes the availability between
// this host's reads and its writes. The commit fails with 40001, the
// change is run again on what the other host wrote, and both changes are
// kept.
func TestShared_RealConflictIsRetried(t *testing.T) {
	url := pgtest.URL(t)
	h, s, r := plainHookedStore(t, url)
	other, _ := sharedStore(t, url)
	ctx := t.Context()
	a, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 1000, Duration: 100})
	require.NoError(t, err)
	grow := func(n uint64) func(a *reservations.Availability) error {
		return func(a *reservations.Availability) error {
			a.TotalSize += n
			a.Size += n
			return nil
		}
	}
	h.set(func(d *hookDS) {
		d.beforeWrite = func(context.Context) {
			_, err := other.ModifyAvailability(ctx, a.ID, grow(10))
			assert.NoError(t, err, "the other host")
		}
	})
	_, err = s.ModifyAvailability(ctx, a.ID, grow(1))
	require.NoError(t, err)
	assert.Equal(t, uint64(1), r.Stats().Conflicts, "one real conflict, retried")
	got, err := s.Availability(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(1011), got.TotalSize)
	assert.Equal(t, uint64(1011), got.Size)
	require.NoError(t, s.Verify(ctx))
}

// On pgds, the same two changes queue instead: the other host's change,
// started between this host's reads and its writes, waits for the lock on
// the counters this change holds (the server shows it waiting), runs once
// this one committed, on what it wrote, and neither conflicts.
func TestShared_ChangesQueueForTheCounters(t *testing.T) {
	url := pgtest.URL(t)
	h, s, r := hookedStore(t, url)
	other, otherRepo := sharedStore(t, url)
	ctx := t.Context()
	a, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 1000, Duration: 100})
	require.NoError(t, err)
	grow := func(n uint64) func(a *reservations.Availability) error {
		return func(a *reservations.Availability) error {
			a.TotalSize += n
			a.Size += n
			return nil
		}
	}
	pool := newPoolAt(t, url)
	otherDone := make(chan error, 1)
	h.set(func(d *hookDS) {
		d.beforeWrite = func(context.Context) {
			go func() {
				_, err := other.ModifyAvailability(ctx, a.ID, grow(10))
				otherDone <- err
			}()
			require.Eventually(t, func() bool {
				var n int
				err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`).Scan(&n)
				return err == nil && n > 0
			}, 30*time.Second, 5*time.Millisecond, "the other host's change waits for the lock")
		}
	})
	_, err = s.ModifyAvailability(ctx, a.ID, grow(1))
	require.NoError(t, err)
	require.NoError(t, <-otherDone, "the other host")
	assert.Zero(t, r.Stats().Conflicts, "this host retried")
	assert.Zero(t, otherRepo.Stats().Conflicts, "the other host retried")
	got, err := s.Availability(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(1011), got.TotalSize)
	assert.Equal(t, uint64(1011), got.Size)
	require.NoError(t, s.Verify(ctx))
}

// switchProxy forwards TCP connections to target until cut, which closes
// every connection and refuses new ones until mend.
type switchProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &switchProxy{l: l, target: target}
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			down := p.down
			p.mu.Unlock()
			if down {
				_ = c.Close()
				continue
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Go(func() { _, _ = io.Copy(s, c); _ = s.Close() })
			p.wg.Go(func() { _, _ = io.Copy(c, s); _ = c.Close() })
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *switchProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
}

func (p *switchProxy) mend() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
}

// The server becomes unreachable while a host runs: its calls fail with
// an error (not a conflict, not a panic) and write nothing; once the server
// is back the host carries on without reopening.
func TestShared_ServerUnreachableMidRun(t *testing.T) {
	direct := pgtest.URL(t)
	u, err := url.Parse(direct)
	require.NoError(t, err)
	p := newSwitchProxy(t, u.Host)
	u.Host = p.l.Addr().String()
	q := u.Query()
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	_, s, _ := hookedStore(t, u.String())
	ctx := t.Context()
	a, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 1000, Duration: 100})
	require.NoError(t, err)

	p.cut()
	_, err = s.ReserveSlot(ctx, stowage.Slot{RequestID: stowage.RequestID{1}, Ask: testAsk})
	require.Error(t, err)
	assert.NotErrorIs(t, err, repo.ErrConflict)
	assert.Contains(t, err.Error(), "pgds: ", "the error names the datastore")
	_, err = s.ModifyAvailability(ctx, a.ID, func(a *reservations.Availability) error { a.TotalSize++; return nil })
	require.Error(t, err)

	p.mend()
	res, err := s.ReserveSlot(ctx, stowage.Slot{RequestID: stowage.RequestID{2}, Ask: testAsk})
	require.NoError(t, err, "the host carries on once the server is back")

	check, _ := sharedStore(t, direct)
	rs, err := check.Reservations(ctx)
	require.NoError(t, err)
	assert.Equal(t, []reservations.Reservation{res}, rs, "the failed reservation was not written")
	got, err := check.Availability(ctx, a.ID)
	require.NoError(t, err)
	assert.Equal(t, uint64(1000), got.TotalSize, "the failed modification was not written")
	require.NoError(t, check.Verify(ctx))
}

// Every session of the fleet is killed again and again while two hosts run
// reservation cycles: each call succeeds or fails with an error, never a
// panic, and what is written is whole: the books balance and every
// acknowledged reservation whose deletion was not attempted is there.
func TestShared_SessionsKilledMidRunLeaveNothingHalfWritten(t *testing.T) {
	url := pgtest.URL(t)
	ctx := t.Context()
	s1, _ := sharedStore(t, url)
	s2, _ := sharedStore(t, url)
	_, err := s1.AddAvailability(ctx, reservations.Availability{TotalSize: 1 << 16, Duration: 100})
	require.NoError(t, err)

	progress := make(chan struct{}, 1024)
	var mu sync.Mutex
	acked := map[reservations.ReservationID]bool{} // false once a delete was tried
	var failures atomic.Int64
	var wg sync.WaitGroup
	for h, s := range []*reservations.Store{s1, s2} {
		for g := range 3 {
			wg.Go(func() {
				for i := range 12 {
					progress <- struct{}{}
					req := stowage.RequestID{byte(h), byte(g), byte(i)}
					res, err := s.ReserveSlot(ctx, stowage.Slot{RequestID: req, Ask: testAsk})
					if err != nil {
						failures.Add(1)
						assert.NotErrorIs(t, err, reservations.ErrNoAvailability)
						continue
					}
					mu.Lock()
					acked[res.ID] = true
					mu.Unlock()
					if err := s.PutBlock(ctx, res.ID, datastore.NewKey(fmt.Sprintf("/k/%d/%d/%d", h, g, i)), make([]byte, 10)); err != nil {
						failures.Add(1)
					}
					if i%2 == 0 {
						mu.Lock()
						acked[res.ID] = false
						mu.Unlock()
						if err := s.DeleteReservation(ctx, res.ID); err != nil {
							failures.Add(1)
						}
					}
				}
			})
		}
	}
	killed := 0
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for n := 0; ; n++ {
		select {
		case <-progress:
			if n%6 == 5 {
				killed += terminateOthers(t, url)
			}
			continue
		case <-done:
		}
		break
	}
	t.Logf("%d sessions killed, %d calls failed", killed, failures.Load())

	check, _ := sharedStore(t, url)
	require.NoError(t, check.Verify(ctx))
	rs, err := check.Reservations(ctx)
	require.NoError(t, err)
	have := map[reservations.ReservationID]bool{}
	for _, r := range rs {
		have[r.ID] = true
	}
	for id, keep := range acked {
		if keep {
			assert.True(t, have[id], "acknowledged reservation %s lost", id)
		}
	}
}

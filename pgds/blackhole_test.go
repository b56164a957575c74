package pgds_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/pgds"
	"github.com/stowage/stowage/pgds/internal/pgtest"
	"github.com/stowage/stowage/repo"
)

// blackhole is a TCP proxy to a PostgreSQL server that can stop forwarding
// while keeping every socket open, as a firewall that drops packets, a NAT
// or a load balancer that lost its state do. What it reads while holding is
// delivered, in order, once it forwards again (as TCP retransmits would),
// and so is an end of stream: a client that gave up is then hung up on.
type blackhole struct {
	l  net.Listener
	wg sync.WaitGroup

	mu      sync.Mutex
	holding bool
	resume  chan struct{} // closed while forwarding
	trigger []byte        // a client message containing it starts holding
	conns   []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &blackhole{l: l, resume: make(chan struct{})}
	close(p.resume)
	p.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, s)
			p.mu.Unlock()
			p.wg.Go(func() { p.pipe(s, c, true) })
			p.wg.Go(func() { p.pipe(c, s, false) })
		}
	})
	t.Cleanup(func() {
		_ = l.Close()
		p.forward()
		p.mu.Lock()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// url returns direct, a server's URL, leading through the proxy.
func (p *blackhole) url(t *testing.T, direct string) string {
	u, err := url.Parse(direct)
	require.NoError(t, err)
	u.Host = p.l.Addr().String()
	return u.String()
}

// pipe copies src to dst, waiting while the proxy holds.
func (p *blackhole) pipe(dst, src net.Conn, fromClient bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if fromClient {
				p.mu.Lock()
				if p.trigger != nil && bytes.Contains(buf[:n], p.trigger) {
					p.trigger = nil
					p.holdLocked()
				}
				p.mu.Unlock()
			}
			<-p.gate()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				_ = src.Close()
				return
			}
		}
		if err != nil {
			<-p.gate()
			_ = dst.Close()
			return
		}
	}
}

func (p *blackhole) gate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.resume
}

func (p *blackhole) holdLocked() {
	if !p.holding {
		p.holding = true
		p.resume = make(chan struct{})
	}
}

// hold stops forwarding, in both directions, on every connection.
func (p *blackhole) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holdLocked()
}

// holdAt makes the first client message containing s start holding, s
// included.
func (p *blackhole) holdAt(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trigger = []byte(s)
}

// forward delivers what was held and forwards again.
func (p *blackhole) forward() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.trigger = nil
	if p.holding {
		p.holding = false
		close(p.resume)
	}
}

// The bounds of the blackhole tests: every call gets callTimeout and must
// return before callTimeout + testGrace + slack (slack: scheduling on a
// loaded machine under -race, never a timing of the datastore).
const (
	callTimeout = time.Second
	testGrace   = 300 * time.Millisecond
	slack       = 1500 * time.Millisecond
)

// bounded runs call with a ctx of callTimeout and reports whether it
// returned before callTimeout + testGrace + slack.
type bounded struct {
	t    *testing.T
	wg   sync.WaitGroup
	mu   sync.Mutex
	late []string
}

func (b *bounded) run(name string, call func(ctx context.Context) error) <-chan error {
	done := make(chan error, 1)
	b.wg.Go(func() {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		err := call(ctx)
		if back := time.Now(); back.After(start.Add(callTimeout + testGrace + slack)) {
			b.mu.Lock()
			b.late = append(b.late, fmt.Sprintf("%s returned %v after it started, past ctx %v + grace %v + slack %v (err: %v)",
				name, back.Sub(start), callTimeout, testGrace, slack, err))
			b.mu.Unlock()
		}
		done <- err
	})
	return done
}

// wait waits for every call, and mends the network to free the calls still
// blocked (so that the test ends) when they do not return in time.
func (b *bounded) wait(p *blackhole) {
	b.t.Helper()
	all := make(chan struct{})
	go func() { b.wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-time.After(3 * (callTimeout + testGrace + slack)):
		p.forward()
		<-all
		b.t.Errorf("calls still blocked %v after they started; released by forwarding", 3*(callTimeout+testGrace+slack))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, l := range b.late {
		b.t.Error(l)
	}
	b.late = nil
}

// blackholeHost opens a host in shared mode through a blackhole proxy.
func blackholeHost(t *testing.T) (*blackhole, *repo.Repo, *repo.Repo) {
	t.Helper()
	direct := pgtest.URL(t)
	p := newBlackhole(t, hostOf(t, direct))
	ds, err := pgds.Open(t.Context(), p.url(t, direct))
	require.NoError(t, err)
	t.Cleanup(func() { ds.Close() })
	r, err := repo.New(t.Context(), ds, repo.WithShared(), repo.WithSharedGrace(testGrace), repo.WithQuotaMaxBytes(1<<20))
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	_, check := sharedStore(t, direct)
	return p, r, check
}

func hostOf(t *testing.T, u string) string {
	parsed, err := url.Parse(u)
	require.NoError(t, err)
	return parsed.Host
}

// A host whose network stops forwarding at a ROLLBACK (the end of every
// read-only call and of every change that writes nothing): the call and the
// calls waiting behind it return within their ctx and the grace; the host
// goes on once the network does.
func TestShared_BlackholeAtRollbackBoundsEveryCall(t *testing.T) {
	p, r, check := blackholeHost(t)
	ctx := t.Context()
	require.NoError(t, r.PutBlock(ctx, datastore.NewKey("/a"), []byte("kept")))

	p.holdAt("rollback")
	b := &bounded{t: t}
	first := b.run("Verify (ends in ROLLBACK)", r.Verify)
	var behind []<-chan error
	for i := range 3 {
		behind = append(behind, b.run(fmt.Sprintf("PutBlock %d behind it", i), func(ctx context.Context) error {
			return r.PutBlock(ctx, datastore.NewKey(fmt.Sprintf("/b%d", i)), []byte("maybe"))
		}))
	}
	b.run("Reserve too much (ends in ROLLBACK)", func(ctx context.Context) error { return r.Reserve(ctx, 2<<20) })
	b.wait(p)
	<-first
	for _, c := range behind {
		<-c // any outcome: the network was down
	}

	p.forward()
	require.NoError(t, r.PutBlock(ctx, datastore.NewKey("/c"), []byte("after")), "the host goes on once the network does")
	requireBlocks(t, check, map[string]string{"/a": "kept", "/c": "after"})
	require.NoError(t, r.Verify(ctx))
	require.NoError(t, check.Verify(ctx))
}

// The same at a COMMIT: the change's outcome is unknown (ErrWriteFailed),
// every call returns in time, nothing acknowledged is lost.
func TestShared_BlackholeAtCommitBoundsEveryCall(t *testing.T) {
	p, r, check := blackholeHost(t)
	ctx := t.Context()
	require.NoError(t, r.PutBlock(ctx, datastore.NewKey("/a"), []byte("kept")))

	p.holdAt("commit")
	b := &bounded{t: t}
	first := b.run("PutBlock (COMMIT held)", func(ctx context.Context) error {
		return r.PutBlock(ctx, datastore.NewKey("/unknown"), []byte("maybe"))
	})
	for i := range 3 {
		b.run(fmt.Sprintf("Release %d behind it", i), func(ctx context.Context) error { return r.Release(ctx, 1) })
	}
	b.wait(p)
	err := <-first
	require.ErrorIs(t, err, repo.ErrWriteFailed, "a COMMIT without an answer has an unknown outcome")
	assert.Contains(t, err.Error(), "later calls need nothing")

	p.forward()
	require.NoError(t, r.PutBlock(ctx, datastore.NewKey("/c"), []byte("after")), "the host goes on once the network does")
	requireBlocks(t, check, map[string]string{"/a": "kept", "/c": "after"})
	require.NoError(t, r.Verify(ctx))
	require.NoError(t, check.Verify(ctx))
}

// Hosts working while the network stops forwarding at a random point for
// longer than any call's ctx: every call returns within its ctx and the
// grace, the host goes on afterwards, and every acknowledged write is there.
func TestShared_BlackholeAtRandomPointBoundsEveryCall(t *testing.T) {
	p, r, check := blackholeHost(t)
	ctx := t.Context()

	var mu sync.Mutex
	acked := map[string]string{} // acknowledged puts
	gone := map[string]bool{}    // acknowledged deletes
	unknown := map[string]bool{} // failed: either outcome
	const workers = 4
	stop := make(chan struct{})
	b := &bounded{t: t}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("/w%d/%d", w, i)
				val := fmt.Sprintf("v%d.%d", w, i)
				err := <-b.run("PutBlock "+key, func(ctx context.Context) error {
					return r.PutBlock(ctx, datastore.NewKey(key), []byte(val))
				})
				mu.Lock()
				if err == nil {
					acked[key] = val
				} else {
					unknown[key] = true
				}
				mu.Unlock()
				if i%3 == 2 && err == nil {
					err := <-b.run("DeleteBlock "+key, func(ctx context.Context) error {
						return r.DeleteBlock(ctx, datastore.NewKey(key))
					})
					mu.Lock()
					delete(acked, key)
					if err == nil {
						gone[key] = true
					} else {
						unknown[key] = true
					}
					mu.Unlock()
				}
				if i%5 == 4 {
					<-b.run("Verify", r.Verify)
				}
			}
		})
	}
	// Hold at a random point, longer than a call may take; then forward.
	time.Sleep(time.Duration(rand.N(300)) * time.Millisecond) // a random point, not synchronisation
	p.hold()
	time.Sleep(callTimeout + testGrace + slack + 500*time.Millisecond) // the outage
	p.forward()
	// Let the host work again, then stop.
	progress := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked) + len(gone)
	}
	before := progress()
	require.Eventually(t, func() bool { return progress() >= before+2*workers }, 20*time.Second, 10*time.Millisecond,
		"the host goes on once the network does")
	close(stop)
	wg.Wait()
	b.wait(p)

	mu.Lock()
	defer mu.Unlock()
	for key, val := range acked {
		got, err := check.GetBlock(ctx, datastore.NewKey(key))
		require.NoError(t, err, "acknowledged block %s", key)
		assert.Equal(t, val, string(got))
	}
	for key := range gone {
		_, err := check.GetBlock(ctx, datastore.NewKey(key))
		assert.True(t, errors.Is(err, datastore.ErrNotFound), "acknowledged delete of %s: %v", key, err)
	}
	t.Logf("%d blocks kept, %d deleted, %d calls of unknown outcome", len(acked), len(gone), len(unknown))
	require.NoError(t, r.Verify(ctx))
	require.NoError(t, check.Verify(ctx))
}

func requireBlocks(t *testing.T, r *repo.Repo, want map[string]string) {
	t.Helper()
	for key, val := range want {
		got, err := r.GetBlock(t.Context(), datastore.NewKey(key))
		require.NoError(t, err, "block %s", key)
		assert.Equal(t, val, string(got), "block %s", key)
	}
}

// A transaction whose ROLLBACK gets no answer in time gives up with its ctx
// and closes its connection: the pool never hands it out again.
func TestTxn_DiscardWithoutAnswerClosesTheConnection(t *testing.T) {
	direct := pgtest.URL(t)
	p := newBlackhole(t, hostOf(t, direct))
	cfg, err := pgxpool.ParseConfig(p.url(t, direct))
	require.NoError(t, err)
	cfg.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	ds, err := pgds.New(t.Context(), pool)
	require.NoError(t, err)
	pid := func() (n int) {
		require.NoError(t, pool.QueryRow(t.Context(), "SELECT pg_backend_pid()").Scan(&n))
		return n
	}
	before := pid()

	txn, err := ds.NewTransaction(t.Context(), false)
	require.NoError(t, err)
	require.NoError(t, txn.Put(t.Context(), datastore.NewKey("/k"), []byte("v")))
	p.holdAt("rollback")
	ctx, cancel := context.WithTimeout(t.Context(), testGrace)
	defer cancel()
	txn.Discard(ctx)
	require.Error(t, ctx.Err(), "the ROLLBACK got no answer: Discard returned with its ctx")
	p.forward()

	assert.NotEqual(t, before, pid(), "the connection whose ROLLBACK got no answer was closed, not reused")
	_, err = ds.Get(t.Context(), datastore.NewKey("/k"))
	assert.ErrorIs(t, err, datastore.ErrNotFound, "the transaction was not committed")
}

// A host cut off while it holds the counters' lock (its COMMIT held by the
// network) stops the other hosts' changes only until the server ends its
// session: here idle_in_transaction_session_timeout, set in its connection
// string, does after 1 s, and another host's change goes through.
func TestShared_BlackholeHoldingTheLockIsBoundedByTheServer(t *testing.T) {
	direct := pgtest.URL(t)
	p := newBlackhole(t, hostOf(t, direct))
	u, err := url.Parse(p.url(t, direct))
	require.NoError(t, err)
	q := u.Query()
	q.Set("idle_in_transaction_session_timeout", "1000")
	u.RawQuery = q.Encode()
	ds, err := pgds.Open(t.Context(), u.String())
	require.NoError(t, err)
	t.Cleanup(func() { ds.Close() })
	r, err := repo.New(t.Context(), ds, repo.WithShared(), repo.WithSharedGrace(testGrace), repo.WithQuotaMaxBytes(1<<20))
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	_, other := sharedStore(t, direct)

	p.holdAt("commit")
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	defer cancel()
	err = r.PutBlock(ctx, datastore.NewKey("/cut"), []byte("maybe"))
	require.Error(t, err, "its COMMIT never arrived")

	octx, ocancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer ocancel()
	require.NoError(t, other.PutBlock(octx, datastore.NewKey("/other"), []byte("x")),
		"another host waits for the lock until the server ends the cut-off session")
	p.forward()
	require.NoError(t, other.Verify(t.Context()))
}

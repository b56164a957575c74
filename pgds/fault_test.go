package pgds_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/pgds"
	"github.com/stowage/stowage/pgds/internal/pgtest"
)

func TestOpen_RefusedConnectionFailsQuickly(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close()) // nothing listens there now

	start := time.Now()
	_, err = pgds.Open(t.Context(), "postgres://u:p@"+addr+"/db?sslmode=disable&connect_timeout=2")
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second)
	var connErr *pgconn.ConnectError
	assert.ErrorAs(t, err, &connErr, "%v", err)
	assert.Contains(t, err.Error(), "pgds: ")
}

// A server that accepts and never answers: connect_timeout ends the wait.
func TestOpen_SilentServerTimesOut(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			_ = c.Close()
		}
	})

	start := time.Now()
	_, err = pgds.Open(t.Context(), "postgres://u:p@"+l.Addr().String()+"/db?sslmode=disable&connect_timeout=1")
	require.Error(t, err)
	assert.Less(t, time.Since(start), 5*time.Second)
	assert.ErrorIs(t, err, context.DeadlineExceeded, "%v", err)
}

func TestOpen_WrongPassword(t *testing.T) {
	u, err := url.Parse(pgtest.URL(t))
	require.NoError(t, err)
	u.User = url.UserPassword(u.User.Username(), "not-the-password")
	_, err = pgds.Open(t.Context(), u.String())
	if err == nil {
		t.Skip("the server does not check passwords")
	}
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, "%v", err)
	assert.Equal(t, "28P01", pgErr.Code, "invalid_password")
	assert.Contains(t, err.Error(), "password authentication failed")
}

// terminateOthers ends every other session of the database of url, as an
// administrator or a restart would.
func terminateOthers(t *testing.T, url string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	require.NoError(t, conn.QueryRow(t.Context(), `
		SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
		WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n))
	return n
}

// Each call after the sessions were killed fails with an error or succeeds
// on a new connection; within a few calls the pool has reconnected.
func TestConnectionsDropped_CallsFailCleanlyThenRecover(t *testing.T) {
	d, url := openDS(t)
	ctx := t.Context()
	require.NoError(t, d.Put(ctx, key("/a"), []byte("1")))
	require.Positive(t, terminateOthers(t, url))

	var errs []error
	for range 10 {
		v, err := d.Get(ctx, key("/a"))
		if err == nil {
			assert.Equal(t, []byte("1"), v)
			break
		}
		errs = append(errs, err)
	}
	require.Less(t, len(errs), 10, "no recovery: %v", errs)
	for _, err := range errs {
		assert.NotErrorIs(t, err, datastore.ErrNotFound, "a lost connection read as a missing key")
	}
	require.NoError(t, d.Put(ctx, key("/b"), []byte("2")))
	res, err := d.Query(ctx, query.Query{})
	require.NoError(t, err)
	es, err := res.Rest()
	require.NoError(t, err)
	assert.Len(t, es, 2)
}

// A batch whose session dies in the middle of its statements writes
// nothing.
func TestBatch_SessionKilledMidBatchWritesNothing(t *testing.T) {
	d, url := openDS(t)
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, `
		CREATE FUNCTION die() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF NEW.key = '/poison' THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER die BEFORE INSERT ON datastore FOR EACH ROW EXECUTE FUNCTION die();`)
	require.NoError(t, err)

	b, err := d.Batch(ctx)
	require.NoError(t, err)
	for _, k := range []string{"/a", "/b", "/poison", "/c"} {
		require.NoError(t, b.Put(ctx, key(k), []byte(k)))
	}
	err = b.Commit(ctx)
	require.Error(t, err)
	assert.NotErrorIs(t, err, pgds.ErrCommitUnknown, "it died before COMMIT: %v", err)

	var n int
	require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM datastore").Scan(&n))
	assert.Zero(t, n, "a batch was half-written")
	require.NoError(t, d.Put(ctx, key("/after"), nil), "the pool did not recover")
}

// A connection lost after COMMIT was sent: the outcome is reported as
// unknown (here the server did commit).
func TestBatch_ConnectionLostDuringCommitIsErrCommitUnknown(t *testing.T) {
	direct := pgtest.URL(t)
	u, err := url.Parse(direct)
	require.NoError(t, err)
	u.Host = cutAtCommit(t, u.Host)
	d, err := pgds.Open(t.Context(), u.String())
	require.NoError(t, err)
	defer d.Close()

	ctx := t.Context()
	b, err := d.Batch(ctx)
	require.NoError(t, err)
	require.NoError(t, b.Put(ctx, key("/a"), []byte("1")))
	require.NoError(t, b.Delete(ctx, key("/b")))
	err = b.Commit(ctx)
	require.ErrorIs(t, err, pgds.ErrCommitUnknown)
	assert.NotErrorIs(t, err, pgds.ErrSerialization)

	conn, err := pgx.Connect(ctx, direct)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	// The server got the COMMIT; it may still be finishing it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		var n int
		require.NoError(t, conn.QueryRow(ctx, "SELECT count(*) FROM datastore WHERE key = '/a'").Scan(&n))
		if n == 1 {
			break
		}
		require.True(t, time.Now().Before(deadline), "the batch never appeared")
	}

}

// cutAtCommit starts a TCP proxy to target that, when a client sends a
// message containing "commit", forwards it and then closes the client's
// connection without its answer. It returns the proxy's address.
func cutAtCommit(t *testing.T, target string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	track := func(c net.Conn) {
		mu.Lock()
		defer mu.Unlock()
		conns = append(conns, c)
	}
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", target)
			if err != nil {
				_ = client.Close()
				continue
			}
			track(client)
			track(server)
			wg.Go(func() {
				_, _ = io.Copy(client, server)
				_ = client.Close() // the server hung up: so does the proxy
			})
			wg.Go(func() {
				buf := make([]byte, 64<<10)
				for {
					n, err := client.Read(buf)
					if n > 0 {
						if _, werr := server.Write(buf[:n]); werr != nil {
							return
						}
						if bytes.Contains(buf[:n], []byte("commit")) {
							// The server keeps its end and commits;
							// the client never hears back.
							_ = client.Close()
							_, _ = io.Copy(io.Discard, server)
							return
						}
					}
					if err != nil {
						_ = server.Close()
						return
					}
				}
			})
		}
	})
	return l.Addr().String()
}

func TestErrors_AreWrapped(t *testing.T) {
	d, url := openDS(t)
	conn, err := pgx.Connect(t.Context(), url)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(t.Context(), "DROP TABLE datastore")
	require.NoError(t, err)
	err = d.Put(t.Context(), key("/a"), nil)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	assert.Equal(t, "42P01", pgErr.Code, "undefined_table")
	assert.Contains(t, err.Error(), "pgds: put /a: ")
	assert.NotErrorIs(t, err, pgds.ErrSerialization)
}

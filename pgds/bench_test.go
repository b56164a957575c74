package pgds_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/pgds"
	"github.com/stowage/stowage/pgds/internal/pgtest"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// The statements pgds runs, written out for the raw pgx baselines.
const (
	rawPut = `INSERT INTO datastore (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value`
	rawDel = `DELETE FROM datastore WHERE key = $1`
	rawGet = `SELECT value FROM datastore WHERE key = $1`
)

// A reservation-style change: an availability and a reservation record,
// the quota counter, and the delete of an older reservation.
type change struct {
	puts map[string][]byte
	del  string
}

func reservationChange(i int) change {
	return change{
		puts: map[string][]byte{
			"/meta/sales/reservations/a1":                       []byte(`{"id":"a1","size":1048576,"duration":3600,"minPrice":"1","maxCollateral":"1","totalSize":8388608}`),
			fmt.Sprintf("/meta/sales/reservations/a1/r%06d", i): []byte(`{"id":"r","availabilityId":"a1","size":65536,"requestId":"00","slotIndex":1,"slotSize":65536,"used":0}`),
			"/meta/quota/reserved":                              {0, 0, 0, 0, 0, 0, 1, 0},
		},
		del: fmt.Sprintf("/meta/sales/reservations/a1/r%06d", i-1),
	}
}

func benchSetup(b *testing.B) (*pgds.Datastore, *pgxpool.Pool) {
	pool := newPool(b)
	d, err := pgds.New(b.Context(), pool)
	require.NoError(b, err)
	require.NoError(b, d.Put(b.Context(), datastore.NewKey("/k"), make([]byte, 200)))
	return d, pool
}

// BenchmarkBatch compares a pgds batch with a raw pgx transaction sending
// the same statements the same way (BEGIN, one pipelined batch, COMMIT).
func BenchmarkBatch(b *testing.B) {
	d, pool := benchSetup(b)
	ctx := context.Background()
	b.Run("pgds", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			c := reservationChange(i)
			batch, err := d.Batch(ctx)
			if err != nil {
				b.Fatal(err)
			}
			for k, v := range c.puts {
				_ = batch.Put(ctx, datastore.NewKey(k), v)
			}
			_ = batch.Delete(ctx, datastore.NewKey(c.del))
			if err := batch.Commit(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pgx", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			c := reservationChange(i)
			tx, err := pool.Begin(ctx)
			if err != nil {
				b.Fatal(err)
			}
			var pb pgx.Batch
			for k, v := range c.puts {
				pb.Queue(rawPut, k, v)
			}
			pb.Queue(rawDel, c.del)
			if err := tx.SendBatch(ctx, &pb).Close(); err != nil {
				b.Fatal(err)
			}
			if err := tx.Commit(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGet compares pgds Get with the raw SELECT.
func BenchmarkGet(b *testing.B) {
	d, pool := benchSetup(b)
	ctx := context.Background()
	k := datastore.NewKey("/k")
	b.Run("pgds", func(b *testing.B) {
		for b.Loop() {
			if _, err := d.Get(ctx, k); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pgx", func(b *testing.B) {
		for b.Loop() {
			var v []byte
			if err := pool.QueryRow(ctx, rawGet, "/k").Scan(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkReservationCycle times the reservation cycle (ReserveSlot, two
// Store.PutBlock of 1 KiB, DeleteReservation) through a repo in shared mode
// on pgds, beside raw pgx running the very statements the cycle ran (as
// recorded from it) in SERIALIZABLE transactions, one per step, and beside
// an embedded LevelDB with fsync (repo.Open).
func BenchmarkReservationCycle(b *testing.B) {
	ctx := context.Background()
	url := pgtest.URL(b)
	h, s, _ := hookedStore(b, url)
	_, err := s.AddAvailability(ctx, pinnedAvailability(0, 1<<18))
	require.NoError(b, err)
	i := 0
	cycle := func(b *testing.B, s *reservations.Store) {
		i++
		var req stowage.RequestID
		binary.BigEndian.PutUint64(req[:], uint64(i))
		if err := reservationCycle(ctx, s, req, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("pgds", func(b *testing.B) {
		for b.Loop() {
			cycle(b, s)
		}
	})

	var trace []txnTrace
	h.set(func(d *hookDS) { d.trace = &trace })
	cycle(b, s)
	h.set(func(d *hookDS) { d.trace = nil })
	require.Len(b, trace, 4, "one transaction per step")
	pool := newPoolAt(b, url)
	b.Run("pgx", func(b *testing.B) {
		for b.Loop() {
			for _, steps := range trace {
				if err := replay(ctx, pool, steps); err != nil {
					b.Fatal(err)
				}
			}
		}
	})

	b.Run("leveldb", func(b *testing.B) {
		r, err := repo.Open(ctx, b.TempDir(), repo.WithQuotaMaxBytes(1<<31))
		require.NoError(b, err)
		defer r.Close()
		s := reservations.New(r)
		_, err = s.AddAvailability(ctx, pinnedAvailability(0, 1<<18))
		require.NoError(b, err)
		for b.Loop() {
			cycle(b, s)
		}
	})
}

func newPoolAt(b testing.TB, url string) *pgxpool.Pool {
	pool, err := pgxpool.New(b.Context(), url)
	require.NoError(b, err)
	b.Cleanup(pool.Close)
	return pool
}

// replay runs the statements pgds ran for the recorded transaction.
func replay(ctx context.Context, pool *pgxpool.Pool, steps txnTrace) error {
	tx, err := pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.Serializable})
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	for _, o := range steps {
		switch o.kind {
		case "get":
			var v []byte
			err = tx.QueryRow(ctx, rawGet, o.key).Scan(&v)
		case "has":
			var ok bool
			err = tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM datastore WHERE key = $1)`, o.key).Scan(&ok)
		case "size":
			var n int
			err = tx.QueryRow(ctx, `SELECT octet_length(value) FROM datastore WHERE key = $1`, o.key).Scan(&n)
		case "put":
			_, err = tx.Exec(ctx, rawPut, o.key, o.value)
		case "delete":
			_, err = tx.Exec(ctx, rawDel, o.key)
		case "query":
			// What pgds sends the server for a prefix in key order.
			byKey := len(o.q.Orders) == 0
			if len(o.q.Orders) == 1 {
				switch o.q.Orders[0].(type) {
				case query.OrderByKey, *query.OrderByKey:
					byKey = true
				}
			}
			if len(o.q.Filters) > 0 || !byKey || o.q.Prefix == "" || o.q.Offset != 0 || o.q.Limit != 0 {
				return fmt.Errorf("cannot replay %s", o.q)
			}
			cols := "key, value"
			if o.q.KeysOnly {
				cols = "key"
			}
			lo := o.q.Prefix + "/"
			hi := o.q.Prefix + "0" // '/' + 1
			var rows pgx.Rows
			rows, err = tx.Query(ctx, `SELECT `+cols+` FROM datastore WHERE key >= $1 AND key < $2 ORDER BY key LIMIT $3`, lo, hi, 1000)
			if err == nil {
				for rows.Next() {
				}
				rows.Close()
				err = rows.Err()
			}
		}
		if errors.Is(err, pgx.ErrNoRows) {
			err = nil
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", o.kind, o.key, err)
		}
	}
	return tx.Commit(ctx)
}

// BenchmarkFleet runs the reservation cycle in 1, 2 and 4 processes of 8
// goroutines each (this binary re-executed), on an availability of each
// process's own ("distinct") or all on one ("shared"), and reports calls
// per second over the fleet and retried transactions per call (mean, 99th
// percentile and maximum over the calls); "leveldb"
// is one process of 8 goroutines on an embedded LevelDB with fsync. An op
// is one cycle (4 calls). Run with a fixed count: -benchtime=800x.
func BenchmarkFleet(b *testing.B) {
	for _, mode := range []string{"distinct", "shared"} {
		for _, procs := range []int{1, 2, 4, 8} {
			b.Run(fmt.Sprintf("%s/procs=%d", mode, procs), func(b *testing.B) {
				benchFleet(b, mode, procs)
			})
		}
	}
	b.Run("leveldb", func(b *testing.B) {
		ctx := context.Background()
		r, err := repo.Open(ctx, b.TempDir(), repo.WithQuotaMaxBytes(1<<31))
		require.NoError(b, err)
		defer r.Close()
		s := reservations.New(r)
		_, err = s.AddAvailability(ctx, pinnedAvailability(0, 1<<18))
		require.NoError(b, err)
		n := max(1, b.N/fleetGoroutines)
		start := time.Now()
		var wg sync.WaitGroup
		for g := range fleetGoroutines {
			wg.Go(func() {
				for i := range n {
					var req stowage.RequestID
					binary.BigEndian.PutUint64(req[:], uint64(g))
					binary.BigEndian.PutUint64(req[8:], uint64(i))
					if err := reservationCycle(ctx, s, req, 0); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		cycles := float64(n * fleetGoroutines)
		b.ReportMetric(float64(took.Nanoseconds())/cycles, "ns/op")
		b.ReportMetric(4*cycles/took.Seconds(), "calls/s")
	})
}

func benchFleet(b *testing.B, mode string, procs int) {
	url := pgtest.URL(b)
	s, _ := sharedStore(b, url)
	pins := 1
	if mode == "distinct" {
		pins = procs
	}
	for i := range pins {
		// The quota is 1 MiB: 8 processes get 128 KiB each, room for
		// their 8 goroutines' slots of 4 KiB.
		_, err := s.AddAvailability(b.Context(), pinnedAvailability(i, 1<<20/uint64(max(pins, 4))))
		require.NoError(b, err)
	}
	n := max(1, b.N/(procs*fleetGoroutines))
	ps, events := startFleet(b, procs, func(i int) []string {
		pin := 0
		if mode == "distinct" {
			pin = i
		}
		return []string{envFleetURL + "=" + url, envFleetRole + "=cycle", envFleetProc + "=" + strconv.Itoa(i),
			envFleetPin + "=" + strconv.Itoa(pin), envFleetN + "=" + strconv.Itoa(n)}
	})
	var took time.Duration
	var conflicts uint64
	book := newFleetBook(procs)
	ready, exited := 0, 0
	for ready < procs {
		ev := next(b, events)
		require.NotNil(b, ev.fields, "child %d exited: %s", ev.proc, ps[ev.proc].output())
		if ev.fields[0] == "ready" {
			ready++
		}
	}
	for _, p := range ps {
		_, err := io.WriteString(p.stdin, "go\n")
		require.NoError(b, err)
	}
	for exited < procs {
		ev := next(b, events)
		switch {
		case ev.fields == nil:
			exited++
			require.NoError(b, ps[ev.proc].err, ps[ev.proc].output())
		case ev.fields[0] == "took":
			d, err := strconv.ParseInt(ev.fields[1], 10, 64)
			require.NoError(b, err)
			took = max(took, time.Duration(d))
		case ev.fields[0] == "conflicts":
			c, err := strconv.ParseUint(ev.fields[1], 10, 64)
			require.NoError(b, err)
			conflicts += c
		case ev.fields[0] == "retries":
			book.add(b, ev)
		}
	}
	_, p99, most := retryStats(book.retries)
	cycles := float64(n * procs * fleetGoroutines)
	b.ReportMetric(float64(took.Nanoseconds())/cycles, "ns/op")
	b.ReportMetric(4*cycles/took.Seconds(), "calls/s")
	b.ReportMetric(float64(conflicts)/(4*cycles), "retries/call")
	b.ReportMetric(float64(p99), "p99-retries/call")
	b.ReportMetric(float64(most), "max-retries/call")
}

// BenchmarkChange times one change of the kind shared mode makes (lock and
// read the counters, read a record, write it, two more records and the
// counters, delete one) through pgds, beside raw pgx doing the minimum:
// one round trip to lock the rows (SELECT ... FOR UPDATE in READ
// COMMITTED) and read them, one to write and commit.
func BenchmarkChange(b *testing.B) {
	d, pool := benchSetup(b)
	ctx := context.Background()
	counters := []datastore.Key{datastore.NewKey("/meta/quota/used"), datastore.NewKey("/meta/quota/reserved")}
	for _, k := range counters {
		require.NoError(b, d.Put(ctx, k, make([]byte, 8)))
	}
	require.NoError(b, d.Put(ctx, datastore.NewKey("/meta/sales/reservations/a1"), []byte("{}")))
	prefetch := append(counters, datastore.NewKey("/meta/sales/reservations/a1"))
	b.Run("pgds", func(b *testing.B) {
		i := 0
		for b.Loop() {
			i++
			c := reservationChange(i)
			tx, err := d.NewLockedTransaction(ctx, false, counters, prefetch)
			if err != nil {
				b.Fatal(err)
			}
			for _, k := range counters {
				if _, err := tx.Get(ctx, k); err != nil {
					b.Fatal(err)
				}
			}
			if _, err := tx.Get(ctx, datastore.NewKey("/meta/sales/reservations/a1")); err != nil {
				b.Fatal(err)
			}
			for k, v := range c.puts {
				_ = tx.Put(ctx, datastore.NewKey(k), v)
			}
			_ = tx.Put(ctx, counters[0], make([]byte, 8))
			_ = tx.Delete(ctx, datastore.NewKey(c.del))
			if err := tx.Commit(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("pgx", func(b *testing.B) {
		i := 0
		keys := []string{"/meta/quota/reserved", "/meta/quota/used", "/meta/sales/reservations/a1"}
		for b.Loop() {
			i++
			c := reservationChange(i)
			conn, err := pool.Acquire(ctx)
			if err != nil {
				b.Fatal(err)
			}
			var read pgx.Batch
			read.Queue("BEGIN")
			read.Queue(`SELECT key, value FROM datastore WHERE key = ANY($1) ORDER BY key FOR UPDATE`, keys).Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var k string
					var v []byte
					if err := rows.Scan(&k, &v); err != nil {
						return err
					}
				}
				return rows.Err()
			})
			if err := conn.SendBatch(ctx, &read).Close(); err != nil {
				b.Fatal(err)
			}
			var write pgx.Batch
			for k, v := range c.puts {
				write.Queue(rawPut, k, v)
			}
			write.Queue(rawPut, "/meta/quota/used", make([]byte, 8))
			write.Queue(rawDel, c.del)
			write.Queue("COMMIT")
			if err := conn.SendBatch(ctx, &write).Close(); err != nil {
				b.Fatal(err)
			}
			conn.Release()
		}
	})
}

package pgds_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/ipfs/go-datastore"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/pgds"
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

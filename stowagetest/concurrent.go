package stowagetest

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"testing"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/reservations"
)

// blockData is the content the suite writes under key: n bytes derived from
// the key, so a read can tell a whole value from a torn or misplaced one.
func blockData(key datastore.Key, n int) []byte {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key.String()))
	seed := h.Sum32()
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(seed>>(8*(i%4))) + byte(i)
	}
	return b
}

// SubtestConcurrentIO checks that blocks and records written from several
// goroutines, while others read and scan, are all there afterwards and
// that the books balance: see the package doc. Run it with -race.
func SubtestConcurrentIO(t *testing.T, open func(t testing.TB) datastore.Batching, opts ...Option) {
	concurrentIO(t, apply(opts), open)
}

func concurrentIO(t testing.TB, c *config, open func(t testing.TB) datastore.Batching) {
	const writers, rounds, slotSize = 4, 6, 256
	ctx := t.Context()
	sts := c.open(t, open)
	r := c.newRepo(t, sts)
	s := reservations.New(r)
	one := *uint256.NewInt(1)
	_, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 1 << 20, Duration: 100, MinPrice: one, MaxCollateral: one})
	check(t, err, "add availability")

	type block struct {
		key  datastore.Key
		size int
	}
	blockOf := func(w, i, j int) block {
		return block{datastore.NewKey(fmt.Sprintf("/c/%d/%d/%d", w, i, j)), 50 + 50*j}
	}
	var all []block
	for w := range writers {
		for i := range rounds {
			for j := range 3 {
				all = append(all, blockOf(w, i, j))
			}
		}
	}

	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	var readers, wg sync.WaitGroup
	readers.Go(func() {
		for !stopped() {
			if _, err := s.Availabilities(ctx); err != nil {
				t.Errorf("availabilities while writing: %v", err)
				return
			}
			if _, err := s.Reservations(ctx); err != nil {
				t.Errorf("reservations while writing: %v", err)
				return
			}
		}
	})
	readers.Go(func() {
		for n := 0; !stopped(); n++ {
			b := all[n%len(all)]
			got, err := r.GetBlock(ctx, b.key)
			switch {
			case errors.Is(err, datastore.ErrNotFound):
			case err != nil:
				t.Errorf("get block while writing: %v", err)
				return
			case !bytes.Equal(got, blockData(b.key, b.size)):
				t.Errorf("block %s read while writing: %d bytes, not the %d written", b.key, len(got), b.size)
				return
			}
		}
	})
	scans := map[datastore.Batching]string{sts.meta: "/blocks"} // where blocks are
	if sts.blocks != nil {
		scans = map[datastore.Batching]string{sts.meta: "/none", sts.blocks: ""}
	}
	for ds, blocks := range scans {
		readers.Go(func() {
			for !stopped() {
				for e, err := range datastore.QueryIter(ctx, ds, query.Query{}) {
					if err != nil {
						t.Errorf("raw query while writing: %v", err)
						return
					}
					k, ok := strings.CutPrefix(e.Key, blocks+"/c/")
					if ok && !bytes.Equal(e.Value, blockData(datastore.RawKey("/c/"+k), len(e.Value))) {
						t.Errorf("raw query while writing: %s holds a value the suite did not write", e.Key)
						return
					}
				}
			}
		})
	}

	var mu sync.Mutex
	present := map[datastore.Key]bool{} // acknowledged state of each block
	ack := func(b block, ok bool) {
		mu.Lock()
		present[b.key] = ok
		mu.Unlock()
	}
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				res, err := s.ReserveSlot(ctx, stowage.Slot{RequestID: stowage.RequestID{byte(w)}, Index: uint64(i),
					Ask: stowage.StorageAsk{SlotSize: slotSize, Duration: 10, Reward: one}})
				if err != nil {
					t.Errorf("reserve slot: %v", err)
					return
				}
				for j := range 2 {
					b := blockOf(w, i, j)
					if err := s.PutBlock(ctx, res.ID, b.key, blockData(b.key, b.size)); err != nil {
						t.Errorf("put block of a reservation: %v", err)
						return
					}
					ack(b, true)
				}
				raw := blockOf(w, i, 2)
				if err := r.PutBlock(ctx, raw.key, blockData(raw.key, raw.size)); err != nil {
					t.Errorf("put block: %v", err)
					return
				}
				ack(raw, true)
				if i%2 == 0 {
					continue
				}
				if err := s.DeleteReservation(ctx, res.ID); err != nil {
					t.Errorf("delete reservation: %v", err)
					return
				}
				ack(blockOf(w, i, 0), false)
				ack(blockOf(w, i, 1), false)
				if err := r.DeleteBlock(ctx, raw.key); err != nil {
					t.Errorf("delete block: %v", err)
					return
				}
				ack(raw, false)
			}
		})
	}
	wg.Wait()
	close(stop)
	readers.Wait()
	if t.Failed() {
		t.FailNow()
	}

	check(t, s.Verify(ctx), "verify after concurrent writes")
	fresh := c.newRepo(t, sts)
	check(t, reservations.New(fresh).Verify(ctx), "verify a fresh store after concurrent writes")
	for _, b := range all {
		got, err := fresh.GetBlock(ctx, b.key)
		switch {
		case !present[b.key]:
			if !errors.Is(err, datastore.ErrNotFound) {
				t.Errorf("deleted block %s: %v, want datastore.ErrNotFound", b.key, err)
			}
		case err != nil:
			t.Errorf("acknowledged block %s: %v", b.key, err)
		case !bytes.Equal(got, blockData(b.key, b.size)):
			t.Errorf("acknowledged block %s: %d bytes, not the %d written", b.key, len(got), b.size)
		}
	}
}

package stowagetest

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// Scenario drives a repo and its Store through every kind of change, a
// failure injected at any of its writes leaving the others to fail or not:
// errors are ignored. It adds two availabilities, reserves from both
// (CreateReservation and ReserveSlot, one with collateral), writes blocks
// with Store.PutBlock and repo.PutBlock, releases, modifies, deletes a
// reservation that has blocks, shrinks and deletes an availability and
// deletes a block. Run without failures it leaves one availability and one
// reservation holding a 60-byte block.
func Scenario(ctx context.Context, r *repo.Repo, s *reservations.Store) {
	one, ten := *uint256.NewInt(1), *uint256.NewInt(10)
	a, _ := s.AddAvailability(ctx, reservations.Availability{TotalSize: 500, Duration: 100, MinPrice: one, MaxCollateral: one})
	b, _ := s.AddAvailability(ctx, reservations.Availability{TotalSize: 300, Duration: 100, MinPrice: one, MaxCollateral: ten, TotalCollateral: *uint256.NewInt(25)})
	r1, _ := s.CreateReservation(ctx, a.ID, slotOf(stowage.RequestID{1}, 0, 100))
	// Only b takes a collateral of 10.
	r2, _ := s.ReserveSlot(ctx, stowage.Slot{RequestID: stowage.RequestID{1}, Index: 1,
		Ask: stowage.StorageAsk{SlotSize: 150, Duration: 10, Reward: one, Collateral: ten}})
	r3, _ := s.CreateReservation(ctx, b.ID, slotOf(stowage.RequestID{2}, 0, 100))
	_ = s.PutBlock(ctx, r1.ID, datastore.NewKey("/s/1/0"), make([]byte, 60))
	_ = s.PutBlock(ctx, r2.ID, datastore.NewKey("/s/2/0"), make([]byte, 100))
	_ = s.PutBlock(ctx, r2.ID, datastore.NewKey("/s/2/1"), make([]byte, 50))
	_ = s.Release(ctx, r1.ID, 40)
	_ = r.PutBlock(ctx, datastore.NewKey("/raw/1"), make([]byte, 30))
	_, _ = s.ModifyAvailability(ctx, a.ID, func(a *reservations.Availability) error {
		a.TotalSize += 50
		return nil
	})
	_ = s.DeleteReservation(ctx, r2.ID)
	_, _ = s.ModifyAvailability(ctx, b.ID, func(a *reservations.Availability) error {
		a.Size = 40
		return nil
	})
	_ = s.DeleteReservation(ctx, r3.ID)
	_ = s.DeleteAvailability(ctx, b.ID)
	_ = r.DeleteBlock(ctx, datastore.NewKey("/raw/1"))
}

// SubtestFailureAtEveryWrite runs Scenario once per write it makes, with
// that write failing, and checks that the quota in memory is what a fresh
// repo reads and that a fresh Store's Verify passes: see the package doc.
func SubtestFailureAtEveryWrite(t *testing.T, open func(t testing.TB) datastore.Batching, opts ...Option) {
	failureAtEveryWrite(t, apply(opts), open)
}

func failureAtEveryWrite(t testing.TB, c *config, open func(t testing.TB) datastore.Batching) {
	ctx := t.Context()
	run := func(at int64) int64 {
		base := c.open(t, open)
		f := &faults{at: at}
		r := c.newRepo(t, base.wrap(f))
		Scenario(ctx, r, reservations.New(r))
		if at == 0 {
			return f.n.Load()
		}
		fresh := c.newRepo(t, base)
		if got, want := r.Quota(), fresh.Quota(); got != want {
			t.Fatalf("failure at write %d: quota in memory %+v, read back %+v", at, got, want)
		}
		if base.blocks != nil {
			overCountOnly(t, at, fresh, base.blocks)
		} else if err := reservations.New(fresh).Verify(ctx); err != nil {
			t.Fatalf("failure at write %d: a fresh store: %v", at, err)
		}
		return f.n.Load()
	}
	n := run(0)
	if n == 0 {
		t.Fatalf("the scenario wrote nothing")
	}
	for k := int64(1); k <= n; k++ {
		run(k)
	}
}

// overCountOnly checks what a repo with a separate block store promises
// after a failure: Reserved balances the records, and Used counts at least
// the stored blocks (blocks are deleted before and written after the
// metadata that counts them, so Used may over-count, which Verify reports).
func overCountOnly(t testing.TB, at int64, r *repo.Repo, blocks datastore.Batching) {
	ctx := t.Context()
	s := reservations.New(r)
	as, err := s.Availabilities(ctx)
	check(t, err, "list availabilities")
	rs, err := s.Reservations(ctx)
	check(t, err, "list reservations")
	var held uint64
	for _, a := range as {
		held += a.Size
	}
	for _, r := range rs {
		held += r.Size
	}
	q := r.Quota()
	if q.Reserved != held {
		t.Fatalf("failure at write %d: a fresh repo has Reserved %d, its records hold %d", at, q.Reserved, held)
	}
	var stored uint64
	for e, err := range datastore.QueryIter(ctx, blocks, query.Query{}) {
		check(t, err, "query blocks")
		stored += uint64(len(e.Value))
	}
	if q.Used < stored {
		t.Fatalf("failure at write %d: a fresh repo has Used %d, its blocks hold %d", at, q.Used, stored)
	}
}

// faults fails the at-th write (Put, Delete or Commit, of the store, a
// batch or a transaction) with ErrInjected.
type faults struct {
	at int64 // 0: none
	n  atomic.Int64
}

func (f *faults) write() error {
	if f.n.Add(1) == f.at {
		return ErrInjected
	}
	return nil
}

// wrap injects f's failures into the metadata store only: a failure
// writing a separate block store after the metadata that counts its blocks
// leaves Used over-counted by design (see repo.WithBlockstore).
func (s stores) wrap(f *faults) stores {
	return stores{meta: wrap(s.meta, f), blocks: s.blocks}
}

// wrap returns ds with f's failures, keeping datastore.TxnDatastore if ds
// has it.
func wrap(ds datastore.Batching, f *faults) datastore.Batching {
	w := &faulty{Batching: ds, f: f}
	if tds, ok := ds.(datastore.TxnDatastore); ok {
		return &faultyTxnStore{faulty: w, tds: tds}
	}
	return w
}

type faulty struct {
	datastore.Batching
	f *faults
}

func (d *faulty) Put(ctx context.Context, k datastore.Key, v []byte) error {
	if err := d.f.write(); err != nil {
		return err
	}
	return d.Batching.Put(ctx, k, v)
}

func (d *faulty) Delete(ctx context.Context, k datastore.Key) error {
	if err := d.f.write(); err != nil {
		return err
	}
	return d.Batching.Delete(ctx, k)
}

func (d *faulty) Batch(ctx context.Context) (datastore.Batch, error) {
	b, err := d.Batching.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &faultyWrite[datastore.Batch]{w: b, f: d.f}, nil
}

type faultyTxnStore struct {
	*faulty
	tds datastore.TxnDatastore
}

func (d *faultyTxnStore) NewTransaction(ctx context.Context, readOnly bool) (datastore.Txn, error) {
	txn, err := d.tds.NewTransaction(ctx, readOnly)
	if err != nil {
		return nil, err
	}
	return &faultyTxn{faultyWrite: faultyWrite[datastore.Txn]{w: txn, f: d.f}, Txn: txn}, nil
}

// faultyWrite fails the writes of a batch or transaction.
type faultyWrite[W interface {
	datastore.Write
	Commit(context.Context) error
}] struct {
	w W
	f *faults
}

func (b *faultyWrite[W]) Put(ctx context.Context, k datastore.Key, v []byte) error {
	if err := b.f.write(); err != nil {
		return err
	}
	return b.w.Put(ctx, k, v)
}

func (b *faultyWrite[W]) Delete(ctx context.Context, k datastore.Key) error {
	if err := b.f.write(); err != nil {
		return err
	}
	return b.w.Delete(ctx, k)
}

func (b *faultyWrite[W]) Commit(ctx context.Context) error {
	if err := b.f.write(); err != nil {
		return err
	}
	return b.w.Commit(ctx)
}

type faultyTxn struct {
	faultyWrite[datastore.Txn]
	datastore.Txn
}

func (t *faultyTxn) Put(ctx context.Context, k datastore.Key, v []byte) error {
	return t.faultyWrite.Put(ctx, k, v)
}

func (t *faultyTxn) Delete(ctx context.Context, k datastore.Key) error {
	return t.faultyWrite.Delete(ctx, k)
}

func (t *faultyTxn) Commit(ctx context.Context) error { return t.faultyWrite.Commit(ctx) }

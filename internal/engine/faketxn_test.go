package engine

import (
	"context"
	"errors"
	"sync"

	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
)

// fakeTxnDS is a datastore.TxnDatastore in memory for shared mode without
// a server. A transaction buffers its writes and applies them at Commit.
// On command it conflicts (a retryable error, nothing applied), fails a
// commit with an unknown outcome (applied or not), or loses the
// connection (beginning a transaction, or reading in one, fails).
type fakeTxnDS struct {
	datastore.Batching // the committed records

	mu        sync.Mutex
	conflicts int  // the next commits that conflict
	unknown   int  // the next commits whose outcome is unknown
	applyLost bool // an unknown commit applied its writes all the same
	lostBegin int  // the next transactions that fail to begin
	lostReads int  // the next reads in a transaction that fail
	commits   int  // transactions committed
	discards  int  // transactions discarded
	deadCtx   int  // discards called with an ended ctx
	onCommit  func()
}

var _ datastore.TxnDatastore = (*fakeTxnDS)(nil)

func newFakeTxnDS() *fakeTxnDS {
	return &fakeTxnDS{Batching: dssync.MutexWrap(datastore.NewMapDatastore())}
}

// errConflict is what a database says of a transaction it rolled back for
// a conflict: retry it.
type errConflict struct{}

func (errConflict) Error() string   { return "fake: could not serialize access" }
func (errConflict) Retryable() bool { return true }

var (
	errLost         = errors.New("fake: connection lost")
	errCommitUnsure = errors.New("fake: connection lost during commit")
)

func (d *fakeTxnDS) set(f func(d *fakeTxnDS)) {
	d.mu.Lock()
	defer d.mu.Unlock()
	f(d)
}

func (d *fakeTxnDS) NewTransaction(ctx context.Context, readOnly bool) (datastore.Txn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lostBegin > 0 {
		d.lostBegin--
		return nil, errLost
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return &fakeTxn{d: d, readOnly: readOnly, writes: map[datastore.Key][]byte{}, dels: map[datastore.Key]bool{}}, nil
}

type fakeTxn struct {
	d        *fakeTxnDS
	readOnly bool
	writes   map[datastore.Key][]byte
	dels     map[datastore.Key]bool
	order    []datastore.Key
	done     bool
}

func (t *fakeTxn) lost() error {
	t.d.mu.Lock()
	defer t.d.mu.Unlock()
	if t.d.lostReads > 0 {
		t.d.lostReads--
		return errLost
	}
	return nil
}

func (t *fakeTxn) Get(ctx context.Context, k datastore.Key) ([]byte, error) {
	if err := t.lost(); err != nil {
		return nil, err
	}
	if t.dels[k] {
		return nil, datastore.ErrNotFound
	}
	if v, ok := t.writes[k]; ok {
		return v, nil
	}
	return t.d.Batching.Get(ctx, k)
}

func (t *fakeTxn) Has(ctx context.Context, k datastore.Key) (bool, error) {
	_, err := t.Get(ctx, k)
	if errors.Is(err, datastore.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func (t *fakeTxn) GetSize(ctx context.Context, k datastore.Key) (int, error) {
	v, err := t.Get(ctx, k)
	return len(v), err
}

func (t *fakeTxn) Query(ctx context.Context, q query.Query) (query.Results, error) {
	if err := t.lost(); err != nil {
		return nil, err
	}
	if len(t.order) > 0 {
		return nil, errors.New("fake: a query after a write in one transaction is not supported")
	}
	return t.d.Batching.Query(ctx, q)
}

func (t *fakeTxn) Put(_ context.Context, k datastore.Key, v []byte) error {
	if t.readOnly {
		return errors.New("fake: write in a read-only transaction")
	}
	delete(t.dels, k)
	t.writes[k] = v
	t.order = append(t.order, k)
	return nil
}

func (t *fakeTxn) Delete(_ context.Context, k datastore.Key) error {
	if t.readOnly {
		return errors.New("fake: write in a read-only transaction")
	}
	delete(t.writes, k)
	t.dels[k] = true
	t.order = append(t.order, k)
	return nil
}

func (t *fakeTxn) Commit(ctx context.Context) error {
	d := t.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if t.done {
		return errors.New("fake: transaction already ended")
	}
	t.done = true
	if d.onCommit != nil {
		d.onCommit()
	}
	switch {
	case d.conflicts > 0:
		d.conflicts--
		return errConflict{}
	case d.unknown > 0:
		d.unknown--
		if d.applyLost {
			t.apply(ctx)
		}
		return errCommitUnsure
	}
	t.apply(ctx)
	d.commits++
	return nil
}

func (t *fakeTxn) apply(ctx context.Context) {
	for _, k := range t.order {
		if t.dels[k] {
			_ = t.d.Batching.Delete(ctx, k)
		} else if v, ok := t.writes[k]; ok {
			_ = t.d.Batching.Put(ctx, k, v)
		}
	}
}

func (t *fakeTxn) Discard(ctx context.Context) {
	t.d.mu.Lock()
	defer t.d.mu.Unlock()
	if ctx.Err() != nil {
		t.d.deadCtx++
	}
	t.d.discards++
	t.done = true
}

package stowagetest

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a testing.TB that records failures instead of reporting
// them, so a test can assert that the suite catches a broken store.
type recorder struct {
	testing.TB // the real test: Context, TempDir, Cleanup, Logf

	mu   sync.Mutex
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func (r *recorder) Error(args ...any) { r.Errorf("%s", fmt.Sprint(args...)) }

func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}

func (r *recorder) Fatal(args ...any) {
	r.Error(args...)
	runtime.Goexit()
}

func (r *recorder) Fail() { r.Errorf("failed") }

func (r *recorder) FailNow() {
	r.Fail()
	runtime.Goexit()
}

func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.errs) > 0
}

// record runs check against a recorder and returns what it reported.
func record(t *testing.T, check func(t testing.TB)) []string {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		check(r)
	}()
	<-done
	return r.errs
}

// nonAtomic is a datastore whose batches apply each write at once, as a
// store without batches of its own (autobatch, a naive adapter) does.
type nonAtomic struct{ datastore.Batching }

func (d nonAtomic) Batch(context.Context) (datastore.Batch, error) { return oneByOne(d), nil }

type oneByOne struct{ datastore.Batching }

func (oneByOne) Commit(context.Context) error { return nil }

func TestFailureAtEveryWrite_CatchesNonAtomicBatch(t *testing.T) {
	open := func(testing.TB) datastore.Batching {
		return nonAtomic{dssync.MutexWrap(datastore.NewMapDatastore())}
	}
	errs := record(t, func(t testing.TB) { failureAtEveryWrite(t, &config{}, open) })
	require.NotEmpty(t, errs, "a batch applied one write at a time passed the fault sweep")
	t.Log(errs[0])
}

func TestFailureAtEveryWrite_PassesAtomicBatch(t *testing.T) {
	open := func(testing.TB) datastore.Batching { return dssync.MutexWrap(datastore.NewMapDatastore()) }
	assert.Empty(t, record(t, func(t testing.TB) { failureAtEveryWrite(t, &config{}, open) }))
}

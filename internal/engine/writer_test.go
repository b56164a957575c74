package engine

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/internal/ldb"
)

// logDS is a map datastore whose batch commits are logged by name, and
// fail (without writing) when fail names it.
type logDS struct {
	datastore.Batching
	name string
	log  *[]string
	mu   *sync.Mutex
	fail *string
}

func (d *logDS) Batch(ctx context.Context) (datastore.Batch, error) {
	b, err := d.Batching.Batch(ctx)
	return &logBatch{Batch: b, d: d}, err
}

type logBatch struct {
	datastore.Batch
	d *logDS
}

func (b *logBatch) Commit(ctx context.Context) error {
	b.d.mu.Lock()
	*b.d.log = append(*b.d.log, b.d.name)
	fail := *b.d.fail == b.d.name
	b.d.mu.Unlock()
	if fail {
		return errInjected
	}
	return b.Batch.Commit(ctx)
}

func twoStores() (meta, blocks *logDS, log *[]string, fail *string) {
	log, fail, mu := new([]string), new(string), new(sync.Mutex)
	meta = &logDS{Batching: dssync.MutexWrap(datastore.NewMapDatastore()), name: "meta", log: log, mu: mu, fail: fail}
	blocks = &logDS{Batching: dssync.MutexWrap(datastore.NewMapDatastore()), name: "blocks", log: log, mu: mu, fail: fail}
	return meta, blocks, log, fail
}

func oneChange(ops ...op) []*change { return []*change{{ops: ops}} }

// With a separate block store, blocks are deleted before and written after
// the metadata that counts them; the counters go with the metadata, and
// only those that moved.
func TestDSWriter_SeparateBlocksAroundTheMetadata(t *testing.T) {
	meta, blocks, log, _ := twoStores()
	ctx := t.Context()
	require.NoError(t, blocks.Put(ctx, datastore.NewKey("/old"), []byte("old")))
	w := &dsWriter{meta: meta, blocks: blocks, separate: true}
	del := op{okey: okey{blocks: true, key: "/old"}, del: true}
	err, unknown := w.write(oneChange(put("/rec", "r"), block("/new", "blk"), del), Counters{Used: 3}, Counters{Used: 3, Reserved: 1})
	require.NoError(t, err)
	assert.False(t, unknown)
	assert.Equal(t, []string{"blocks", "meta", "blocks"}, *log)
	has, _ := blocks.Has(ctx, datastore.NewKey("/old"))
	assert.False(t, has)
	v, _ := blocks.Get(ctx, datastore.NewKey("/new"))
	assert.Equal(t, "blk", string(v))
	cs, err := readCounters(ctx, meta)
	require.NoError(t, err)
	assert.Equal(t, Counters{Reserved: 1}, cs, "Used did not move, so it was not written")
}

// Each step's failure says whether the outcome is known.
func TestDSWriter_FailuresPerStep(t *testing.T) {
	ops := []op{put("/rec", "r"), block("/new", "blk"), {okey: okey{blocks: true, key: "/old"}, del: true}}
	for _, tc := range []struct {
		fail    string
		unknown bool
		after   bool // blocksAfterMeta
	}{{"blocks", true, false}, {"meta", true, false}} {
		meta, blocks, _, fail := twoStores()
		*fail = tc.fail
		w := &dsWriter{meta: meta, blocks: blocks, separate: true}
		err, unknown := w.write(oneChange(ops...), Counters{}, Counters{Used: 3})
		require.ErrorIs(t, err, errInjected, tc.fail)
		assert.Equal(t, tc.unknown, unknown, tc.fail)
	}
	// Metadata failing with no block deleted before it: unknown all the
	// same (the commit itself failed).
	meta, blocks, _, fail := twoStores()
	*fail = "meta"
	w := &dsWriter{meta: meta, blocks: blocks, separate: true}
	err, unknown := w.write(oneChange(put("/rec", "r")), Counters{}, Counters{})
	require.ErrorIs(t, err, errInjected)
	assert.True(t, unknown)

	// Blocks failing after their metadata committed.
	meta, blocks, log, fail := twoStores()
	w = &dsWriter{meta: meta, blocks: blocks, separate: true}
	*fail = "blocks"
	err, unknown = w.write(oneChange(put("/rec", "r"), block("/new", "b")), Counters{}, Counters{Used: 1})
	var bam *blocksAfterMeta
	require.ErrorAs(t, err, &bam)
	require.ErrorIs(t, err, errInjected)
	assert.True(t, unknown)
	assert.Equal(t, []string{"meta", "blocks"}, *log)
}

// Several changes in one group: the last write of each key wins, whatever
// order the datastore's batch applies them in.
func TestDSWriter_LastWriteOfAKeyWins(t *testing.T) {
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	w := &dsWriter{meta: ds, blocks: ds}
	group := []*change{{ops: []op{put("/a", "1"), put("/b", "1")}}, {ops: []op{del("/a"), block("/x", "x")}}, {ops: []op{put("/b", "3")}}}
	assert.Equal(t, []op{del("/a"), put("/b", "3"), block("/x", "x")}, lastWrites(group))
	err, _ := w.write(group, Counters{}, Counters{Used: 1})
	require.NoError(t, err)
	has, _ := ds.Has(t.Context(), datastore.NewKey("/a"))
	assert.False(t, has)
	v, _ := ds.Get(t.Context(), datastore.NewKey("/b"))
	assert.Equal(t, "3", string(v))
	v, _ = ds.Get(t.Context(), BlocksPrefix.ChildString("x"))
	assert.Equal(t, "x", string(v), "blocks sharing the datastore live under BlocksPrefix")
}

// In txn mode a group is one transaction; a datastore whose transactions
// cannot begin fails with a known outcome.
func TestDSWriter_Transactions(t *testing.T) {
	d, err := ldb.Open(filepath.Join(t.TempDir(), "db"), ldb.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	w := &dsWriter{meta: d, blocks: d, txn: true}
	err, _ = w.write(oneChange(put("/a", "1")), Counters{}, Counters{Reserved: 2})
	require.NoError(t, err)
	v, err := d.Get(t.Context(), datastore.NewKey("/a"))
	require.NoError(t, err)
	assert.Equal(t, "1", string(v))
	require.NoError(t, d.Close())
	err, unknown := w.write(oneChange(put("/b", "1")), Counters{}, Counters{})
	require.Error(t, err)
	assert.False(t, unknown, "no transaction began: nothing was written")
}

// The LevelDB writer writes the group in order with the counters that
// moved, reuses its batch, and reports a failed write as unknown.
func TestLDBWriter(t *testing.T) {
	d, err := ldb.Open(filepath.Join(t.TempDir(), "db"), ldb.Options{NoSync: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = d.Close() })
	w := ldbWriterFor(d)
	require.NotNil(t, w)
	assert.Nil(t, ldbWriterFor(dssync.MutexWrap(datastore.NewMapDatastore())))
	ctx := t.Context()
	group := []*change{{ops: []op{put("/a", "1"), block("/x", "x")}}, {ops: []op{del("/a"), put("/b", "2")}}}
	err, _ = w.write(group, Counters{}, Counters{Used: 1})
	require.NoError(t, err)
	has, _ := d.Has(ctx, datastore.NewKey("/a"))
	assert.False(t, has, "the later delete wins")
	v, _ := d.Get(ctx, BlocksPrefix.ChildString("x"))
	assert.Equal(t, "x", string(v))
	cs, err := readCounters(ctx, d)
	require.NoError(t, err)
	assert.Equal(t, Counters{Used: 1}, cs)

	spare := w.(*ldbWriter).spare
	require.NotNil(t, spare)
	err, _ = w.write(oneChange(put("/c", "3")), Counters{Used: 1}, Counters{Used: 1, Reserved: 4})
	require.NoError(t, err)
	assert.Same(t, spare, w.(*ldbWriter).spare, "the batch is reused")
	assert.Zero(t, spare.Len())
	cs, _ = readCounters(ctx, d)
	assert.Equal(t, Counters{Used: 1, Reserved: 4}, cs)

	require.NoError(t, d.Close())
	err, unknown := w.write(oneChange(put("/d", "4")), Counters{}, Counters{})
	require.Error(t, err)
	assert.True(t, unknown)
}

// A discarded batch goes through the store's own discard, whatever its
// signature.
func TestDiscardBatch_EachSignature(t *testing.T) {
	var n int
	discardBatch(t.Context(), discardErr{&n})
	discardBatch(t.Context(), discardPlain{&n})
	discardBatch(t.Context(), struct{}{})
	assert.Equal(t, 2, n)
}

type discardErr struct{ n *int }

func (d discardErr) Discard(context.Context) error { *d.n++; return errors.New("ignored") }

type discardPlain struct{ n *int }

func (d discardPlain) Discard() { *d.n++ }

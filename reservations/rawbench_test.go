package reservations_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/storage"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/internal/faultfs"
	"github.com/stowage/stowage/reservations"
)

// The baselines' datastore work: what each of the Store's changes reads and
// writes, done raw, with records pre-encoded at the Store's sizes.

// Keys as the Store lays them out (see records.go), for the baseline.
func availKey(aid string) string       { return "/meta/sales/reservations/" + aid }
func resKey(aid, rid string) string    { return "/meta/sales/reservations/" + aid + "/" + rid }
func byIDKey(rid string) string        { return "/meta/sales/byid/" + rid }
func slotKey(req string, i int) string { return "/meta/sales/slots/" + req + "/" + strconv.Itoa(i) }
func blockIdxPrefix(rid string) string { return "/meta/sales/blocks/" + rid }

// blockKey names the j-th block of a caller's i-th cycle.
func benchBlockKey(caller, i, j int) string {
	return "/c" + strconv.Itoa(caller) + "/" + strconv.Itoa(i) + "/" + strconv.Itoa(j)
}

const (
	usedKey     = "/meta/quota/used"
	reservedKey = "/meta/quota/reserved"
	blocksNS    = "/blocks" // blocks share the metadata store under /blocks
)

// rawOp is one write of a baseline batch.
type rawOp struct {
	key   string
	value []byte
	del   bool
}

// rawDB is the datastore work of a baseline: reads, and one batch per step.
type rawDB interface {
	get(ctx context.Context, key string) ([]byte, error) // missing: datastore.ErrNotFound
	has(ctx context.Context, key string) (bool, error)
	getSize(ctx context.Context, key string) (int, error)
	scan(ctx context.Context, prefix string, fn func(key string, value []byte)) error
	write(ctx context.Context, ops []rawOp) error
}

// dsRaw is a go-datastore.
type dsRaw struct{ ds datastore.Batching }

func (d dsRaw) get(ctx context.Context, k string) ([]byte, error) {
	return d.ds.Get(ctx, datastore.RawKey(k))
}
func (d dsRaw) has(ctx context.Context, k string) (bool, error) {
	return d.ds.Has(ctx, datastore.RawKey(k))
}
func (d dsRaw) getSize(ctx context.Context, k string) (int, error) {
	return d.ds.GetSize(ctx, datastore.RawKey(k))
}

func (d dsRaw) scan(ctx context.Context, prefix string, fn func(string, []byte)) error {
	q := query.Query{Prefix: prefix, Orders: []query.Order{query.OrderByKey{}}}
	res, err := d.ds.Query(ctx, q)
	if err != nil {
		return err
	}
	defer res.Close()
	for {
		r, ok := res.NextSync() // no goroutine, unlike Next and QueryIter
		if !ok {
			return nil
		}
		if r.Error != nil {
			return r.Error
		}
		fn(r.Key, r.Value)
	}
}

func (d dsRaw) write(ctx context.Context, ops []rawOp) error {
	b, err := d.ds.Batch(ctx)
	if err != nil {
		return err
	}
	for _, o := range ops {
		if o.del {
			err = b.Delete(ctx, datastore.RawKey(o.key))
		} else {
			err = b.Put(ctx, datastore.RawKey(o.key), o.value)
		}
		if err != nil {
			return err
		}
	}
	return b.Commit(ctx)
}

// groupDB is the fsync limit: goleveldb opened directly, callers hand in
// synced batches, one leader at a time merges every batch queued into one
// write and hands the lead to the first caller still waiting.
type groupDB struct {
	ldbReads
	mu      sync.Mutex
	queue   []*groupReq
	leading bool
	// writeNanos is the time spent in goleveldb's Write, as the Store's
	// Stats().CommitSeconds counts its own.
	writeNanos atomic.Int64
}

type groupReq struct {
	b          *leveldb.Batch
	err        error
	done, lead chan struct{}
}

func (g *groupDB) commit(b *leveldb.Batch) error {
	r := &groupReq{b: b, done: make(chan struct{}), lead: make(chan struct{})}
	g.mu.Lock()
	g.queue = append(g.queue, r)
	lead := !g.leading
	g.leading = true
	g.mu.Unlock()
	if !lead {
		select {
		case <-r.done:
			return r.err
		case <-r.lead:
		}
	}
	g.mu.Lock()
	group := g.queue
	g.queue = nil
	g.mu.Unlock()
	merged := group[0].b
	if len(group) > 1 {
		merged = new(leveldb.Batch)
		for _, q := range group {
			if err := q.b.Replay(merged); err != nil {
				panic(err)
			}
		}
	}
	t := time.Now()
	err := g.db.Write(merged, &opt.WriteOptions{Sync: true})
	g.writeNanos.Add(time.Since(t).Nanoseconds())
	g.mu.Lock()
	var next *groupReq
	if len(g.queue) > 0 {
		next = g.queue[0]
	} else {
		g.leading = false
	}
	g.mu.Unlock()
	for _, q := range group {
		q.err = err
		close(q.done)
	}
	if next != nil {
		close(next.lead)
	}
	return err
}

// ldbReads are a baseline's reads on goleveldb opened directly.
type ldbReads struct{ db *leveldb.DB }

func (g ldbReads) get(_ context.Context, k string) ([]byte, error) {
	v, err := g.db.Get([]byte(k), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, datastore.ErrNotFound
	}
	return v, err
}

func (g ldbReads) has(_ context.Context, k string) (bool, error) { return g.db.Has([]byte(k), nil) }

func (g ldbReads) getSize(ctx context.Context, k string) (int, error) {
	v, err := g.get(ctx, k)
	return len(v), err
}

func (g ldbReads) scan(_ context.Context, prefix string, fn func(string, []byte)) error {
	it := g.db.NewIterator(util.BytesPrefix([]byte(prefix+"/")), nil)
	defer it.Release()
	for it.Next() {
		fn(string(it.Key()), append([]byte(nil), it.Value()...))
	}
	return it.Error()
}

// ldbBatch is ops as one goleveldb batch.
func ldbBatch(ops []rawOp) *leveldb.Batch {
	b := new(leveldb.Batch)
	for _, o := range ops {
		if o.del {
			b.Delete([]byte(o.key))
		} else {
			b.Put([]byte(o.key), o.value)
		}
	}
	return b
}

// ldbRaw is goleveldb opened directly, each step one batch: the least a
// change on the embedded LevelDB costs.
type ldbRaw struct {
	ldbReads
	wo *opt.WriteOptions
}

func (d ldbRaw) write(_ context.Context, ops []rawOp) error {
	return d.db.Write(ldbBatch(ops), d.wo)
}

func openLDBRaw(b *testing.B, sync bool) ldbRaw {
	// With the bloom filter the repo's LevelDB has: a read of a missing
	// key costs the baseline no more than it costs the repo.
	db, err := leveldb.OpenFile(b.TempDir(), &opt.Options{Filter: filter.NewBloomFilter(10)})
	require.NoError(b, err)
	b.Cleanup(func() { _ = db.Close() })
	return ldbRaw{ldbReads{db}, &opt.WriteOptions{Sync: sync}}
}

func (g *groupDB) write(_ context.Context, ops []rawOp) error {
	return g.commit(ldbBatch(ops))
}

func openGroupDB(b *testing.B, syncs *atomic.Int64) *groupDB {
	fs, err := storage.OpenFile(b.TempDir(), false)
	require.NoError(b, err)
	db, err := leveldb.Open(faultfs.CountSyncs(fs, syncs), nil)
	require.NoError(b, err)
	b.Cleanup(func() {
		_ = db.Close()
		_ = fs.Close()
	})
	return &groupDB{ldbReads: ldbReads{db}}
}

// rawRecords are pre-encoded records of realistic size.
type rawRecords struct {
	avail, res []byte
	block      []byte
	counter    []byte
}

func newRawRecords(b *testing.B) rawRecords {
	id := uuid.Must(uuid.NewV7())
	a := reservations.Availability{ID: reservations.AvailabilityID(id), Size: 1 << 40, TotalSize: 1 << 40, Duration: 1 << 20, MinPrice: u(1), MaxCollateral: u(1)}
	r := reservations.Reservation{ID: reservations.ReservationID(id), AvailabilityID: a.ID, Size: 2 * benchBlock, SlotSize: 2 * benchBlock, RequestID: reqID(1), SlotIndex: 1 << 20}
	ab, err := a.MarshalJSON()
	require.NoError(b, err)
	rb, err := r.MarshalJSON()
	require.NoError(b, err)
	return rawRecords{avail: ab, res: rb, block: make([]byte, benchBlock), counter: make([]byte, 8)}
}

func notFound(err error) error {
	if errors.Is(err, datastore.ErrNotFound) {
		return nil
	}
	if err == nil {
		return errors.New("baseline: record unexpectedly present")
	}
	return err
}

// reads is how much a baseline reads before each write.
type reads int

const (
	// readsAll: what the Store reads, no less (the blocks' sizes again
	// before they are deleted, the slot's index entry before it goes).
	readsAll reads = iota
	// readsMin: the least any implementation must read to check the
	// change: the records it changes and the existence checks; sizes and
	// keys come from the records read.
	readsMin
	// readsNone: only the writes, as if every record were known in memory.
	readsNone
)

// getAll reads every key, failing on a missing one.
func getAll(ctx context.Context, db rawDB, keys ...string) error {
	for _, k := range keys {
		if _, err := db.get(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// rawReserve is ReserveSlot's (and CreateReservation's) datastore work:
// check the slot, read the availability, write it with the reservation and
// its two index entries.
func rawReserve(ctx context.Context, db rawDB, lv reads, rec rawRecords, aid, rid, slot string) error {
	if lv != readsNone {
		if _, err := db.has(ctx, slot); err != nil {
			return err
		}
		if err := getAll(ctx, db, availKey(aid)); err != nil {
			return err
		}
	}
	return db.write(ctx, []rawOp{
		{key: availKey(aid), value: rec.avail},
		{key: resKey(aid, rid), value: rec.res},
		{key: byIDKey(rid), value: []byte(aid)},
		{key: slot, value: []byte(aid + "/" + rid)},
	})
}

// rawPutBlock is Store.PutBlock's: find the reservation, check the block is
// new, write the block, its index entry, the reservation and both counters.
func rawPutBlock(ctx context.Context, db rawDB, lv reads, rec rawRecords, aid, rid, block string) error {
	if lv != readsNone {
		if err := getAll(ctx, db, byIDKey(rid), resKey(aid, rid)); err != nil {
			return err
		}
		if _, err := db.get(ctx, blockIdxPrefix(rid)+block); notFound(err) != nil {
			return notFound(err)
		}
		if _, err := db.has(ctx, blocksNS+block); err != nil {
			return err
		}
	}
	return db.write(ctx, []rawOp{
		{key: blocksNS + block, value: rec.block},
		{key: blockIdxPrefix(rid) + block, value: []byte(strconv.Itoa(len(rec.block)))},
		{key: resKey(aid, rid), value: rec.res},
		{key: usedKey, value: rec.counter},
		{key: reservedKey, value: rec.counter},
	})
}

// rawRelease is Release's: read the reservation and the availability,
// write both and the Reserved counter.
func rawRelease(ctx context.Context, db rawDB, lv reads, rec rawRecords, aid, rid string) error {
	if lv != readsNone {
		if err := getAll(ctx, db, byIDKey(rid), resKey(aid, rid), availKey(aid)); err != nil {
			return err
		}
	}
	return db.write(ctx, []rawOp{
		{key: availKey(aid), value: rec.avail},
		{key: resKey(aid, rid), value: rec.res},
		{key: reservedKey, value: rec.counter},
	})
}

// rawDelete is DeleteReservation's: find the reservation and the
// availability, list the reservation's blocks (readsAll: and size each),
// then delete the blocks, their index entries, the reservation and its
// indexes and write the availability (and the counters when blocks went).
// blocks are the blocks' keys, for readsNone, which lists nothing.
func rawDelete(ctx context.Context, db rawDB, lv reads, rec rawRecords, aid, rid, slot string, blocks []string) error {
	prefix := blockIdxPrefix(rid)
	if lv != readsNone {
		if err := getAll(ctx, db, byIDKey(rid), resKey(aid, rid), availKey(aid)); err != nil {
			return err
		}
		blocks = blocks[:0]
		if err := db.scan(ctx, prefix, func(k string, _ []byte) { blocks = append(blocks, k[len(prefix):]) }); err != nil {
			return err
		}
	}
	var ops []rawOp
	for _, k := range blocks {
		if lv == readsAll {
			if _, err := db.has(ctx, blocksNS+k); err != nil {
				return err
			}
			if _, err := db.getSize(ctx, blocksNS+k); err != nil {
				return err
			}
		}
		ops = append(ops, rawOp{key: blocksNS + k, del: true}, rawOp{key: prefix + k, del: true})
	}
	ops = append(ops,
		rawOp{key: availKey(aid), value: rec.avail},
		rawOp{key: resKey(aid, rid), del: true},
		rawOp{key: byIDKey(rid), del: true})
	if lv == readsAll {
		if err := getAll(ctx, db, slot); err != nil {
			return err
		}
	}
	ops = append(ops, rawOp{key: slot, del: true})
	if len(blocks) > 0 {
		ops = append(ops, rawOp{key: usedKey, value: rec.counter}, rawOp{key: reservedKey, value: rec.counter})
	}
	return db.write(ctx, ops)
}

// Cycle kinds. "slot": ReserveSlot → Store.PutBlock ×2 → DeleteReservation
// (the second round's life of a slot). "release": CreateReservation →
// Release ×2 → DeleteReservation (the first round's cycle). Four commits
// each.
type cycleKind struct {
	name    string
	stowage func(ctx context.Context, s *reservations.Store, own reservations.AvailabilityID, slot stowage.Slot, caller, i int, data []byte) error
	raw     func(ctx context.Context, db rawDB, lv reads, rec rawRecords, aid, req string, caller, i int) error
}

var slotCycle = cycleKind{
	name: "slot",
	stowage: func(ctx context.Context, s *reservations.Store, _ reservations.AvailabilityID, slot stowage.Slot, caller, i int, data []byte) error {
		slot.Index = uint64(i)
		r, err := s.ReserveSlot(ctx, slot)
		if err != nil {
			return err
		}
		for j := range 2 {
			if err := s.PutBlock(ctx, r.ID, datastore.RawKey(benchBlockKey(caller, i, j)), data); err != nil {
				return err
			}
		}
		return s.DeleteReservation(ctx, r.ID)
	},
	raw: func(ctx context.Context, db rawDB, lv reads, rec rawRecords, aid, req string, caller, i int) error {
		rid := uuid.Must(uuid.NewV7()).String()
		slot := slotKey(req, i)
		if err := rawReserve(ctx, db, lv, rec, aid, rid, slot); err != nil {
			return err
		}
		blocks := make([]string, 2)
		for j := range blocks {
			blocks[j] = benchBlockKey(caller, i, j)
			if err := rawPutBlock(ctx, db, lv, rec, aid, rid, blocks[j]); err != nil {
				return err
			}
		}
		return rawDelete(ctx, db, lv, rec, aid, rid, slot, blocks)
	},
}

var releaseCycle = cycleKind{
	name: "release",
	stowage: func(ctx context.Context, s *reservations.Store, own reservations.AvailabilityID, slot stowage.Slot, _, i int, _ []byte) error {
		r, err := s.CreateReservation(ctx, own, anySlot(slot.RequestID, uint64(i), 2*benchBlock))
		if err != nil {
			return err
		}
		if err := s.Release(ctx, r.ID, benchBlock/2); err != nil {
			return err
		}
		if err := s.Release(ctx, r.ID, benchBlock/4); err != nil {
			return err
		}
		return s.DeleteReservation(ctx, r.ID)
	},
	raw: func(ctx context.Context, db rawDB, lv reads, rec rawRecords, aid, req string, _, i int) error {
		rid := uuid.Must(uuid.NewV7()).String()
		slot := slotKey(req, i)
		if err := rawReserve(ctx, db, lv, rec, aid, rid, slot); err != nil {
			return err
		}
		for range 2 {
			if err := rawRelease(ctx, db, lv, rec, aid, rid); err != nil {
				return err
			}
		}
		return rawDelete(ctx, db, lv, rec, aid, rid, slot, nil)
	},
}

const commitsPerCycle = 4

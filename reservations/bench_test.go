package reservations_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	dssync "github.com/ipfs/go-datastore/sync"
	dsleveldb "github.com/ipfs/go-ds-leveldb"
	"github.com/stretchr/testify/require"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/storage"
	"github.com/syndtr/goleveldb/leveldb/util"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/internal/faultfs"
	"github.com/stowage/stowage/internal/ldb"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// Each benchmark runs a stowage operation ("stowage") beside a raw baseline
// ("baseline") that does the same datastore reads and one batch write per
// step, with records of the same sizes and none of the package's logic, in
// the same run, so the ratio of the two can be read off.

const (
	benchQuota = 1 << 60
	benchBlock = 1 << 10 // Store.PutBlock blocks of the cycle
)

// openCountedRepo is repo.Open(dir) with fsync, built from the same parts
// (internal/ldb over goleveldb, the same engine) so the journal's fsyncs can
// be counted: repo.Open's storage hook is unexported. The write path is the
// same; only the reopen after a failed write, which no benchmark exercises,
// is missing.
func openCountedRepo(b *testing.B, syncs *atomic.Int64) *repo.Repo {
	db, err := ldb.Open(b.TempDir(), ldb.Options{WrapStorage: func(s storage.Storage) storage.Storage {
		return faultfs.CountSyncs(s, syncs)
	}})
	require.NoError(b, err)
	r, err := repo.New(b.Context(), db, repo.WithQuotaMaxBytes(benchQuota))
	require.NoError(b, err)
	b.Cleanup(func() {
		_ = r.Close()
		_ = db.Close()
	})
	return r
}

// runCallers runs b.N cycles spread over callers goroutines and reports
// cycles per second. cycle gets the caller's number and the caller's own
// count of cycles so far.
func runCallers(b *testing.B, callers int, cycle func(caller, i int) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	for c := range callers {
		wg.Go(func() {
			for i := 0; next.Add(1) <= int64(b.N); i++ {
				if err := cycle(c, i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "cycles/s")
}

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
	for en, err := range datastore.QueryIter(ctx, d.ds, q) {
		if err != nil {
			return err
		}
		fn(en.Key, en.Value)
	}
	return nil
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
	db      *leveldb.DB
	mu      sync.Mutex
	queue   []*groupReq
	leading bool
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
	err := g.db.Write(merged, &opt.WriteOptions{Sync: true})
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

func (g *groupDB) get(_ context.Context, k string) ([]byte, error) {
	v, err := g.db.Get([]byte(k), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, datastore.ErrNotFound
	}
	return v, err
}

func (g *groupDB) has(_ context.Context, k string) (bool, error) { return g.db.Has([]byte(k), nil) }

func (g *groupDB) getSize(ctx context.Context, k string) (int, error) {
	v, err := g.get(ctx, k)
	return len(v), err
}

func (g *groupDB) scan(_ context.Context, prefix string, fn func(string, []byte)) error {
	it := g.db.NewIterator(util.BytesPrefix([]byte(prefix+"/")), nil)
	defer it.Release()
	for it.Next() {
		fn(string(it.Key()), append([]byte(nil), it.Value()...))
	}
	return it.Error()
}

func (g *groupDB) write(_ context.Context, ops []rawOp) error {
	b := new(leveldb.Batch)
	for _, o := range ops {
		if o.del {
			b.Delete([]byte(o.key))
		} else {
			b.Put([]byte(o.key), o.value)
		}
	}
	return g.commit(b)
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
	return &groupDB{db: db}
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

// rawReserve is ReserveSlot's (and CreateReservation's) datastore work:
// check the slot, read the availability, write it with the reservation and
// its two index entries.
func rawReserve(ctx context.Context, db rawDB, rec rawRecords, aid, rid, slot string) error {
	if _, err := db.has(ctx, slot); err != nil {
		return err
	}
	if _, err := db.get(ctx, availKey(aid)); err != nil {
		return err
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
func rawPutBlock(ctx context.Context, db rawDB, rec rawRecords, aid, rid, block string) error {
	if _, err := db.get(ctx, byIDKey(rid)); err != nil {
		return err
	}
	if _, err := db.get(ctx, resKey(aid, rid)); err != nil {
		return err
	}
	if _, err := db.get(ctx, blockIdxPrefix(rid)+block); notFound(err) != nil {
		return notFound(err)
	}
	if _, err := db.has(ctx, blocksNS+block); err != nil {
		return err
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
func rawRelease(ctx context.Context, db rawDB, rec rawRecords, aid, rid string) error {
	if _, err := db.get(ctx, byIDKey(rid)); err != nil {
		return err
	}
	if _, err := db.get(ctx, resKey(aid, rid)); err != nil {
		return err
	}
	if _, err := db.get(ctx, availKey(aid)); err != nil {
		return err
	}
	return db.write(ctx, []rawOp{
		{key: availKey(aid), value: rec.avail},
		{key: resKey(aid, rid), value: rec.res},
		{key: reservedKey, value: rec.counter},
	})
}

// rawDelete is DeleteReservation's: find the reservation and the
// availability, list the reservation's blocks and size each, then delete
// the blocks, their index entries, the reservation and its indexes and
// write the availability (and the counters when blocks went).
func rawDelete(ctx context.Context, db rawDB, rec rawRecords, aid, rid, slot string) error {
	if _, err := db.get(ctx, byIDKey(rid)); err != nil {
		return err
	}
	if _, err := db.get(ctx, resKey(aid, rid)); err != nil {
		return err
	}
	if _, err := db.get(ctx, availKey(aid)); err != nil {
		return err
	}
	var ops []rawOp
	prefix := blockIdxPrefix(rid)
	var blocks []string
	if err := db.scan(ctx, prefix, func(k string, _ []byte) { blocks = append(blocks, k) }); err != nil {
		return err
	}
	for _, k := range blocks {
		bk := blocksNS + k[len(prefix):]
		if _, err := db.has(ctx, bk); err != nil {
			return err
		}
		if _, err := db.getSize(ctx, bk); err != nil {
			return err
		}
		ops = append(ops, rawOp{key: bk, del: true}, rawOp{key: k, del: true})
	}
	ops = append(ops,
		rawOp{key: availKey(aid), value: rec.avail},
		rawOp{key: resKey(aid, rid), del: true},
		rawOp{key: byIDKey(rid), del: true})
	if _, err := db.get(ctx, slot); err != nil {
		return err
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
	raw     func(ctx context.Context, db rawDB, rec rawRecords, aid, req string, caller, i int) error
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
	raw: func(ctx context.Context, db rawDB, rec rawRecords, aid, req string, caller, i int) error {
		rid := uuid.Must(uuid.NewV7()).String()
		slot := slotKey(req, i)
		if err := rawReserve(ctx, db, rec, aid, rid, slot); err != nil {
			return err
		}
		for j := range 2 {
			if err := rawPutBlock(ctx, db, rec, aid, rid, benchBlockKey(caller, i, j)); err != nil {
				return err
			}
		}
		return rawDelete(ctx, db, rec, aid, rid, slot)
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
	raw: func(ctx context.Context, db rawDB, rec rawRecords, aid, req string, _, i int) error {
		rid := uuid.Must(uuid.NewV7()).String()
		slot := slotKey(req, i)
		if err := rawReserve(ctx, db, rec, aid, rid, slot); err != nil {
			return err
		}
		for range 2 {
			if err := rawRelease(ctx, db, rec, aid, rid); err != nil {
				return err
			}
		}
		return rawDelete(ctx, db, rec, aid, rid, slot)
	},
}

const commitsPerCycle = 4

// callerSetup gives each caller an availability and a slot that only it
// can take (shared: one availability and slots every caller can take).
// ReserveSlot picks the availability itself, so the terms do the steering:
// availability k has MinPrice = MaxCollateral = k+1, and caller c's slots
// pay c+1 and ask c+1 collateral, which only availability c accepts.
func callerSetup(b *testing.B, s *reservations.Store, callers int, shared bool) ([]reservations.AvailabilityID, []stowage.Slot) {
	ids := make([]reservations.AvailabilityID, callers)
	slots := make([]stowage.Slot, callers)
	for c := range callers {
		k := uint64(c + 1)
		if shared {
			k = 1
		}
		if c == 0 || !shared {
			a, err := s.AddAvailability(b.Context(), reservations.Availability{TotalSize: 1 << 40, Duration: 1 << 20, MinPrice: u(k), MaxCollateral: u(k)})
			require.NoError(b, err)
			ids[c] = a.ID
		} else {
			ids[c] = ids[0]
		}
		slots[c] = stowage.Slot{
			RequestID: stowage.RequestID{byte(c), byte(c >> 8), 0xbe},
			Ask:       stowage.StorageAsk{SlotSize: 2 * benchBlock, Duration: 1, Reward: u(k), Collateral: u(k)},
		}
	}
	return ids, slots
}

// BenchmarkCycleFsync: issue 8. Reservation cycles on LevelDB with fsync at
// 1 to 32 concurrent callers, each on its own availability or all on one,
// beside the fsync limit: the same batches through a plain group commit
// over goleveldb. Metrics: cycles/s and commits/fsync.
func BenchmarkCycleFsync(b *testing.B) {
	for _, kind := range []cycleKind{slotCycle, releaseCycle} {
		for _, shared := range []bool{false, true} {
			avail := "own"
			if shared {
				avail = "shared"
			}
			for _, callers := range []int{1, 4, 16, 32} {
				name := fmt.Sprintf("%s/%s/callers=%d", kind.name, avail, callers)
				b.Run(name+"/stowage", func(b *testing.B) {
					var syncs atomic.Int64
					s := reservations.New(openCountedRepo(b, &syncs))
					ids, slots := callerSetup(b, s, callers, shared)
					data := make([]byte, benchBlock)
					syncs.Store(0)
					runCallers(b, callers, func(c, i int) error {
						return kind.stowage(context.Background(), s, ids[c], slots[c], c, i, data)
					})
					b.ReportMetric(float64(commitsPerCycle*b.N)/float64(syncs.Load()), "commits/fsync")
				})
				b.Run(name+"/baseline", func(b *testing.B) {
					var syncs atomic.Int64
					db := openGroupDB(b, &syncs)
					rec := newRawRecords(b)
					aids := make([]string, callers)
					for c := range callers {
						aids[c] = uuid.Must(uuid.NewV7()).String()
						if shared && c > 0 {
							aids[c] = aids[0]
						}
						require.NoError(b, db.write(b.Context(), []rawOp{{key: availKey(aids[c]), value: rec.avail}}))
					}
					syncs.Store(0)
					runCallers(b, callers, func(c, i int) error {
						return kind.raw(context.Background(), db, rec, aids[c], "req"+strconv.Itoa(c), c, i)
					})
					b.ReportMetric(float64(commitsPerCycle*b.N)/float64(syncs.Load()), "commits/fsync")
				})
			}
		}
	}
}

// BenchmarkCycle: the first round's ratios, for the second round's cycle
// ReserveSlot → Store.PutBlock ×2 → DeleteReservation, one caller, on the
// in-memory map, LevelDB without and with fsync (repo.Open / go-ds-leveldb).
func BenchmarkCycle(b *testing.B) {
	type backend struct {
		name  string
		store func(b *testing.B) *repo.Repo
		raw   func(b *testing.B) datastore.Batching
	}
	mem := func(*testing.B) datastore.Batching { return dssync.MutexWrap(datastore.NewMapDatastore()) }
	openRepo := func(opts ...repo.Option) func(b *testing.B) *repo.Repo {
		return func(b *testing.B) *repo.Repo {
			r, err := repo.Open(b.Context(), b.TempDir(), append(opts, repo.WithQuotaMaxBytes(benchQuota))...)
			require.NoError(b, err)
			b.Cleanup(func() { _ = r.Close() })
			return r
		}
	}
	openRaw := func(noSync bool) func(b *testing.B) datastore.Batching {
		return func(b *testing.B) datastore.Batching {
			db, err := dsleveldb.NewDatastore(b.TempDir(), &dsleveldb.Options{NoSync: noSync})
			require.NoError(b, err)
			b.Cleanup(func() { _ = db.Close() })
			return db
		}
	}
	backends := []backend{
		{"mem", func(b *testing.B) *repo.Repo {
			r, err := repo.New(b.Context(), mem(b), repo.WithQuotaMaxBytes(benchQuota))
			require.NoError(b, err)
			return r
		}, mem},
		{"leveldb-nosync", openRepo(repo.WithNoSync()), openRaw(true)},
		{"leveldb-fsync", openRepo(), openRaw(false)},
	}
	for _, be := range backends {
		b.Run(be.name+"/stowage", func(b *testing.B) {
			s := reservations.New(be.store(b))
			ids, slots := callerSetup(b, s, 1, false)
			data := make([]byte, benchBlock)
			runCallers(b, 1, func(c, i int) error {
				return slotCycle.stowage(b.Context(), s, ids[c], slots[c], c, i, data)
			})
		})
		b.Run(be.name+"/baseline", func(b *testing.B) {
			db := dsRaw{be.raw(b)}
			rec := newRawRecords(b)
			aid := uuid.Must(uuid.NewV7()).String()
			require.NoError(b, db.write(b.Context(), []rawOp{{key: availKey(aid), value: rec.avail}}))
			runCallers(b, 1, func(c, i int) error {
				return slotCycle.raw(b.Context(), db, rec, aid, "req", c, i)
			})
		})
	}
}

// BenchmarkOpenFindAvailability: issue 9. Open a LevelDB repo holding
// 100,000 reservations over 100 availabilities and run the first
// FindAvailability, beside opening the same directory with go-ds-leveldb
// and reading the 100 availability records by key.
func BenchmarkOpenFindAvailability(b *testing.B) {
	const nAvail, nRes = 100, 100_000
	dir := b.TempDir()
	keys := buildBig(b, dir, nAvail, nRes)
	ctx := context.Background()
	b.Run("stowage", func(b *testing.B) {
		for b.Loop() {
			r, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(benchQuota))
			require.NoError(b, err)
			_, err = reservations.New(r).FindAvailability(ctx, findSlot(benchBlock, 1, u(1), u(1)))
			require.NoError(b, err)
			require.NoError(b, r.Close())
		}
	})
	b.Run("baseline", func(b *testing.B) {
		for b.Loop() {
			db, err := dsleveldb.NewDatastore(dir, nil)
			require.NoError(b, err)
			for _, k := range keys {
				_, err := db.Get(ctx, k)
				require.NoError(b, err)
			}
			require.NoError(b, db.Close())
		}
	})
}

// buildBig fills dir (without fsync, several callers so writes group) and
// returns the keys of the availability records.
func buildBig(b *testing.B, dir string, nAvail, nRes int) []datastore.Key {
	ctx := context.Background()
	r, err := repo.Open(ctx, dir, repo.WithNoSync(), repo.WithQuotaMaxBytes(benchQuota))
	require.NoError(b, err)
	s := reservations.New(r)
	keys := make([]datastore.Key, nAvail)
	ids := make([]reservations.AvailabilityID, nAvail)
	for i := range nAvail {
		a, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 1 << 40, Duration: 1 << 20, MinPrice: u(1), MaxCollateral: u(1)})
		require.NoError(b, err)
		ids[i], keys[i] = a.ID, reservations.KeyOf(a)
	}
	const workers = 8
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < nRes; i += workers {
				if _, err := s.CreateReservation(ctx, ids[i%nAvail], anySlot(reqID(7), uint64(i), benchBlock)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	require.NoError(b, r.Close())
	// Compact fully, so that no open in the timed loops pays for the build.
	db, err := leveldb.OpenFile(dir, nil)
	require.NoError(b, err)
	require.NoError(b, db.CompactRange(util.Range{}))
	require.NoError(b, db.Close())
	return keys
}

// BenchmarkHeapPerReservation: what a live reservation costs in heap, on
// the in-memory map (which holds the records themselves) beside the same
// records put into the map directly. The difference is the Store's own.
func BenchmarkHeapPerReservation(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	b.Run("stowage", func(b *testing.B) {
		var per float64
		for b.Loop() {
			ds := dssync.MutexWrap(datastore.NewMapDatastore())
			r, err := repo.New(ctx, ds, repo.WithQuotaMaxBytes(benchQuota))
			require.NoError(b, err)
			s := reservations.New(r)
			a, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 1 << 40, Duration: 1 << 20, MinPrice: u(1), MaxCollateral: u(1)})
			require.NoError(b, err)
			_, err = s.FindAvailability(ctx, findSlot(1, 1, u(1), u(1))) // hints loaded
			require.NoError(b, err)
			before := heapAlloc()
			for i := range n {
				_, err := s.CreateReservation(ctx, a.ID, anySlot(reqID(7), uint64(i), benchBlock))
				require.NoError(b, err)
			}
			per = (float64(heapAlloc()) - float64(before)) / n
			runtime.KeepAlive(s)
			runtime.KeepAlive(ds)
		}
		b.ReportMetric(per, "B/reservation")
	})
	b.Run("baseline", func(b *testing.B) {
		var per float64
		for b.Loop() {
			ds := dssync.MutexWrap(datastore.NewMapDatastore())
			db := dsRaw{ds}
			rec := newRawRecords(b)
			aid := uuid.Must(uuid.NewV7()).String()
			require.NoError(b, db.write(ctx, []rawOp{{key: availKey(aid), value: rec.avail}}))
			before := heapAlloc()
			for i := range n {
				rid := uuid.Must(uuid.NewV7()).String()
				own := rec
				own.res = bytes.Clone(rec.res) // the map keeps the slice it is given; the Store encodes each record anew
				require.NoError(b, rawReserve(ctx, db, own, aid, rid, slotKey(reqID(7).String(), i)))
			}
			per = (float64(heapAlloc()) - float64(before)) / n
			runtime.KeepAlive(ds)
		}
		b.ReportMetric(per, "B/reservation")
	})
}

func heapAlloc() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Package stowagetest checks that a datastore can carry a stowage repo: a
// conformance suite for applications that bring their own
// datastore.Batching (Badger, Pebble, a namespace of a larger store, ...)
// instead of the embedded LevelDB.
//
// Call Datastore from a test of your own, and run it with -race:
//
//	func TestMyStore(t *testing.T) {
//		stowagetest.Datastore(t, func(t testing.TB) datastore.Batching {
//			return openMyStore(t.TempDir())
//		})
//	}
//
// open must return a new, empty datastore each time it is called; the suite
// closes nothing, so register cleanup with t.Cleanup. Each subtest is also
// exported (SubtestCountersRoundTrip, ...), to run one by one.
//
// # What each subtest checks
//
//   - SubtestCountersRoundTrip: repo.Reserve, Release, PutBlock (and an
//     overwrite) and DeleteBlock leave the quota a fresh repo.New reads back
//     (GetSize and Query's sizes report stored lengths), and a deleted block
//     reads as datastore.ErrNotFound.
//   - SubtestRecordsRoundTrip: every kind of record the reservations store
//     writes (availabilities, reservations, slot and block indexes, blocks
//     through Store.PutBlock) is listed in order and found by a fresh Store,
//     and Verify passes: Query honours Prefix and key order, and keys map
//     back unchanged (a key transform whose ConvertKey and InvertKey disagree
//     on some keys fails here).
//   - SubtestConcurrentReservationsNeverOvercommit: 64 goroutines reserve
//     from one availability; exactly as many succeed as fit.
//   - SubtestConcurrentIO: goroutines write blocks and records (ReserveSlot,
//     Store.PutBlock, DeleteReservation, repo.PutBlock, repo.DeleteBlock)
//     while others read and scan (Availabilities, Reservations,
//     repo.GetBlock, a raw Query of the whole datastore); every read must
//     succeed and return whole values, and afterwards Verify must pass and
//     every acknowledged block must be there. A store that is not safe for
//     concurrent use fails here under -race: a bare
//     datastore.NewMapDatastore() (not wrapped in sync.MutexWrap) is reported
//     as a data race, or the process dies with "concurrent map iteration and
//     map write". Without -race such a store may pass.
//   - SubtestFailureAtEveryWrite: a scripted scenario of every mutation
//     (AddAvailability, CreateReservation, ReserveSlot, Store.PutBlock,
//     Release, ModifyAvailability, DeleteReservation of a reservation with
//     blocks, DeleteAvailability, repo.PutBlock, repo.DeleteBlock) is run
//     once per write, with that write failing. After each run the quota in
//     memory must equal what a fresh repo.New reads, and a fresh Store's
//     Verify (every invariant, see reservations.Store.Verify) must pass
//     (with WithBlockstore, see there). A batch that applies its writes
//     before Commit (one by one) fails here. After a failed Commit the repo
//     refuses writes (repo.ErrWriteFailed) and the scenario goes on.
//
// Datastore runs them all. When the datastore implements
// datastore.TxnDatastore it runs them all again under "Transactions" with
// repo.WithTransactions, unless repo.New refuses that option with
// repo.ErrInvalidOption (its transactions do not work, as with keytransform
// and namespace wrappers): that is the store's answer, logged, not a
// failure.
//
// CrashSafety, for persistent stores, is run separately: it SIGKILLs a child
// process in the middle of writing from several goroutines, reopens the
// directory and checks every invariant and every acknowledged write. It is
// how a batch that is not atomic on disk, or a store that acknowledges
// writes it only buffers (autobatch), shows, when a kill lands at the
// wrong moment.
//
// # What it cannot check
//
// The fault sweep injects failures around the datastore it is given, not
// inside it: a store composed of several stores (mount) whose batch commits
// them one after another and fails between them is not caught there;
// CrashSafety catches it only if a kill happens to land between them.
// Likewise a SIGKILL tests what reaches the operating system, not power
// loss: whether the store fsyncs is not checked. A race shows only under
// -race, and only if the schedule produces it.
package stowagetest

import (
	"errors"
	"testing"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
)

// ErrInjected is the failure the suite injects into writes.
var ErrInjected = errors.New("stowagetest: injected failure")

// quota is the suite's repo quota, big enough for every scenario.
const quota = 1 << 30

// Option configures the suite.
type Option func(*config)

type config struct {
	repoOpts []repo.Option
	blocks   func(t testing.TB) datastore.Batching
}

// WithRepoOptions passes options to every repo.New the suite makes (before
// the suite's own repo.WithQuotaMaxBytes, which wins). Pass
// repo.WithTransactions to run a subtest with transactions. Do not pass
// repo.WithBlockstore here: a block store shared by the subtests' fresh
// repos would hold blocks their quota does not count; use WithBlockstore.
func WithRepoOptions(opts ...repo.Option) Option {
	return func(c *config) { c.repoOpts = append(c.repoOpts, opts...) }
}

// WithBlockstore keeps blocks in a separate store (repo.WithBlockstore),
// opened with open, which like Datastore's open must return a new, empty
// store each time. Blocks and the metadata that counts them then cannot
// change atomically together, and a failure between the two leaves Used
// over-counted, by design (see repo.WithBlockstore), which Verify reports.
// So the fault sweep injects failures into the metadata store only and,
// instead of Verify, checks that Reserved balances the records and that
// Used counts at least the stored blocks.
func WithBlockstore(open func(t testing.TB) datastore.Batching) Option {
	return func(c *config) { c.blocks = open }
}

func apply(opts []Option) *config {
	c := &config{}
	for _, o := range opts {
		o(c)
	}
	return c
}

// stores are the datastores of one repo.
type stores struct {
	meta   datastore.Batching
	blocks datastore.Batching // nil: blocks in meta
}

func (c *config) open(t testing.TB, open func(t testing.TB) datastore.Batching) stores {
	s := stores{meta: open(t)}
	if c.blocks != nil {
		s.blocks = c.blocks(t)
	}
	return s
}

func (c *config) repoOptions(s stores) []repo.Option {
	opts := append([]repo.Option(nil), c.repoOpts...)
	if s.blocks != nil {
		opts = append(opts, repo.WithBlockstore(s.blocks))
	}
	return append(opts, repo.WithQuotaMaxBytes(quota))
}

// newRepo opens a repo on s; it fails t if repo.New does.
func (c *config) newRepo(t testing.TB, s stores) *repo.Repo {
	t.Helper()
	r, err := repo.New(t.Context(), s.meta, c.repoOptions(s)...)
	check(t, err, "repo.New")
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// Datastore runs every subtest on fresh datastores from open, then, when
// they implement datastore.TxnDatastore and repo.New accepts
// repo.WithTransactions on them, runs them all again with transactions.
func Datastore(t *testing.T, open func(t testing.TB) datastore.Batching, opts ...Option) {
	all(t, open, opts)
	c := apply(opts)
	s := c.open(t, open)
	if _, ok := s.meta.(datastore.TxnDatastore); !ok {
		return
	}
	withTxn := append(append([]Option(nil), opts...), WithRepoOptions(repo.WithTransactions()))
	r, err := repo.New(t.Context(), s.meta, apply(withTxn).repoOptions(s)...)
	switch {
	case errors.Is(err, repo.ErrInvalidOption):
		t.Logf("%T has NewTransaction but repo.New refuses its transactions (%v): not run with repo.WithTransactions", s.meta, err)
		return
	case err != nil:
		t.Fatalf("repo.New with transactions: %v", err)
	}
	_ = r.Close()
	t.Run("Transactions", func(t *testing.T) { all(t, open, withTxn) })
}

func all(t *testing.T, open func(t testing.TB) datastore.Batching, opts []Option) {
	t.Run("CountersRoundTrip", func(t *testing.T) { SubtestCountersRoundTrip(t, open, opts...) })
	t.Run("RecordsRoundTrip", func(t *testing.T) { SubtestRecordsRoundTrip(t, open, opts...) })
	t.Run("ConcurrentReservationsNeverOvercommit", func(t *testing.T) {
		SubtestConcurrentReservationsNeverOvercommit(t, open, opts...)
	})
	t.Run("ConcurrentIO", func(t *testing.T) { SubtestConcurrentIO(t, open, opts...) })
	t.Run("FailureAtEveryWrite", func(t *testing.T) { SubtestFailureAtEveryWrite(t, open, opts...) })
}

func check(t testing.TB, err error, what string) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// slotOf is slot index of request req, of size bytes, on terms the
// suite's availabilities (Duration 100, MinPrice and MaxCollateral 1)
// take: it lasts a second, pays 1 and asks no collateral.
func slotOf(req stowage.RequestID, index, size uint64) stowage.Slot {
	return stowage.Slot{RequestID: req, Index: index, Ask: stowage.StorageAsk{Slots: index + 1, SlotSize: size, Duration: 1, Reward: *uint256.NewInt(1)}}
}

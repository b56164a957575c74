package promstowage_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/failstore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/promstowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
	"github.com/stowage/stowage/slotqueue"
)

func slot(req byte, index, size uint64, expiry time.Time) stowage.Slot {
	return stowage.Slot{
		RequestID: stowage.RequestID{req},
		Index:     index,
		Ask:       stowage.StorageAsk{Slots: index + 1, SlotSize: size, Duration: 60, Reward: *uint256.NewInt(1000), Collateral: *uint256.NewInt(1)},
		Expiry:    expiry,
	}
}

// A scripted run of a host, then every metric checked.
func TestCollector_ScriptedRun(t *testing.T) {
	ctx := context.Background()
	var failCommit atomic.Bool
	meta := failstore.NewFailstore(dssync.MutexWrap(datastore.NewMapDatastore()), func(op string) error {
		if op == "batch-commit" && failCommit.Load() {
			return errors.New("injected commit failure")
		}
		return nil
	})
	r, err := repo.New(ctx, meta, repo.WithQuotaMaxBytes(1_000_000))
	require.NoError(t, err)
	defer r.Close()
	store := reservations.New(r)

	// Availabilities A (100 000 bytes) and B (50 000); two slots of 1000
	// bytes reserved from A, 100 bytes written for the first, the second
	// given back.
	a, err := store.AddAvailability(ctx, reservations.Availability{TotalSize: 100_000, Duration: 3600, MaxCollateral: *uint256.NewInt(10)})
	require.NoError(t, err)
	_, err = store.AddAvailability(ctx, reservations.Availability{TotalSize: 50_000, Duration: 3600})
	require.NoError(t, err)
	r1, err := store.CreateReservation(ctx, a.ID, slot(1, 0, 1000, time.Time{}))
	require.NoError(t, err)
	require.NoError(t, store.PutBlock(ctx, r1.ID, datastore.NewKey("/b/1"), make([]byte, 100)))
	r2, err := store.CreateReservation(ctx, a.ID, slot(2, 0, 1000, time.Time{}))
	require.NoError(t, err)
	require.NoError(t, store.DeleteReservation(ctx, r2.ID))

	// A queue of 3 slots at most, one worker: request 7's slot 0 is put
	// back (no availability), slot 1 fails, slot 2 succeeds; then, paused,
	// request 8's three slots fill the queue and evict one, and an expired
	// slot is dropped at once.
	now := time.Unix(1_800_000_000, 0)
	q, err := slotqueue.New(func(ctx context.Context, it slotqueue.Item) error {
		switch it.Index {
		case 0:
			return fmt.Errorf("no fit: %w", slotqueue.ErrRequeue)
		case 1:
			return errors.New("download failed")
		}
		return nil
	}, slotqueue.WithMaxSize(3), slotqueue.WithMaxWorkers(1), slotqueue.WithClock(func() time.Time { return now }))
	require.NoError(t, err)
	q.Start()
	defer q.Stop()
	items, err := slotqueue.ItemsForRequest(stowage.RequestID{7}, slot(7, 2, 1000, time.Time{}).Ask, time.Time{})
	require.NoError(t, err)
	require.NoError(t, q.Push(items...))
	require.NoError(t, q.WaitIdle(ctx))
	q.Pause()
	more, err := slotqueue.ItemsForRequest(stowage.RequestID{8}, slot(8, 2, 1000, time.Time{}).Ask, time.Time{})
	require.NoError(t, err)
	require.NoError(t, q.Push(more...))
	require.NoError(t, q.Push(slotqueue.Item{Slot: slot(9, 0, 1000, now.Add(-time.Hour))}))

	// Then a commit fails.
	failCommit.Store(true)
	_, err = store.AddAvailability(ctx, reservations.Availability{TotalSize: 10, Duration: 1})
	require.ErrorIs(t, err, repo.ErrWriteFailed)

	c := promstowage.New(r, store, promstowage.WithQueue(q))
	s := r.Stats()
	require.NotZero(t, s.Commits)
	expected := fmt.Sprintf(`
# HELP stowage_quota_max_bytes The repo's quota in bytes.
# TYPE stowage_quota_max_bytes gauge
stowage_quota_max_bytes 1e+06
# HELP stowage_quota_used_bytes Bytes of the blocks stored.
# TYPE stowage_quota_used_bytes gauge
stowage_quota_used_bytes 100
# HELP stowage_quota_reserved_bytes Bytes promised to availabilities and reservations and not yet written.
# TYPE stowage_quota_reserved_bytes gauge
stowage_quota_reserved_bytes 149900
# HELP stowage_repo_blocks Blocks stored.
# TYPE stowage_repo_blocks gauge
stowage_repo_blocks 1
# HELP stowage_repo_commits_total Groups of changes committed, each one batch and one fsync.
# TYPE stowage_repo_commits_total counter
stowage_repo_commits_total %d
# HELP stowage_repo_write_failures_total Commits that failed.
# TYPE stowage_repo_write_failures_total counter
stowage_repo_write_failures_total 1
# HELP stowage_repo_conflicts_total Transactions retried after a conflict with another process (shared mode).
# TYPE stowage_repo_conflicts_total counter
stowage_repo_conflicts_total 0
# HELP stowage_availabilities Availabilities.
# TYPE stowage_availabilities gauge
stowage_availabilities 2
# HELP stowage_availability_offered_bytes Bytes offered by the availabilities (their totalSize).
# TYPE stowage_availability_offered_bytes gauge
stowage_availability_offered_bytes 150000
# HELP stowage_availability_free_bytes Bytes of the availabilities that no reservation holds.
# TYPE stowage_availability_free_bytes gauge
stowage_availability_free_bytes 149000
# HELP stowage_availability_held_bytes Bytes of the availabilities that reservations hold.
# TYPE stowage_availability_held_bytes gauge
stowage_availability_held_bytes 1000
# HELP stowage_reservations Reservations.
# TYPE stowage_reservations gauge
stowage_reservations 1
# HELP stowage_reservation_reserved_bytes Bytes the reservations hold for blocks not yet written.
# TYPE stowage_reservation_reserved_bytes gauge
stowage_reservation_reserved_bytes 900
# HELP stowage_reservation_used_bytes Bytes of the blocks written for the reservations.
# TYPE stowage_reservation_used_bytes gauge
stowage_reservation_used_bytes 100
# HELP stowage_queue_items Slots waiting in the queue.
# TYPE stowage_queue_items gauge
stowage_queue_items 3
# HELP stowage_queue_capacity_items Most slots the queue holds.
# TYPE stowage_queue_capacity_items gauge
stowage_queue_capacity_items 3
# HELP stowage_queue_busy_workers Workers processing a slot.
# TYPE stowage_queue_busy_workers gauge
stowage_queue_busy_workers 0
# HELP stowage_queue_paused 1 while the queue is paused, else 0.
# TYPE stowage_queue_paused gauge
stowage_queue_paused 1
# HELP stowage_queue_pushed_total Slots pushed to the queue.
# TYPE stowage_queue_pushed_total counter
stowage_queue_pushed_total 7
# HELP stowage_queue_processed_total Slots processed, whatever the outcome.
# TYPE stowage_queue_processed_total counter
stowage_queue_processed_total 3
# HELP stowage_queue_failed_total Slots whose processing failed.
# TYPE stowage_queue_failed_total counter
stowage_queue_failed_total 1
# HELP stowage_queue_requeued_total Slots put back to wait for an availability.
# TYPE stowage_queue_requeued_total counter
stowage_queue_requeued_total 1
# HELP stowage_queue_dropped_total Slots dropped unprocessed, by reason: evicted by a full queue, or expired.
# TYPE stowage_queue_dropped_total counter
stowage_queue_dropped_total{reason="evicted"} 1
stowage_queue_dropped_total{reason="expired"} 1
`, s.Commits)
	names := []string{}
	for _, l := range strings.Split(expected, "\n") {
		if n, ok := strings.CutPrefix(l, "# TYPE "); ok {
			names = append(names, strings.Fields(n)[0])
		}
	}
	assert.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(expected), names...))

	// The histograms: one observation per commit (and per failed commit
	// for the latency), each group of one change here.
	groups := fmt.Sprintf(`
# HELP stowage_repo_commit_group_changes Changes per committed group.
# TYPE stowage_repo_commit_group_changes histogram
stowage_repo_commit_group_changes_bucket{le="1"} %[1]d
stowage_repo_commit_group_changes_bucket{le="2"} %[1]d
stowage_repo_commit_group_changes_bucket{le="4"} %[1]d
stowage_repo_commit_group_changes_bucket{le="8"} %[1]d
stowage_repo_commit_group_changes_bucket{le="16"} %[1]d
stowage_repo_commit_group_changes_bucket{le="32"} %[1]d
stowage_repo_commit_group_changes_bucket{le="64"} %[1]d
stowage_repo_commit_group_changes_bucket{le="128"} %[1]d
stowage_repo_commit_group_changes_bucket{le="256"} %[1]d
stowage_repo_commit_group_changes_bucket{le="512"} %[1]d
stowage_repo_commit_group_changes_bucket{le="+Inf"} %[1]d
stowage_repo_commit_group_changes_sum %[1]d
stowage_repo_commit_group_changes_count %[1]d
`, s.Commits)
	assert.NoError(t, testutil.CollectAndCompare(c, strings.NewReader(groups), "stowage_repo_commit_group_changes"))
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	var latency uint64
	for _, mf := range mfs {
		if mf.GetName() == "stowage_repo_commit_duration_seconds" {
			h := mf.GetMetric()[0].GetHistogram()
			latency = h.GetSampleCount()
			assert.Positive(t, h.GetSampleSum())
			assert.Len(t, h.GetBucket(), 16)
		}
	}
	assert.Equal(t, s.Commits+1, latency, "every commit timed, the failed one too")
	assert.Equal(t, len(names)+2+1, testutil.CollectAndCount(c), "every metric once, the two histograms too, dropped once per reason")
}

func TestCollector_Lint(t *testing.T) {
	ctx := context.Background()
	r, err := repo.New(ctx, dssync.MutexWrap(datastore.NewMapDatastore()))
	require.NoError(t, err)
	defer r.Close()
	q, err := slotqueue.New(func(context.Context, slotqueue.Item) error { return nil })
	require.NoError(t, err)
	problems, err := testutil.CollectAndLint(promstowage.New(r, reservations.New(r), promstowage.WithQueue(q)))
	require.NoError(t, err)
	assert.Empty(t, problems)
}

// Without a queue there are no queue metrics; a closed repo's figures are
// errors, not zeros.
func TestCollector_NoQueueAndErrors(t *testing.T) {
	ctx := context.Background()
	r, err := repo.New(ctx, dssync.MutexWrap(datastore.NewMapDatastore()))
	require.NoError(t, err)
	c := promstowage.New(r, reservations.New(r))
	n := testutil.CollectAndCount(c)
	assert.Equal(t, 16, n)
	assert.Zero(t, testutil.CollectAndCount(c, "stowage_queue_items"))

	require.NoError(t, r.Close())
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	_, err = reg.Gather()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "closed")
}

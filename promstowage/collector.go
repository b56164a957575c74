package promstowage

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
	"github.com/stowage/stowage/slotqueue"
)

// scrapeTimeout bounds the reads of one scrape.
const scrapeTimeout = 10 * time.Second

type options struct {
	queue *slotqueue.Queue
}

// Option configures New.
type Option func(*options)

// WithQueue adds the metrics of a slot queue (stowage_queue_...).
func WithQueue(q *slotqueue.Queue) Option {
	return func(o *options) { o.queue = q }
}

// Collector is a prometheus.Collector of a host's metrics (see the package
// doc for the list). It is safe for concurrent use; register it once.
type Collector struct {
	repo  *repo.Repo
	store *reservations.Store
	queue *slotqueue.Queue
	descs descs
}

var _ prometheus.Collector = (*Collector)(nil)

type descs struct {
	quotaMax, quotaUsed, quotaReserved, blocks            *prometheus.Desc
	commits, groupChanges, commitSeconds, failures, confl *prometheus.Desc

	availabilities, offered, free, held *prometheus.Desc
	reservations, resReserved, resUsed  *prometheus.Desc

	queueItems, queueCap, queueBusy, queuePaused *prometheus.Desc
	pushed, processed, failed, requeued, dropped *prometheus.Desc
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// New returns a collector over r and store (the store made on r).
func New(r *repo.Repo, store *reservations.Store, opts ...Option) *Collector {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	return &Collector{repo: r, store: store, queue: o.queue, descs: descs{
		quotaMax:      desc("stowage_quota_max_bytes", "The repo's quota in bytes."),
		quotaUsed:     desc("stowage_quota_used_bytes", "Bytes of the blocks stored."),
		quotaReserved: desc("stowage_quota_reserved_bytes", "Bytes promised to availabilities and reservations and not yet written."),
		blocks:        desc("stowage_repo_blocks", "Blocks stored."),
		commits:       desc("stowage_repo_commits_total", "Groups of changes committed, each one batch and one fsync."),
		groupChanges:  desc("stowage_repo_commit_group_changes", "Changes per committed group."),
		commitSeconds: desc("stowage_repo_commit_duration_seconds", "Time of each commit (write and fsync), failed ones included."),
		failures:      desc("stowage_repo_write_failures_total", "Commits that failed."),
		confl:         desc("stowage_repo_conflicts_total", "Transactions retried after a conflict with another process (shared mode)."),

		availabilities: desc("stowage_availabilities", "Availabilities."),
		offered:        desc("stowage_availability_offered_bytes", "Bytes offered by the availabilities (their totalSize)."),
		free:           desc("stowage_availability_free_bytes", "Bytes of the availabilities that no reservation holds."),
		held:           desc("stowage_availability_held_bytes", "Bytes of the availabilities that reservations hold."),
		reservations:   desc("stowage_reservations", "Reservations."),
		resReserved:    desc("stowage_reservation_reserved_bytes", "Bytes the reservations hold for blocks not yet written."),
		resUsed:        desc("stowage_reservation_used_bytes", "Bytes of the blocks written for the reservations."),

		queueItems:  desc("stowage_queue_items", "Slots waiting in the queue."),
		queueCap:    desc("stowage_queue_capacity_items", "Most slots the queue holds."),
		queueBusy:   desc("stowage_queue_busy_workers", "Workers processing a slot."),
		queuePaused: desc("stowage_queue_paused", "1 while the queue is paused, else 0."),
		pushed:      desc("stowage_queue_pushed_total", "Slots pushed to the queue."),
		processed:   desc("stowage_queue_processed_total", "Slots processed, whatever the outcome."),
		failed:      desc("stowage_queue_failed_total", "Slots whose processing failed."),
		requeued:    desc("stowage_queue_requeued_total", "Slots put back to wait for an availability."),
		dropped:     desc("stowage_queue_dropped_total", "Slots dropped unprocessed, by reason: evicted by a full queue, or expired.", "reason"),
	}}
}

// Describe sends the descriptions of every metric the collector reports.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	d := &c.descs
	for _, x := range []*prometheus.Desc{
		d.quotaMax, d.quotaUsed, d.quotaReserved, d.blocks,
		d.commits, d.groupChanges, d.commitSeconds, d.failures, d.confl,
		d.availabilities, d.offered, d.free, d.held,
		d.reservations, d.resReserved, d.resUsed,
	} {
		ch <- x
	}
	if c.queue != nil {
		for _, x := range []*prometheus.Desc{
			d.queueItems, d.queueCap, d.queueBusy, d.queuePaused,
			d.pushed, d.processed, d.failed, d.requeued, d.dropped,
		} {
			ch <- x
		}
	}
}

// Collect reads the figures and sends them. A figure it cannot read is sent
// as an invalid metric carrying the error.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	d := &c.descs
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	counter := func(desc *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.CounterValue, float64(v), labels...)
	}
	fail := func(err error, descs ...*prometheus.Desc) {
		for _, desc := range descs {
			ch <- prometheus.NewInvalidMetric(desc, err)
		}
	}

	q := c.repo.Quota()
	gauge(d.quotaMax, float64(q.Max))
	gauge(d.quotaUsed, float64(q.Used))
	gauge(d.quotaReserved, float64(q.Reserved))
	if n, err := c.repo.CountBlocks(ctx); err != nil {
		fail(err, d.blocks)
	} else {
		gauge(d.blocks, float64(n))
	}

	s := c.repo.Stats()
	counter(d.commits, s.Commits)
	ch <- histogram(d.groupChanges, s.GroupSize)
	ch <- histogram(d.commitSeconds, s.CommitSeconds)
	counter(d.failures, s.WriteFailures)
	counter(d.confl, s.Conflicts)

	if as, err := c.store.Availabilities(ctx); err != nil {
		fail(err, d.availabilities, d.offered, d.free, d.held)
	} else {
		var offered, free uint64
		for _, a := range as {
			offered += a.TotalSize
			free += a.Size
		}
		gauge(d.availabilities, float64(len(as)))
		gauge(d.offered, float64(offered))
		gauge(d.free, float64(free))
		gauge(d.held, float64(offered-free))
	}
	if rs, err := c.store.Reservations(ctx); err != nil {
		fail(err, d.reservations, d.resReserved, d.resUsed)
	} else {
		var reserved, used uint64
		for _, r := range rs {
			reserved += r.Size
			used += r.Used
		}
		gauge(d.reservations, float64(len(rs)))
		gauge(d.resReserved, float64(reserved))
		gauge(d.resUsed, float64(used))
	}

	if c.queue == nil {
		return
	}
	qs := c.queue.Stats()
	gauge(d.queueItems, float64(qs.Waiting))
	gauge(d.queueCap, float64(c.queue.Cap()))
	gauge(d.queueBusy, float64(qs.Busy))
	paused := 0.0
	if c.queue.Paused() {
		paused = 1
	}
	gauge(d.queuePaused, paused)
	counter(d.pushed, qs.Pushed)
	counter(d.processed, qs.Processed)
	counter(d.failed, qs.Failed)
	counter(d.requeued, qs.Requeued)
	counter(d.dropped, qs.Evicted, "evicted")
	counter(d.dropped, qs.Expired, "expired")
}

// histogram turns a repo.Histogram (cumulative counts) into a constant
// Prometheus histogram.
func histogram(desc *prometheus.Desc, h repo.Histogram) prometheus.Metric {
	buckets := make(map[float64]uint64, len(h.Bounds))
	for i, b := range h.Bounds {
		buckets[b] = h.Counts[i]
	}
	return prometheus.MustNewConstHistogram(desc, h.Count, h.Sum, buckets)
}

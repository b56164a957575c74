// Package promstowage exports the state of a storage host built with
// stowage as Prometheus metrics: a prometheus.Collector over a repo, a
// reservations store and, optionally, a slot queue.
//
//	prometheus.MustRegister(promstowage.New(r, store, promstowage.WithQueue(q)))
//	http.Handle("/metrics", promhttp.Handler())
//
// It is a module of its own (github.com/stowage/stowage/promstowage), so a
// program that does not import it has no Prometheus client in its module
// graph. Every figure is read when Prometheus scrapes, from read-only calls
// of the SDK: nothing is counted twice and nothing is kept between scrapes.
//
// # Metrics
//
// Bytes are bytes, times seconds; counters end in _total and count from the
// opening of the repo (or the making of the queue). Codex's names are given
// where Codex has the same figure.
//
//	name                                   type       what                                              Codex
//	stowage_quota_max_bytes                gauge      the repo's quota                                  (REST /space quotaMaxBytes)
//	stowage_quota_used_bytes               gauge      bytes of stored blocks                            codex_repostore_bytes_used
//	stowage_quota_reserved_bytes           gauge      bytes promised and not yet written                codex_repostore_bytes_reserved
//	stowage_repo_blocks                    gauge      blocks stored                                     codex_repostore_blocks
//	stowage_repo_commits_total             counter    groups of changes committed (one fsync each)
//	stowage_repo_commit_group_changes      histogram  changes per committed group
//	stowage_repo_commit_duration_seconds   histogram  time of each commit, write and fsync
//	stowage_repo_write_failures_total      counter    commits that failed
//	stowage_repo_conflicts_total           counter    shared mode: transactions retried after a conflict
//	stowage_availabilities                 gauge      availabilities
//	stowage_availability_offered_bytes     gauge      Σ totalSize of the availabilities
//	stowage_availability_free_bytes        gauge      Σ freeSize: what no reservation holds
//	stowage_availability_held_bytes        gauge      Σ (totalSize - freeSize): what reservations hold
//	stowage_reservations                   gauge      reservations
//	stowage_reservation_reserved_bytes     gauge      Σ size: bytes held for blocks not yet written
//	stowage_reservation_used_bytes         gauge      Σ used: bytes of the blocks written for them
//	stowage_queue_items                    gauge      slots waiting in the queue
//	stowage_queue_capacity_items           gauge      most slots the queue holds
//	stowage_queue_busy_workers             gauge      workers processing a slot
//	stowage_queue_paused                   gauge      1 while the queue is paused
//	stowage_queue_pushed_total             counter    slots pushed
//	stowage_queue_processed_total          counter    slots processed, whatever the outcome
//	stowage_queue_failed_total             counter    processing that failed
//	stowage_queue_requeued_total           counter    slots put back for want of an availability     (codex_reservations_availability_mismatch, near)
//	stowage_queue_dropped_total{reason}    counter    slots dropped unprocessed: reason="evicted" (a full queue) or "expired"
//
// The queue's metrics are there only with WithQueue. Held bytes equal the
// reserved plus used bytes of the reservations (the SDK's invariant), so a
// difference between the two series, scraped at one moment, is a bug worth
// reporting.
//
// # Caveats
//
// The availability and reservation figures list every record at each
// scrape, and stowage_repo_blocks scans every block key: their cost grows
// with the host's size (for a host of many thousands of blocks, scrape
// every minute rather than every few seconds). They are read one after
// another while changes go on, not as one snapshot. A scrape that fails to
// read them reports the error for those metrics (Prometheus marks the
// scrape failed) and the others as usual.
package promstowage

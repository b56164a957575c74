package repo

import (
	"context"
	"fmt"
)

// Stats is what a repo has written since it was opened, for metrics (see
// module github.com/stowage/stowage/promstowage). Every figure counts up
// from zero at New or Open.
type Stats struct {
	// Commits counts the groups of changes committed: each is one batch
	// (or one transaction) and one fsync, however many changes it carried.
	Commits uint64
	// Changes counts the changes in those groups: Changes/Commits is how
	// many callers shared an fsync on average.
	Changes uint64
	// WriteFailures counts the commits that failed (the changes in them
	// failed with ErrWriteFailed or the datastore's error). Conflicts a
	// shared repo retried are not failures.
	WriteFailures uint64
	// Conflicts counts the transactions a repo in shared mode ran again
	// after a conflict with another process.
	Conflicts uint64
	// CommitSeconds is how long each commit took (writing and syncing),
	// failed ones included.
	CommitSeconds Histogram
	// GroupSize is how many changes each committed group carried.
	GroupSize Histogram
	// RetriesPerCall[n] counts the calls of a repo in shared mode that
	// were run n more times after their first attempt (conflicts, lost
	// connections); all zero outside shared mode.
	RetriesPerCall []uint64
}

// Histogram is a snapshot of observations in buckets, in the shape of a
// Prometheus histogram: Counts[i] is the number of observations at most
// Bounds[i] (cumulative); Count and Sum cover every observation, those
// above the last bound included.
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Stats returns a snapshot of what the repo has written. It takes only a
// lock of its own that a commit holds for a few instructions, so call it as
// often as a scrape needs. It works after Close too (the figures stop).
func (r *Repo) Stats() Stats {
	s := r.eng.Stats()
	return Stats{
		Commits:       s.Commits,
		Changes:       s.Changes,
		WriteFailures: s.WriteFailures,
		Conflicts:     s.Conflicts,
		CommitSeconds: Histogram(s.CommitSeconds),
		GroupSize:     Histogram(s.GroupSize),

		RetriesPerCall: r.eng.RetriesPerCall(),
	}
}

// CountBlocks counts the stored blocks by scanning their keys, so its cost
// grows with their number; writes go on meanwhile, and the figure is that of
// some moment of the scan.
func (r *Repo) CountBlocks(ctx context.Context) (uint64, error) {
	n, err := r.eng.CountBlocks(ctx)
	if err != nil {
		return 0, fmt.Errorf("count blocks: %w", err)
	}
	return n, nil
}

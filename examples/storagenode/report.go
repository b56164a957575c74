package main

import (
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stowage/stowage/examples/storagenode/sim"
	"github.com/stowage/stowage/reservations"
	"github.com/stowage/stowage/slotqueue"
)

// ProgressMode is how progress is shown while the simulation runs.
type ProgressMode string

// The progress modes.
const (
	ProgressAuto  ProgressMode = "auto"  // line on a terminal, plain otherwise
	ProgressLine  ProgressMode = "line"  // one line, redrawn in place
	ProgressPlain ProgressMode = "plain" // a line per simulated interval
	ProgressNone  ProgressMode = "none"
)

// resolveProgress turns auto into line or plain, depending on whether w is
// a terminal.
func resolveProgress(mode ProgressMode, w io.Writer) ProgressMode {
	if mode != ProgressAuto {
		return mode
	}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return ProgressLine
		}
	}
	return ProgressPlain
}

// progress prints what the host is doing. In line mode it redraws one line
// every few steps; in plain mode it prints a line each
// time simulated time crosses a multiple of every, so the output of a run
// depends only on its flags.
type progress struct {
	w      io.Writer
	mode   ProgressMode
	start  uint64 // simulated time the scenario started at
	every  uint64 // plain mode: simulated seconds between lines
	redraw int    // line mode: steps between two redraws

	steps   int
	nextSim uint64
	drawn   bool // line mode: a line is on screen
}

func newProgress(w io.Writer, mode ProgressMode, start, every uint64) *progress {
	return &progress{w: w, mode: mode, start: start, every: every, redraw: 64, nextSim: start + every}
}

// update is called between simulation steps.
func (p *progress) update(now uint64, h *Host) {
	switch p.mode {
	case ProgressLine:
		if p.steps++; p.steps%p.redraw == 0 {
			fmt.Fprintf(p.w, "\r%s\x1b[K", p.line(now, h))
			p.drawn = true
		}
	case ProgressPlain:
		if p.every > 0 && now >= p.nextSim {
			for p.nextSim <= now {
				p.nextSim += p.every
			}
			fmt.Fprintln(p.w, p.line(now, h))
		}
	}
}

// done finishes the progress output so what follows starts on a clean line.
func (p *progress) done(now uint64, h *Host) {
	if p.mode == ProgressLine {
		fmt.Fprintf(p.w, "\r%s\x1b[K\n", p.line(now, h))
	}
}

func (p *progress) line(now uint64, h *Host) string {
	st, q, qs, sales := h.Stats(), h.Quota(), h.Queue().Stats(), h.SaleStates()
	active := 0
	for _, n := range sales {
		active += n
	}
	// The host is sampled between clock steps, when it has done all it can:
	// the queue is drained and downloads are done, so the line shows the
	// slots queued and requeued so far rather than what waits right now.
	return fmt.Sprintf("%s  queued %4d  requeued %3d  active %3d  reserved %9s  used %9s  filled %4d  ignored %4d  errored %3d",
		simElapsed(now-p.start), qs.Pushed, qs.Requeued, active, formatBytes(q.Reserved), formatBytes(q.Used),
		st.Filled, ignoredTotal(st), st.Ended["errored"])
}

// simElapsed formats simulated seconds as days, hours and minutes.
func simElapsed(s uint64) string {
	return fmt.Sprintf("sim +%dd%02dh%02dm", s/86400, s%86400/3600, s%3600/60)
}

// formatBytes formats n with a binary unit.
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// report is everything the summary shows.
type report struct {
	host           Stats           // this run
	queue          slotqueue.Stats // this run
	market         sim.Stats       // since the scenario started
	sales          map[string]int  // running when the run stopped, by state
	start          uint64          // simulated time the scenario started at
	runStart, now  uint64          // simulated time this run started and stopped at
	resumed        bool
	wall           time.Duration
	reservations   int
	availabilities []reservations.Availability
	err            error  // Verify
	stopped        string // why the run stopped early, if it did
}

func ignoredTotal(st Stats) int {
	n := 0
	for _, k := range st.Ignored {
		n += k
	}
	return n
}

func ended(st Stats) int {
	n := 0
	for _, k := range st.Ended {
		n += k
	}
	return n
}

// salesPerSecond is the sales that ended per second of wall time, ignored
// ones included (as the first release counted them).
func (r report) salesPerSecond() float64 {
	if r.wall <= 0 {
		return 0
	}
	return float64(ended(r.host)+ignoredTotal(r.host)) / r.wall.Seconds()
}

// writeSummary prints the summary tables and, last, the one-line summary.
func writeSummary(w io.Writer, r report) {
	h, m, q := r.host, r.market, r.queue
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(cells ...any) {
		for i, c := range cells {
			if i > 0 {
				fmt.Fprint(tw, "\t")
			}
			fmt.Fprint(tw, c)
		}
		fmt.Fprintln(tw)
	}
	active := 0
	for _, n := range r.sales {
		active += n
	}
	fmt.Fprintln(w)
	row("OUTCOME (this run)", "SALES")
	row("finished", h.Ended["finished"], "paid out")
	row("cancelled", h.Ended["cancelled"], "request expired before it started")
	row("failed", h.Ended["failed"], "request failed, collateral slashed")
	row("errored", h.Ended["errored"], notes(h.ErroredIn, "in "))
	row("ignored", ignoredTotal(h), notes(h.Ignored, ""))
	row("active", active, notes(r.sales, "")+" (running when the run stopped)")
	row("filled", h.Filled, fmt.Sprintf("%d resumed after a restart", h.Resumed))
	tw.Flush()

	fmt.Fprintln(w)
	taken := q.Processed - q.Requeued
	accounted := taken + q.Evicted + q.Expired + uint64(q.Waiting) + uint64(q.Busy)
	removed := uint64(0)
	if q.Pushed > accounted {
		removed = q.Pushed - accounted
	}
	row("SLOTS (this run)")
	row("queued", fmt.Sprintf("%d of %d requests", q.Pushed, h.Requests))
	row("taken", fmt.Sprintf("%d by the queue's worker (a sale, or ignored for its terms); %d tries put back for want of space", taken, q.Requeued))
	row("dropped", fmt.Sprintf("%d expired, %d evicted by better slots", q.Expired, q.Evicted))
	row("removed", fmt.Sprintf("%d (request started or ended, or slot filled by another host)", removed))
	row("left", fmt.Sprintf("%d waiting, %d being taken", q.Waiting, q.Busy))
	tw.Flush()

	fmt.Fprintln(w)
	row("MARKET (cumulative)")
	row("requests", fmt.Sprintf("%d posted, %d started, %d cancelled, %d failed, %d finished",
		m.Posted, m.Started, m.Cancelled, m.Failed, m.Finished))
	row("slots", fmt.Sprintf("%d filled by this host, %d by others, %d freed",
		m.FilledByHost, m.FilledByOthers, m.Freed))
	row("earned", fmt.Sprintf("%s reward, %s collateral slashed, %s collateral locked",
		m.Earned.Dec(), m.Slashed.Dec(), m.Locked.Dec()))
	tw.Flush()

	fmt.Fprintln(w)
	row("HOST (this run)")
	row("downloaded", formatBytes(h.Downloaded))
	row("collected", h.Collected.Dec()+" (rewards and collateral back)")
	for i, a := range r.availabilities {
		row(fmt.Sprintf("availability %d", i+1), fmt.Sprintf("%s total, %s free, %s held by reservations",
			formatBytes(a.TotalSize), formatBytes(a.Size), formatBytes(a.TotalSize-a.Size)))
	}
	row("reservations", fmt.Sprintf("%d left; at start %d resumed, %d requeued (download goes on), %d deleted (slot no longer the host's); %d reclaimed expired",
		r.reservations, h.Resumed, h.Requeued, h.Orphans, h.Reclaimed))
	if h.Failures > 0 {
		row("failures", fmt.Sprintf("%d errors no sale could take (logged with -v)", h.Failures))
	}
	sim := fmt.Sprintf("%s (this run from %s) in %s wall: %.0f sales/s", simElapsed(r.now-r.start),
		simElapsed(r.runStart-r.start), r.wall.Round(time.Millisecond), r.salesPerSecond())
	row("simulated", sim)
	if r.stopped != "" {
		row("stopped", r.stopped)
	}
	if r.err != nil {
		row("invariant", r.err)
	}
	tw.Flush()

	invariant := "ok"
	if r.err != nil {
		invariant = "FAILED"
	}
	fmt.Fprintf(w, "summary: this run: requests=%d filled=%d ignored=%d errored=%d reservations_left=%d invariant=%s\n",
		h.Requests, h.Filled, ignoredTotal(h), h.Ended["errored"], r.reservations, invariant)
}

// notes lists counts by key, largest first.
func notes(by map[string]int, prefix string) string {
	keys := slices.Sorted(maps.Keys(by))
	slices.SortStableFunc(keys, func(a, b string) int { return by[b] - by[a] })
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if by[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s%s: %d", prefix, k, by[k]))
		}
	}
	return strings.Join(parts, ", ")
}

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

	"github.com/holiman/uint256"
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
// at most every refresh of wall time; in plain mode it prints a line each
// time simulated time crosses a multiple of every, so the output of a run
// depends only on its flags.
type progress struct {
	w       io.Writer
	mode    ProgressMode
	start   uint64 // simulated time the run started at
	every   uint64 // plain mode: simulated seconds between lines
	refresh time.Duration

	lastWall time.Time
	nextSim  uint64
	drawn    bool // line mode: a line is on screen
}

func newProgress(w io.Writer, mode ProgressMode, start, every uint64) *progress {
	return &progress{w: w, mode: mode, start: start, every: every, refresh: 100 * time.Millisecond, nextSim: start + every}
}

// update is called between simulation steps.
func (p *progress) update(now uint64, h *Host) {
	switch p.mode {
	case ProgressLine:
		if t := time.Now(); t.Sub(p.lastWall) >= p.refresh {
			p.lastWall = t
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
	st, q := h.Stats(), h.Quota()
	return fmt.Sprintf("%s  queue %3d  active %3d  reserved %9s  used %9s  filled %4d  ignored %4d  errored %3d",
		simElapsed(now-p.start), h.QueueLen(), st.Active, formatBytes(q.Reserved), formatBytes(q.Used),
		st.Filled, st.Ignored, st.Errored)
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
	host         HostStats
	market       SimStats
	simSeconds   uint64
	wall         time.Duration
	reservations int
	available    []uint64 // free bytes per availability
	err          error    // CheckAccounts
	stopped      string   // why the run stopped early, if it did
}

// salesPerSecond is the sales that ended per second of wall time.
func (r report) salesPerSecond() float64 {
	if r.wall <= 0 {
		return 0
	}
	h := r.host
	ended := h.Finished + h.Cancelled + h.Failed + h.Errored + h.Ignored
	return float64(ended) / r.wall.Seconds()
}

// writeSummary prints the summary table and, last, the one-line summary.
func writeSummary(w io.Writer, r report) {
	h, m := r.host, r.market
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
	fmt.Fprintln(w)
	row("OUTCOME", "SALES")
	row("finished", h.Finished, "paid out")
	row("cancelled", h.Cancelled, "request expired before it started")
	row("failed", h.Failed, "request failed, collateral slashed")
	row("errored", h.Errored, erroredNote(h.ErroredIn))
	row("ignored", h.Ignored, ignoredNote(h.IgnoredReasons))
	row("active", h.Active, "still running when the run stopped")
	row("total", h.Sales, fmt.Sprintf("%d reached filled, %d resumed after a restart", h.Filled, h.Resumed))
	tw.Flush()

	fmt.Fprintln(w)
	row("MARKET")
	row("requests", fmt.Sprintf("%d posted, %d started, %d cancelled, %d failed, %d finished",
		m.Posted, m.Started, m.Cancelled, m.Failed, m.Finished))
	row("slots", fmt.Sprintf("%d filled by this host, %d by others, %d freed",
		m.FilledByHost, m.FilledByOthers, m.Freed))
	row("earned", fmt.Sprintf("%s reward, %s collateral slashed, %s collateral locked",
		amount(m.Earned), amount(m.Slashed), amount(m.Locked)))
	tw.Flush()

	fmt.Fprintln(w)
	row("HOST")
	row("queued", fmt.Sprintf("%d slots of %d requests", h.Queued, h.Requests))
	row("downloaded", formatBytes(h.Downloaded))
	row("collected", amount(h.Collected)+" (rewards and collateral back)")
	free := make([]string, len(r.available))
	for i, n := range r.available {
		free[i] = formatBytes(n)
	}
	row("availabilities", strings.Join(free, ", ")+" free")
	row("reservations", fmt.Sprintf("%d left, %d orphans deleted at start", r.reservations, h.Orphans))
	row("simulated", fmt.Sprintf("%s in %s wall: %.0f sales/s", simElapsed(r.simSeconds), r.wall.Round(time.Millisecond), r.salesPerSecond()))
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
	fmt.Fprintf(w, "summary: requests=%d filled=%d ignored=%d errored=%d reservations_left=%d invariant=%s\n",
		h.Requests, h.Filled, h.Ignored, h.Errored, r.reservations, invariant)
}

func ignoredNote(reasons map[string]int) string {
	var parts []string
	for _, reason := range []string{reasonNoAvailability, reasonLostRace, reasonNotOpen} {
		if n := reasons[reason]; n > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d", reason, n))
		}
	}
	return strings.Join(parts, ", ")
}

func erroredNote(in map[string]int) string {
	states := slices.Sorted(maps.Keys(in))
	parts := make([]string, 0, len(states))
	for _, st := range states {
		name := st
		if name == "" {
			name = "unhandled"
		}
		parts = append(parts, fmt.Sprintf("in %s: %d", name, in[st]))
	}
	return strings.Join(parts, ", ")
}

func amount(x uint256.Int) string { return x.Dec() }

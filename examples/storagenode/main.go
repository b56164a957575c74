// Command storagenode is a storage host running against a simulated
// marketplace: the stowage packages wired together the way an application
// does it.
//
// The market posts storage requests over simulated time; the host queues
// their slots most profitable first (slotqueue), serves each one through a
// state machine (statemachine) that reserves the slot's bytes in an
// availability (reservations), downloads the data into the repo's block
// store releasing the reservation batch by batch (repo), proves, fills the
// slot, holds it until the request ends and collects the payout. Every sale,
// however it ends, gives its bytes back.
//
// Usage:
//
//	go run ./examples/storagenode [flags]
//
// A run takes a few seconds and ends with a summary whose last line reads
// "summary: requests=... invariant=ok". With -dir the repo and the market's
// state are kept in a directory, and a second run with the same -dir resumes
// where the first stopped (use -for to stop a run part way, or interrupt it).
//
// # Where to look
//
//   - market.go: the Market and Network interfaces, all the host needs from
//     a marketplace; a chain client implements them.
//   - host.go: the Host, which wires repo, reservations, slotqueue and one
//     statemachine per sale, routes market events, resumes after a restart
//     and gives every byte back when a sale ends.
//   - sale.go: the sale's states (preparing, downloading, initial-proving,
//     filling, filled, proving, payout, and the final finished, cancelled,
//     failed, errored, ignored; unknown after a restart) and the market
//     events that move them.
//   - simmarket.go, clock.go: the simulated marketplace and its clock,
//     deterministic for a given -seed.
//   - main.go, report.go: flags, progress and the summary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage/slotqueue"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// marketFile is where -dir keeps the simulated market's state.
const marketFile = "market.json"

// run is the whole program: parse args, simulate, print the summary. It
// returns the exit status: 0 when the accounts add up, 1 when they do not or
// the run failed, 2 for bad flags.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sim := DefaultSimConfig()
	cfg := HostConfig{
		Capacity:       32 << 20,
		Availabilities: 2,
		MaxDuration:    12 * 3600,
		Workers:        3,
		QueueSize:      128,
		Batch:          16 << 10,
		MarketTimeout:  5 * time.Second,
	}
	cfg.MinPrice.SetUint64(100_000)
	cfg.MaxCollateral.SetUint64(800)
	var (
		verbose    bool
		cpuprofile string
		mode       = string(ProgressAuto)
		maxDur     = 12 * time.Hour
		until      time.Duration
		every      = 2 * time.Hour
	)
	fs := flag.NewFlagSet("storagenode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Uint64Var(&sim.Seed, "seed", sim.Seed, "seed of the simulated market: same seed, same scenario (a resumed -dir keeps its own)")
	fs.IntVar(&sim.Requests, "requests", sim.Requests, "storage requests the market posts (a resumed -dir keeps its own)")
	fs.StringVar(&cfg.Dir, "dir", "", "keep the repo and the market state in this directory and resume from it (default: a temporary directory)")
	fs.BoolVar(&cfg.Sync, "sync", false, "fsync every repo write")
	fs.Var((*byteSize)(&cfg.Capacity), "capacity", "bytes to sell (repo quota), e.g. 32MiB")
	fs.IntVar(&cfg.Availabilities, "availabilities", cfg.Availabilities, "availabilities the capacity is split into")
	fs.DurationVar(&maxDur, "max-duration", maxDur, "longest request to serve")
	fs.Var((*amountFlag)(&cfg.MinPrice), "min-price", "least a slot must pay over its duration (reward × duration)")
	fs.Var((*amountFlag)(&cfg.MaxCollateral), "max-collateral", "most collateral to lock for one slot")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "slots downloaded at once")
	fs.IntVar(&cfg.QueueSize, "queue", cfg.QueueSize, "slots waiting in the slot queue at most")
	fs.Var((*byteSize)(&cfg.Batch), "batch", "download batch and block size")
	fs.DurationVar(&cfg.MarketTimeout, "market-timeout", cfg.MarketTimeout, "longest a market call may take")
	fs.DurationVar(&until, "for", 0, "stop after this much simulated time (0: when the market is done)")
	fs.StringVar(&mode, "progress", mode, "progress display: auto, line, plain or none")
	fs.DurationVar(&every, "every", every, "simulated time between two plain progress lines")
	fs.BoolVar(&verbose, "v", false, "debug logs on stderr")
	fs.StringVar(&cpuprofile, "cpuprofile", "", "write a CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "storagenode: unexpected arguments %q\n", fs.Args())
		return 2
	}
	switch m := ProgressMode(mode); m {
	case ProgressAuto, ProgressLine, ProgressPlain, ProgressNone:
	default:
		fmt.Fprintf(stderr, "storagenode: -progress %q: want auto, line, plain or none\n", m)
		return 2
	}
	cfg.MaxDuration = uint64(maxDur / time.Second)

	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			fmt.Fprintln(stderr, "storagenode:", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(stderr, "storagenode:", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if err := simulate(ctx, cfg, sim, ProgressMode(mode), uint64(until/time.Second), uint64(every/time.Second), stdout); err != nil {
		fmt.Fprintln(stderr, "storagenode:", err)
		return 1
	}
	return 0
}

// errInvariant makes run exit non-zero after printing a summary whose
// invariant failed.
var errInvariant = errors.New("the accounts do not add up")

// simulate runs the host against the simulated market and prints progress
// and the summary to stdout.
func simulate(ctx context.Context, cfg HostConfig, sim SimConfig, mode ProgressMode, until, every uint64, stdout io.Writer) error {
	keep := cfg.Dir != ""
	if !keep {
		dir, err := os.MkdirTemp("", "storagenode-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		cfg.Dir = dir
	}
	market, clock, err := openMarket(cfg.Dir, sim)
	if err != nil {
		return err
	}
	start := clock.Now()
	wallStart := time.Now()

	// Slots that tie in the queue (those of one request) are served in an
	// order drawn from the market's seed, so that a run repeats exactly. A
	// real host leaves the order random.
	cfg.QueueOptions = append(cfg.QueueOptions, slotqueue.WithTieSeed(market.Config().Seed))
	host, err := OpenHost(ctx, cfg, market, market)
	if err != nil {
		return err
	}
	p := newProgress(stdout, resolveProgress(mode, stdout), start, every)
	stopAt := uint64(0)
	if until > 0 {
		stopAt = start + until
	}
	runErr := drive(ctx, clock, host, stopAt, func() error {
		p.update(clock.Now(), host)
		return nil
	})
	p.done(clock.Now(), host)

	// Take the final figures before closing the host. After a clean run it
	// is idle and its accounts must add up exactly; after an interrupt,
	// sales are mid-flight and only the invariant that holds at every
	// instant can be checked.
	bg := context.WithoutCancel(ctx)
	r := report{host: host.Stats(), market: market.Stats(), simSeconds: clock.Now() - start, wall: time.Since(wallStart)}
	if runErr == nil {
		r.err = host.CheckAccounts(bg)
	} else {
		r.err = host.Verify(bg)
	}
	if rs, err := host.Store().Reservations(bg); err == nil {
		r.reservations = len(rs)
	} else {
		r.err = errors.Join(r.err, err)
	}
	if as, err := host.Store().Availabilities(bg); err == nil {
		for _, a := range as {
			r.available = append(r.available, a.Size)
		}
	}
	switch {
	case errors.Is(runErr, context.Canceled):
		r.stopped = "interrupted"
		if keep {
			r.stopped += "; run again with the same -dir to resume"
		}
	case runErr != nil:
		r.stopped = runErr.Error()
	case !market.Done():
		r.stopped = "at the -for limit; run again with the same -dir to resume"
	}
	if err := host.Close(); err != nil {
		r.err = errors.Join(r.err, err)
	}
	if keep {
		if err := market.Save(filepath.Join(cfg.Dir, marketFile)); err != nil {
			r.err = errors.Join(r.err, err)
		}
	}
	writeSummary(stdout, r)
	if r.err != nil {
		return fmt.Errorf("%w: %v", errInvariant, r.err)
	}
	return nil
}

// openMarket resumes the market saved in dir, or starts a new one.
func openMarket(dir string, sim SimConfig) (*SimMarket, *SimClock, error) {
	m, clock, err := LoadSimMarket(filepath.Join(dir, marketFile))
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return m, clock, err
	}
	clock = NewSimClock(sim.Start)
	m, err = NewSimMarket(sim, clock)
	return m, clock, err
}

// drive steps the clock whenever the host is idle, calling step before
// each move, until nothing is left to happen, the clock would pass stopAt
// (when not zero), or ctx is done.
func drive(ctx context.Context, clock *SimClock, host *Host, stopAt uint64, step func() error) error {
	for {
		if err := host.WaitIdle(ctx); err != nil {
			return err
		}
		if err := step(); err != nil {
			return err
		}
		next, ok := clock.Next()
		if !ok || (stopAt > 0 && next > stopAt) {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		clock.Step()
	}
}

// byteSize is a flag.Value for a byte count with an optional binary unit:
// 4096, 64KiB, 32MiB, 1GiB (K, M, G and T alone mean the same).
type byteSize uint64

// String implements flag.Value.
func (b *byteSize) String() string {
	n := uint64(*b)
	for i, unit := range []string{"TiB", "GiB", "MiB", "KiB"} {
		if shift := 10 * (4 - i); n != 0 && n%(1<<shift) == 0 {
			return fmt.Sprintf("%d%s", n>>shift, unit)
		}
	}
	return strconv.FormatUint(n, 10)
}

// Set implements flag.Value.
func (b *byteSize) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

func parseBytes(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "i")
	shift := 0
	if t != "" {
		if i := strings.IndexByte("KMGT", t[len(t)-1]); i >= 0 {
			shift = 10 * (i + 1)
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseUint(strings.TrimSpace(t), 10, 64)
	if err != nil || n > (^uint64(0))>>shift {
		return 0, fmt.Errorf("bad size %q: want a number of bytes, optionally with KiB, MiB, GiB or TiB", s)
	}
	return n << shift, nil
}

// amountFlag is a flag.Value for a token amount in decimal.
type amountFlag uint256.Int

// String implements flag.Value.
func (a *amountFlag) String() string { return (*uint256.Int)(a).Dec() }

// Set implements flag.Value.
func (a *amountFlag) Set(s string) error {
	var x uint256.Int
	if err := x.SetFromDecimal(s); err != nil {
		return fmt.Errorf("bad amount %q: %w", s, err)
	}
	*a = amountFlag(x)
	return nil
}

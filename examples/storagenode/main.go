// Command storagenode runs a storage host against a simulated marketplace
// for a simulated day or more, in a few seconds: clients post storage
// requests, the host queues their slots most profitable first, reserves
// each slot's bytes in an availability, downloads and stores the data,
// fills the slot, holds it until the request ends and collects the payout;
// however a sale ends, its bytes go back to the offer. It ends with a
// summary whose last line says whether the books balanced.
//
// Usage:
//
//	go run ./examples/storagenode [flags]
//
// With -dir the repo and the market are kept in a directory, and a second
// run with the same -dir resumes where the first stopped (-for, SIGINT or
// SIGTERM).
//
// # Where to look
//
//   - host.go and sale.go: the host, the wiring to copy. It opens the repo
//     and the reservations store, runs the slot queue, one state machine
//     per sale, restarts and resumes, and reclaims expired reservations.
//   - market/: the Market and Network interfaces, all the host needs from a
//     marketplace; a chain client implements them.
//   - sim/: the simulated marketplace, network and clock.
//   - main.go, report.go, bytes.go: flags, the simulation loop, progress
//     and the summary. The loop moves the simulated clock whenever the host
//     has nothing left to do (Host.WaitIdle): the program is an ordinary
//     one, with no test machinery in it.
//   - serve.go: -http and -serve, the operator's API (package httpapi)
//     over the running host, then over the state it left.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage/examples/storagenode/sim"
	"github.com/stowage/stowage/slotqueue"
)

func main() {
	var got atomic.Int32
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, os.Interrupt, syscall.SIGTERM)
	go func() {
		for s := range sigc {
			got.CompareAndSwap(0, int32(s.(syscall.Signal)))
		}
	}()
	os.Exit(run(os.Args[1:], env{
		stdout: os.Stdout, stderr: os.Stderr, wall: time.Now,
		signal: func() syscall.Signal { return syscall.Signal(got.Load()) },
	}))
}

// env is what run needs from the process.
type env struct {
	stdout, stderr io.Writer
	wall           func() time.Time      // real time, for the report
	signal         func() syscall.Signal // the first SIGINT or SIGTERM received, else 0
}

// Files -dir keeps beside the repo.
const (
	marketFile = "market.json"
	hostFile   = "host.json"
)

// options are the parsed flags.
type options struct {
	host        Config
	sim         sim.Config
	dir         string
	maxDuration time.Duration
	until       time.Duration
	every       time.Duration
	progress    string
	verbose     bool
	cpuprofile  string
	http        string
	serve       bool
	api         *apiServer      // -http's server, set by run
	set         map[string]bool // flags given on the command line
}

const usageIntro = `storagenode runs a storage host built on the stowage SDK against a simulated
marketplace: clients post storage requests over simulated time, the host
reserves space for the slots worth serving, downloads and stores them, fills
them and collects the payout, and every sale gives its bytes back when it
ends. A simulated day takes seconds; the last line says whether the books
balanced. With -dir the state is kept, and a second run resumes it.

Usage: storagenode [flags]
`

// parseFlags parses and checks args; the error names the flag and what it
// accepts.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{sim: sim.DefaultConfig(), maxDuration: 12 * time.Hour, every: 2 * time.Hour, progress: "auto"}
	o.host = Config{Capacity: 32 << 20, Availabilities: 2, Workers: 3, QueueSize: 128, Batch: 16 << 10,
		MarketTimeout: 5 * time.Second, ReclaimEvery: time.Hour}
	o.host.MinPrice.SetUint64(100_000)
	o.host.MaxCollateral.SetUint64(800)
	fs := flag.NewFlagSet("storagenode", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usageIntro, "\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.Uint64Var(&o.sim.Seed, "seed", o.sim.Seed, "seed of the simulated market: same seed, same run")
	fs.IntVar(&o.sim.Requests, "requests", o.sim.Requests, "storage requests the market posts, 1 to 1000000")
	fs.StringVar(&o.dir, "dir", "", "keep the repo and the market in this directory and resume from it (default: a temporary directory, deleted at the end)")
	fs.BoolVar(&o.host.Sync, "sync", false, "fsync every repo write")
	fs.Var((*byteSize)(&o.host.Capacity), "capacity", "bytes to sell (repo quota), 1MiB to 1TiB, e.g. 32MiB, 1.5GiB or 64MB"+bytesHelp)
	fs.IntVar(&o.host.Availabilities, "availabilities", o.host.Availabilities, "availabilities the capacity is split into, 1 to 64")
	fs.DurationVar(&o.maxDuration, "max-duration", o.maxDuration, "longest request to serve, positive")
	fs.Var((*amountFlag)(&o.host.MinPrice), "min-price", "least a slot must pay over its duration (reward × duration)")
	fs.Var((*amountFlag)(&o.host.MaxCollateral), "max-collateral", "most collateral to lock for one slot")
	fs.IntVar(&o.host.Workers, "workers", o.host.Workers, "slots downloaded at once, 1 to -queue")
	fs.IntVar(&o.host.QueueSize, "queue", o.host.QueueSize, "slots waiting in the slot queue at most, 1 to 65535")
	fs.Var((*byteSize)(&o.host.Batch), "batch", "download batch and block size in bytes, 1 to 64MiB"+bytesHelp)
	fs.DurationVar(&o.host.MarketTimeout, "market-timeout", o.host.MarketTimeout, "longest a market call may take, positive")
	fs.DurationVar(&o.until, "for", 0, "stop after this much simulated time, positive (default: when the market is done)")
	fs.StringVar(&o.progress, "progress", o.progress, "progress display: auto, line, plain or none")
	fs.DurationVar(&o.every, "every", o.every, "simulated time between two plain progress lines, positive")
	fs.BoolVar(&o.verbose, "v", false, "debug logs on stderr, stamped with simulated time")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile to this file")
	fs.StringVar(&o.http, "http", "", "serve the operator's API under "+apiPrefix+" on this address (e.g. 127.0.0.1:8080) while the host runs")
	fs.BoolVar(&o.serve, "serve", false, "with -http and -dir: once the run is over, serve the state it left until SIGINT or SIGTERM")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	o.set = make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { o.set[f.Name] = true })
	h := o.host
	for _, c := range []struct {
		bad  bool
		flag string
		want string
	}{
		{fs.NArg() > 0, "", fmt.Sprintf("unexpected arguments %q: flags only", fs.Args())},
		{o.sim.Requests < 1 || o.sim.Requests > 1_000_000, "-requests", "1 to 1000000"},
		{h.Capacity < 1<<20 || h.Capacity > 1<<40, "-capacity", "1MiB to 1TiB"},
		{h.Availabilities < 1 || h.Availabilities > 64, "-availabilities", "1 to 64"},
		{o.maxDuration < time.Second, "-max-duration", "a positive duration of at least 1s"},
		{h.QueueSize < 1 || h.QueueSize > 65535, "-queue", "1 to 65535"},
		{h.Workers < 1 || h.Workers > h.QueueSize, "-workers", fmt.Sprintf("1 to -queue (%d)", h.QueueSize)},
		{h.Batch < 1 || h.Batch > 64<<20, "-batch", "1 to 64MiB"},
		{h.MarketTimeout <= 0, "-market-timeout", "a positive duration"},
		{o.set["for"] && o.until < time.Second, "-for", "a positive duration of at least 1s"},
		{o.every < time.Second, "-every", "a positive duration of at least 1s"},
		{!strings.Contains(" auto line plain none ", " "+o.progress+" "), "-progress", "auto, line, plain or none"},
		{o.serve && o.http == "", "-serve", "-http too: the address to serve on"},
		{o.serve && o.dir == "", "-serve", "-dir too: the state to serve"},
	} {
		if c.bad && c.flag == "" {
			return o, errors.New(c.want)
		}
		if c.bad {
			return o, fmt.Errorf("%s %s: want %s", c.flag, fs.Lookup(strings.TrimPrefix(c.flag, "-")).Value, c.want)
		}
	}
	o.host.MaxDuration = uint64(o.maxDuration / time.Second)
	return o, nil
}

// run is the whole program: parse args, simulate, print the summary. It
// returns the exit status: 0 when the books balance, 1 when they do not or
// the run failed, 2 for bad flags, 130 after SIGINT and 143 after SIGTERM.
func run(args []string, e env) int {
	o, err := parseFlags(args, e.stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintln(e.stderr, "storagenode:", err)
		return 2
	}
	if o.cpuprofile != "" {
		f, err := os.Create(o.cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(e.stderr, "storagenode:", err)
			return 1
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	if o.api, err = listenAPI(o.http, e.stderr); err != nil { // -http: see serve.go
		fmt.Fprintln(e.stderr, "storagenode:", err)
		return 1
	}
	defer o.api.close()
	sig, err := simulate(o, e)
	if err == nil && sig == 0 && o.serve {
		err = o.api.afterRun(o.dir, e.stderr)
	}
	switch {
	case err != nil:
		fmt.Fprintln(e.stderr, "storagenode:", err)
		return 1
	case sig != 0:
		return 128 + int(sig)
	}
	return 0
}

// errInvariant makes run exit non-zero after printing a summary whose
// invariant failed.
var errInvariant = errors.New("the books do not balance")

// simulate runs the host against the simulated market until the market is
// done, -for has passed or a signal came, and prints the summary.
func simulate(o options, e env) (syscall.Signal, error) {
	ctx := context.Background()
	keep := o.dir != ""
	if !keep {
		dir, err := os.MkdirTemp("", "storagenode-")
		if err != nil {
			return 0, err
		}
		defer os.RemoveAll(dir)
		o.dir = dir
	}
	market, clock, resumed, err := openSim(&o, e.stderr)
	if err != nil {
		return 0, err
	}
	cfg := o.host
	cfg.Dir, cfg.Clock = o.dir, clock
	if o.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelDebug,
			ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey && len(groups) == 0 {
					return slog.String("sim", clock.Now().Format(time.DateTime))
				}
				return a
			}}))
	}
	// Slots that tie in the queue (those of one request) are served in an
	// order drawn from the seed, so that a run repeats exactly.
	cfg.QueueOptions = []slotqueue.Option{slotqueue.WithTieSeed(market.Config().Seed)}
	runStart, wallStart := clock.Unix(), e.wall()
	host, err := OpenHost(ctx, cfg, market, market)
	if err != nil {
		return 0, err
	}
	o.api.serveHost(host) // -http
	p := newProgress(e.stdout, resolveProgress(ProgressMode(o.progress), e.stdout), market.Config().Start, uint64(o.every/time.Second))
	stopAt := uint64(0)
	if o.until > 0 {
		stopAt = runStart + uint64(o.until/time.Second)
	}
	var sig syscall.Signal
	for {
		// The host has done all it can until the clock moves.
		if err := host.WaitIdle(ctx); err != nil {
			return 0, errors.Join(err, host.Close())
		}
		p.update(clock.Unix(), host)
		if sig = e.signal(); sig != 0 || market.Done() {
			break
		}
		next, ok := clock.Next()
		if !ok || (stopAt > 0 && next > stopAt) {
			break
		}
		clock.Step()
	}
	p.done(clock.Unix(), host)

	r := report{host: host.Stats(), queue: host.Queue().Stats(), market: market.Stats(), sales: host.SaleStates(),
		start: market.Config().Start, runStart: runStart, now: clock.Unix(), resumed: resumed}
	r.err = host.Store().Verify(ctx)
	if rs, err := host.Store().Reservations(ctx); err == nil {
		r.reservations = len(rs)
	}
	if as, err := host.Store().Availabilities(ctx); err == nil {
		r.availabilities = as
	}
	switch {
	case sig != 0:
		r.stopped = "by " + sig.String()
	case !market.Done():
		r.stopped = "at the -for limit"
	}
	if r.stopped != "" && keep {
		r.stopped += "; run again with the same -dir to resume"
	}
	o.api.serveHost(nil)
	r.err = errors.Join(r.err, host.Close())
	r.wall = e.wall().Sub(wallStart)
	if keep {
		r.err = errors.Join(r.err, market.Save(filepath.Join(o.dir, marketFile)), saveHost(o))
	}
	writeSummary(e.stdout, r)
	if r.err != nil {
		return sig, fmt.Errorf("%w: %v", errInvariant, r.err)
	}
	return sig, nil
}

// savedHost is what -dir keeps of the host's flags: those that shaped the
// availabilities when they were created.
type savedHost struct {
	Capacity       uint64 `json:"capacity"`
	Availabilities int    `json:"availabilities"`
}

func saveHost(o options) error {
	b, err := json.Marshal(savedHost{o.host.Capacity, o.host.Availabilities})
	if err == nil {
		err = os.WriteFile(filepath.Join(o.dir, hostFile), b, 0o644)
	}
	return err
}

// openSim resumes the market saved in o.dir, or starts a new one. Resuming,
// the saved scenario and host settings stand, and flags given that differ
// from them are named in a warning.
func openSim(o *options, stderr io.Writer) (*sim.Market, *sim.Clock, bool, error) {
	m, clock, err := sim.LoadMarket(filepath.Join(o.dir, marketFile))
	if errors.Is(err, os.ErrNotExist) {
		clock = sim.NewClock(o.sim.Start)
		m, err = sim.NewMarket(o.sim, clock)
		return m, clock, false, err
	}
	if err != nil {
		return nil, nil, false, err
	}
	var saved savedHost
	if b, err := os.ReadFile(filepath.Join(o.dir, hostFile)); err != nil {
		return nil, nil, false, err
	} else if err := json.Unmarshal(b, &saved); err != nil {
		return nil, nil, false, fmt.Errorf("%s: %w", hostFile, err)
	}
	warn := func(flag string, given, kept any) {
		if o.set[flag] && fmt.Sprint(given) != fmt.Sprint(kept) {
			fmt.Fprintf(stderr, "storagenode: warning: -%s %v ignored: resuming %s, which keeps -%s %v\n", flag, given, o.dir, flag, kept)
		}
	}
	c := m.Config()
	warn("seed", o.sim.Seed, c.Seed)
	warn("requests", o.sim.Requests, c.Requests)
	warn("capacity", (*byteSize)(&o.host.Capacity), (*byteSize)(&saved.Capacity))
	warn("availabilities", o.host.Availabilities, saved.Availabilities)
	for _, f := range []string{"max-duration", "min-price", "max-collateral"} {
		if o.set[f] {
			fmt.Fprintf(stderr, "storagenode: warning: -%s ignored: resuming %s, whose availabilities keep their terms\n", f, o.dir)
		}
	}
	o.sim, o.host.Capacity, o.host.Availabilities = c, saved.Capacity, saved.Availabilities
	return m, clock, true, nil
}

// amountFlag is a flag.Value for a token amount in decimal.
type amountFlag uint256.Int

// String implements flag.Value.
func (a *amountFlag) String() string { return (*uint256.Int)(a).Dec() }

// Set implements flag.Value: a whole number of tokens, 0 or more, in
// decimal, below 2^256.
func (a *amountFlag) Set(s string) error {
	var x uint256.Int
	if s == "" || strings.TrimLeft(s, "0123456789") != "" || x.SetFromDecimal(s) != nil {
		return fmt.Errorf("bad amount %q: want a whole number of tokens, 0 or more (digits only, below 2^256)", s)
	}
	*a = amountFlag(x)
	return nil
}

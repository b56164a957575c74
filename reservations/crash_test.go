package reservations_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// The crash test: a child process (this test binary, re-executed) runs
// random operations from 8 goroutines on a repo opened with fsync and
// prints one line per acknowledged operation; the parent kills it with
// SIGKILL at a random point, reopens the directory and checks that every
// acknowledged effect is there and every invariant holds. The cycles share
// one directory, so the state accumulates. STOWAGE_CRASH_CYCLES sets the
// number of cycles (default 3).
const (
	crashDirEnv   = "STOWAGE_CRASH_CHILD_DIR"
	crashCycleEnv = "STOWAGE_CRASH_CHILD_CYCLE"
	crashMax      = 1 << 30
)

func TestCrash_AcknowledgedOperationsSurviveSIGKILL(t *testing.T) {
	cycles := 3
	if v := os.Getenv("STOWAGE_CRASH_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "STOWAGE_CRASH_CYCLES")
		cycles = n
	}
	dir := t.TempDir()
	m := newCrashModel()
	total := 0
	for cycle := range cycles {
		lines := runCrashChild(t, dir, cycle, 20+rand.IntN(150))
		for _, l := range lines {
			m.apply(t, l)
		}
		total += len(lines)
		m.check(t, dir)
		if t.Failed() {
			t.Fatalf("cycle %d failed", cycle)
		}
	}
	t.Logf("%d cycles, %d acknowledged operations, %d checks", cycles, total, m.checks)
}

// runCrashChild starts the child, reads n lines, kills it and returns every
// line it printed.
func runCrashChild(t *testing.T, dir string, cycle, n int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, crashCycleEnv+"="+strconv.Itoa(cycle))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	sc := bufio.NewScanner(out)
	var lines []string
	killed := false
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) == n && !killed {
			require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
			killed = true
		}
	}
	require.NoError(t, sc.Err())
	err = cmd.Wait()
	require.True(t, killed, "the child ended by itself: %v\n%s", err, stderr.String())
	var ee *exec.ExitError
	require.ErrorAs(t, err, &ee)
	for _, l := range lines {
		require.False(t, strings.HasPrefix(l, "error "), "cycle %d: %s\n%s", cycle, l, stderr.String())
	}
	return lines
}

// TestCrashChild is the child of the crash test; it does nothing unless
// started by it.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		return
	}
	cycle := os.Getenv(crashCycleEnv)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // the parent is gone
	defer cancel()
	r, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(crashMax))
	require.NoError(t, err)
	s := reservations.New(r)
	c := &crashChild{s: s, r: r, cycle: cycle}
	as, err := s.Availabilities(ctx)
	require.NoError(t, err)
	for _, a := range as {
		c.avails = append(c.avails, a.ID)
	}
	rs, err := s.Reservations(ctx)
	require.NoError(t, err)
	c.res = append(c.res, rs...)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() { c.run(ctx, g) })
	}
	wg.Wait()
}

type crashChild struct {
	s     *reservations.Store
	r     *repo.Repo
	cycle string

	mu     sync.Mutex
	avails []reservations.AvailabilityID
	res    []reservations.Reservation
}

func (c *crashChild) pickRes(rng *rand.Rand) (reservations.Reservation, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.res) == 0 {
		return reservations.Reservation{}, false
	}
	return c.res[rng.IntN(len(c.res))], true
}

func (c *crashChild) pickAvail(rng *rand.Rand) (reservations.AvailabilityID, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.avails) == 0 {
		return reservations.AvailabilityID{}, false
	}
	return c.avails[rng.IntN(len(c.avails))], true
}

func (c *crashChild) dropRes(id reservations.ReservationID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, x := range c.res {
		if x.ID == id {
			c.res = append(c.res[:i], c.res[i+1:]...)
			return
		}
	}
}

// expected errors of random operations; anything else is reported.
var crashExpected = []error{
	reservations.ErrNotFound, reservations.ErrBytesOutOfBounds, reservations.ErrNoAvailability,
	repo.ErrQuotaNotEnough, repo.ErrQuotaNotEnough, reservations.ErrInvalidSize,
}

func (c *crashChild) run(ctx context.Context, g int) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), uint64(g)))
	say := func(format string, args ...any) { fmt.Fprintf(os.Stdout, format+"\n", args...) }
	check := func(err error) bool {
		if err == nil {
			return true
		}
		for _, e := range crashExpected {
			if errors.Is(err, e) {
				return false
			}
		}
		say("error %s", strings.ReplaceAll(err.Error(), "\n", " | "))
		return false
	}
	var raw []datastore.Key
	for n := 0; ctx.Err() == nil; n++ {
		key := datastore.NewKey(fmt.Sprintf("c%s/g%d/%d", c.cycle, g, n))
		switch p := rng.IntN(100); {
		case p < 10:
			a, err := c.s.AddAvailability(ctx, reservations.Availability{TotalSize: 2000 + rng.Uint64N(4000), Duration: 1000, MinPrice: u(1), MaxCollateral: u(100)})
			if check(err) {
				say("add-avail %s", a.ID)
				c.mu.Lock()
				c.avails = append(c.avails, a.ID)
				c.mu.Unlock()
			}
		case p < 35:
			var req stowage.RequestID
			for i := range req {
				req[i] = byte(rng.IntN(256))
			}
			size := 50 + rng.Uint64N(250)
			x, err := c.s.ReserveSlot(ctx, stowage.Slot{RequestID: req, Index: rng.Uint64N(4), Ask: stowage.StorageAsk{SlotSize: size, Duration: 10, Reward: u(1), Collateral: u(1)}})
			if check(err) {
				say("reserve-slot %s %s %d", x.ID, x.AvailabilityID, size)
				c.mu.Lock()
				c.res = append(c.res, x)
				c.mu.Unlock()
			}
		case p < 60:
			x, ok := c.pickRes(rng)
			if !ok {
				continue
			}
			k := datastore.NewKey("sb").Child(key)
			data := make([]byte, 1+rng.IntN(40))
			if check(c.s.PutBlock(ctx, x.ID, k, data)) {
				say("put-block %s %s %d", x.ID, k, len(data))
			}
		case p < 68:
			x, ok := c.pickRes(rng)
			if !ok {
				continue
			}
			if n := 1 + rng.Uint64N(5); check(c.s.Release(ctx, x.ID, n)) {
				say("release %s %d", x.ID, n)
			}
		case p < 78:
			x, ok := c.pickRes(rng)
			if !ok {
				continue
			}
			say("try-delete-res %s", x.ID)
			if check(c.s.DeleteReservation(ctx, x.ID)) {
				say("delete-res %s", x.ID)
				c.dropRes(x.ID)
			}
		case p < 85:
			id, ok := c.pickAvail(rng)
			if !ok {
				continue
			}
			d := int64(rng.IntN(200)) - 100
			_, err := c.s.ModifyAvailability(ctx, id, func(a *reservations.Availability) error {
				a.TotalSize = uint64(int64(a.TotalSize) + d)
				return nil
			})
			if check(err) {
				say("modify-avail %s %d", id, d)
			}
		case p < 95:
			k := datastore.NewKey("raw").Child(key)
			data := make([]byte, 1+rng.IntN(60))
			if check(c.r.PutBlock(ctx, k, data)) {
				say("put-raw %s %d", k, len(data))
				raw = append(raw, k)
			}
		default:
			if len(raw) == 0 {
				continue
			}
			i := rng.IntN(len(raw))
			k := raw[i]
			say("try-del-raw %s", k)
			if check(c.r.DeleteBlock(ctx, k)) {
				say("del-raw %s", k)
				raw = append(raw[:i], raw[i+1:]...)
			}
		}
	}
}

// crashModel is what the acknowledged operations of every cycle so far
// imply.
type crashModel struct {
	res    map[string]*crashRes
	blocks map[string]crashBlock // Store blocks by key
	raw    map[string]int        // raw blocks by key: length, -1 deleted
	rawTry map[string]bool       // a delete was begun, not acknowledged
	avails map[string]bool
	checks int
}

type crashRes struct {
	slotSize uint64
	deleted  bool
	trying   bool // a delete was begun, not acknowledged
}

type crashBlock struct {
	rid string
	n   int
}

func newCrashModel() *crashModel {
	return &crashModel{res: map[string]*crashRes{}, blocks: map[string]crashBlock{}, raw: map[string]int{}, rawTry: map[string]bool{}, avails: map[string]bool{}}
}

func (m *crashModel) apply(t *testing.T, line string) {
	f := strings.Fields(line)
	num := func(s string) int {
		n, err := strconv.Atoi(s)
		require.NoError(t, err, line)
		return n
	}
	switch f[0] {
	case "add-avail":
		m.avails[f[1]] = true
	case "reserve-slot":
		m.res[f[1]] = &crashRes{slotSize: uint64(num(f[3]))}
	case "put-block":
		m.blocks[f[2]] = crashBlock{rid: f[1], n: num(f[3])}
	case "try-delete-res":
		if x := m.res[f[1]]; x != nil {
			x.trying = true
		}
	case "delete-res":
		if x := m.res[f[1]]; x != nil {
			x.deleted, x.trying = true, false
		}
	case "put-raw":
		m.raw[f[1]] = num(f[2])
	case "try-del-raw":
		m.rawTry[f[1]] = true
	case "del-raw":
		m.raw[f[1]] = -1
		delete(m.rawTry, f[1])
	case "release", "modify-avail":
		// Sizes: checked by Verify's invariants.
	default:
		t.Fatalf("unknown line %q", line)
	}
}

// check reopens dir and checks the model, then settles what the killed
// operations left uncertain from what it finds.
func (m *crashModel) check(t *testing.T, dir string) {
	t.Helper()
	ctx := t.Context()
	r, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(crashMax), repo.WithNoSync())
	require.NoError(t, err)
	defer func() { require.NoError(t, r.Close()) }()
	s := reservations.New(r)
	require.NoError(t, r.Verify(ctx))
	require.NoError(t, s.Verify(ctx))

	rs, err := s.Reservations(ctx)
	require.NoError(t, err)
	got := map[string]reservations.Reservation{}
	for _, x := range rs {
		got[x.ID.String()] = x
	}
	for id, x := range m.res {
		g, ok := got[id]
		switch {
		case x.trying:
			x.trying, x.deleted = false, !ok
			for k, b := range m.blocks {
				if b.rid == id {
					delete(m.blocks, k) // a delete in steps may have taken some
				}
			}
			continue
		case x.deleted:
			assert.False(t, ok, "reservation %s was deleted", id)
		case assert.True(t, ok, "reservation %s", id):
			assert.Equal(t, x.slotSize, g.SlotSize, "reservation %s", id)
		}
		m.checks++
	}
	for id, g := range got {
		if m.res[id] == nil {
			// Made by an operation the kill cut off before its line.
			m.res[id] = &crashRes{slotSize: g.SlotSize}
		}
	}
	for k, b := range m.blocks {
		x := m.res[b.rid]
		if !assert.NotNil(t, x, "block %s of an unknown reservation", k) {
			continue
		}
		key := datastore.NewKey(k)
		if x.deleted {
			ok, err := r.HasBlock(ctx, key)
			require.NoError(t, err)
			assert.False(t, ok, "block %s of deleted reservation %s", k, b.rid)
			delete(m.blocks, k)
		} else {
			data, err := r.GetBlock(ctx, key)
			if assert.NoError(t, err, "block %s", k) {
				assert.Len(t, data, b.n, "block %s", k)
			}
		}
		m.checks++
	}
	for k, n := range m.raw {
		key := datastore.NewKey(k)
		if m.rawTry[k] {
			ok, err := r.HasBlock(ctx, key)
			require.NoError(t, err)
			if !ok {
				m.raw[k] = -1
			}
			delete(m.rawTry, k)
			continue
		}
		if n < 0 {
			ok, err := r.HasBlock(ctx, key)
			require.NoError(t, err)
			assert.False(t, ok, "raw block %s was deleted", k)
		} else {
			data, err := r.GetBlock(ctx, key)
			if assert.NoError(t, err, "raw block %s", k) {
				assert.Len(t, data, n, "raw block %s", k)
			}
		}
		m.checks++
	}
	for id := range m.avails {
		aid, err := reservations.ParseAvailabilityID(id)
		require.NoError(t, err)
		_, err = s.Availability(ctx, aid)
		assert.NoError(t, err, "availability %s", id)
		m.checks++
	}
}

package stowagetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// Environment of the child process of CrashSafety.
const (
	envTest  = "STOWAGETEST_CRASH_TEST"  // the test (t.Name()) whose child this is
	envDir   = "STOWAGETEST_CRASH_DIR"   // the store's directory
	envCycle = "STOWAGETEST_CRASH_CYCLE" // makes keys unique across cycles
)

const (
	crashCycles  = 3
	crashWriters = 4
	linePrefix   = "stowagetest: "
)

// CrashSafety checks that a persistent datastore survives the process being
// killed in the middle of writes. openDir opens (creating if needed) the
// store in dir; the suite closes it if it implements io.Closer.
//
// The test binary runs itself again as a child process (os.Args[0] with
// -test.run naming the calling test, and an environment variable by which
// the CrashSafety call in the child knows to play the child), so call it
// once per test or subtest, from a test that does nothing else before it
// that cannot run twice. The child opens the store and writes from several
// goroutines (AddAvailability, CreateReservation, Store.PutBlock,
// repo.PutBlock, ModifyAvailability, DeleteReservation, repo.DeleteBlock,
// DeleteAvailability), announcing each operation before it starts and
// after it is acknowledged. The parent SIGKILLs it after a few dozen
// acknowledgements, reopens the store with openDir and checks that
// reservations.Store.Verify passes (every invariant, on what the kill left)
// and that every acknowledged operation with none begun after it is there:
// acknowledged blocks with their content, deleted ones gone, availabilities
// and reservations present or absent. It does this three times on the same
// directory.
//
// A kill lands wherever the child happens to be, so a store whose batches
// are not atomic on disk is caught only when a kill falls inside a batch:
// a pass says no kill found a fault, not that there is none. A kill tests
// what reached the operating system; power loss (whether the store
// fsyncs) is not tested. WithBlockstore is not supported here.
func CrashSafety(t *testing.T, openDir func(dir string) (datastore.Batching, error), opts ...Option) {
	c := apply(opts)
	if c.blocks != nil {
		t.Fatal("stowagetest.CrashSafety: WithBlockstore is not supported; blocks are kept in the store openDir opens")
	}
	if os.Getenv(envTest) == t.Name() {
		crashChild(t, c, openDir)
		return
	}
	dir := t.TempDir()
	for cycle := range crashCycles {
		acked := runAndKill(t, dir, cycle, 15+10*cycle)
		checkAfterCrash(t, c, openDir, dir, cycle, acked)
	}
}

// object is what the child's announcements say of one object.
type object struct {
	pending bool     // an operation on it began and was not acknowledged
	present bool     // as of the last acknowledgement
	ids     []string // availability ID; reservation's availability and ID; block size
}

func runAndKill(t *testing.T, dir string, cycle, acks int) map[string]*object {
	var parts []string
	for p := range strings.SplitSeq(t.Name(), "/") {
		parts = append(parts, "^"+regexp.QuoteMeta(p)+"$")
	}
	cmd := exec.Command(os.Args[0], "-test.run="+strings.Join(parts, "/"), "-test.count=1")
	cmd.Env = append(os.Environ(), envTest+"="+t.Name(), envDir+"="+dir, envCycle+"="+strconv.Itoa(cycle))
	stdin, err := cmd.StdinPipe() // the child exits when it closes
	check(t, err, "stdin pipe")
	defer stdin.Close()
	out, err := cmd.StdoutPipe()
	check(t, err, "stdout pipe")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	check(t, cmd.Start(), "start the child")

	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	objects := map[string]*object{}
	var other []string
	seen := 0
	// read takes in one line; false when the child reported an error.
	read := func(line string) error {
		rest, ours := strings.CutPrefix(line, linePrefix)
		if !ours {
			other = append(other, line)
			return nil
		}
		f := strings.Fields(rest)
		if len(f) < 2 {
			return fmt.Errorf("the child said %q", line)
		}
		o := objects[f[1]]
		if o == nil {
			o = &object{}
			objects[f[1]] = o
		}
		switch f[0] {
		case "begin":
			o.pending = true
		case "present", "absent":
			o.pending, o.present = false, f[0] == "present"
			if len(f) > 2 {
				o.ids = f[2:]
			}
			seen++
		case "error":
			return fmt.Errorf("the child failed: %s", rest)
		}
		return nil
	}
	watchdog := time.NewTimer(2 * time.Minute) // not a synchronisation: a hung child fails the test
	defer watchdog.Stop()
	for seen < acks {
		select {
		case line, ok := <-lines:
			if !ok {
				err := cmd.Wait()
				t.Fatalf("cycle %d: the child ended (%v) after %d acknowledgements; its output:\n%s\n%s", cycle, err, seen, strings.Join(other, "\n"), stderr.String())
			}
			if err := read(line); err != nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("cycle %d: %v", cycle, err)
			}
		case <-watchdog.C:
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("cycle %d: the child acknowledged %d operations in 2 minutes, want %d; its output:\n%s%s", cycle, seen, acks, strings.Join(other, "\n"), stderr.String())
		}
	}
	check(t, cmd.Process.Kill(), "kill the child")
	// What the child said before it died counts too: an operation it began
	// after the acknowledgements read so far may have reached the store.
	for line := range lines {
		if err := read(line); err != nil {
			t.Fatalf("cycle %d: %v", cycle, err)
		}
	}
	_ = cmd.Wait()
	t.Logf("cycle %d: killed the child after %d acknowledgements", cycle, seen)
	return objects
}

func checkAfterCrash(t *testing.T, c *config, openDir func(string) (datastore.Batching, error), dir string, cycle int, objects map[string]*object) {
	ctx := t.Context()
	ds, err := openDir(dir)
	check(t, err, fmt.Sprintf("cycle %d: reopen after the kill", cycle))
	defer func() {
		if cl, ok := ds.(io.Closer); ok {
			_ = cl.Close()
		}
	}()
	r, err := repo.New(ctx, ds, c.repoOptions(stores{meta: ds})...)
	check(t, err, fmt.Sprintf("cycle %d: repo.New after the kill", cycle))
	defer r.Close()
	s := reservations.New(r)
	if err := s.Verify(ctx); err != nil {
		t.Fatalf("cycle %d: after the kill: %v", cycle, err)
	}
	for name, o := range objects {
		if o.pending {
			continue
		}
		kind, _, _ := strings.Cut(name, ":")
		var present bool
		var err error
		switch kind {
		case "avail":
			var id reservations.AvailabilityID
			if id, err = reservations.ParseAvailabilityID(o.ids[0]); err == nil {
				_, err = s.Availability(ctx, id)
				present, err = err == nil, notFoundIsAbsent(err)
			}
		case "res":
			var aid reservations.AvailabilityID
			var rid reservations.ReservationID
			if aid, err = reservations.ParseAvailabilityID(o.ids[0]); err == nil {
				if rid, err = reservations.ParseReservationID(o.ids[1]); err == nil {
					var got reservations.Reservation
					got, err = s.Reservation(ctx, rid)
					present, err = err == nil && got.AvailabilityID == aid, notFoundIsAbsent(err)
				}
			}
		case "block":
			key := datastore.NewKey(strings.TrimPrefix(name, "block:"))
			var b []byte
			b, err = r.GetBlock(ctx, key)
			present = err == nil
			if errors.Is(err, datastore.ErrNotFound) {
				err = nil
			}
			if present && o.present {
				n, _ := strconv.Atoi(o.ids[0])
				if !bytes.Equal(b, blockData(key, n)) {
					t.Errorf("cycle %d: acknowledged block %s holds %d bytes, not the %d written", cycle, key, len(b), n)
				}
			}
		}
		switch {
		case err != nil:
			t.Errorf("cycle %d: read %s after the kill: %v", cycle, name, err)
		case present != o.present:
			t.Errorf("cycle %d: %s is present=%v after the kill; acknowledged present=%v", cycle, name, present, o.present)
		}
	}
}

// crashChild is the child's role: it writes until it is killed (or its
// stdin closes: the parent is gone).
func crashChild(t *testing.T, c *config, openDir func(string) (datastore.Batching, error)) {
	ctx := context.Background()
	ds, err := openDir(os.Getenv(envDir))
	check(t, err, "child: open")
	r, err := repo.New(ctx, ds, c.repoOptions(stores{meta: ds})...)
	check(t, err, "child: repo.New")
	s := reservations.New(r)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		// One write per line, unbuffered: what the parent reads was said.
		_, _ = os.Stdout.WriteString(linePrefix + fmt.Sprintf(format, args...) + "\n")
	}
	cycle, _ := strconv.Atoi(os.Getenv(envCycle))
	var wg sync.WaitGroup
	for g := range crashWriters {
		wg.Go(func() {
			for i := range 10000 {
				if err := crashRound(ctx, r, s, say, fmt.Sprintf("%d/%d/%d", cycle, g, i), stowage.RequestID{byte(cycle), byte(g)}, uint64(i)); err != nil {
					say("error %s", strings.ReplaceAll(err.Error(), "\n", " "))
					return
				}
			}
		})
	}
	wg.Wait()
}

// crashRound is one round of a writer of the child.
func crashRound(ctx context.Context, r *repo.Repo, s *reservations.Store, say func(string, ...any), p string, req stowage.RequestID, index uint64) error {
	one := *uint256.NewInt(1)
	avail, res := "avail:"+p, "res:"+p
	say("begin %s", avail)
	a, err := s.AddAvailability(ctx, reservations.Availability{TotalSize: 2048, Duration: 100, MinPrice: one, MaxCollateral: one})
	if err != nil {
		return err
	}
	say("present %s %s", avail, a.ID)
	say("begin %s", res)
	rv, err := s.CreateReservation(ctx, a.ID, slotOf(req, index, 1024))
	if err != nil {
		return err
	}
	say("present %s %s %s", res, a.ID, rv.ID)
	var blocks []string
	for j, n := range []int{300, 200} {
		key := datastore.NewKey(fmt.Sprintf("/k/%s/%d", p, j))
		say("begin block:%s", key)
		if err := s.PutBlock(ctx, rv.ID, key, blockData(key, n)); err != nil {
			return err
		}
		say("present block:%s %d", key, n)
		blocks = append(blocks, "block:"+key.String())
	}
	raw := datastore.NewKey("/k/" + p + "/raw")
	say("begin block:%s", raw)
	if err := r.PutBlock(ctx, raw, blockData(raw, 100)); err != nil {
		return err
	}
	say("present block:%s 100", raw)
	if _, err := s.ModifyAvailability(ctx, a.ID, func(a *reservations.Availability) error {
		a.TotalSize += 10
		return nil
	}); err != nil {
		return err
	}
	if index%2 == 0 {
		return nil
	}
	for _, name := range append([]string{res}, blocks...) {
		say("begin %s", name)
	}
	if err := s.DeleteReservation(ctx, rv.ID); err != nil {
		return err
	}
	for _, name := range append([]string{res}, blocks...) {
		say("absent %s", name)
	}
	say("begin block:%s", raw)
	if err := r.DeleteBlock(ctx, raw); err != nil {
		return err
	}
	say("absent block:%s", raw)
	say("begin %s", avail)
	if err := s.DeleteAvailability(ctx, a.ID); err != nil {
		return err
	}
	say("absent %s", avail)
	return nil
}

// notFoundIsAbsent is err, unless it says the record is not there: that is
// an answer, not an error.
func notFoundIsAbsent(err error) error {
	if errors.Is(err, reservations.ErrNotFound) {
		return nil
	}
	return err
}

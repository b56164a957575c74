// Command quickstart walks through the life of one slot's bytes: it opens a
// repo on LevelDB, offers disk space as an availability, reserves a slot,
// writes some of the slot's blocks (each moving its bytes from the
// reservation to the disk), and deletes the reservation when the sale ends,
// which deletes the blocks and makes the offer whole again. It prints the
// accounting at each step.
//
//	go run ./examples/quickstart            # in a temporary directory
//	go run ./examples/quickstart -dir data  # keep the database in ./data
//
// It exits 0 when the story ran (and with -h), 2 for bad arguments and 1
// when a step failed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

func main() {
	os.Exit(exitCode(run(context.Background(), os.Args[1:], os.Stdout), os.Stderr))
}

// errUsage marks an error in the command line.
var errUsage = errors.New("usage")

// exitCode reports err on stderr and returns the exit status for it: 0 for
// nil and for -h, 2 for bad arguments, 1 for anything else.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintln(stderr, "quickstart:", err)
		return 2
	}
	fmt.Fprintln(stderr, "quickstart:", err)
	return 1
}

const (
	kib       = 1 << 10
	mib       = 1 << 20
	slotSize  = 256 * kib
	blockSize = 64 * kib
)

func run(ctx context.Context, args []string, out io.Writer) error {
	flags := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	flags.SetOutput(out)
	flags.Usage = func() {
		fmt.Fprint(out, "quickstart tells the story of one slot's bytes, from availability to cleanup.\n\nUsage: quickstart [-dir DIR]\n\nFlags:\n")
		flags.PrintDefaults()
	}
	dir := flags.String("dir", "", "keep the LevelDB database in this directory (default: a temporary one)")
	if err := flags.Parse(args); errors.Is(err, flag.ErrHelp) {
		return err
	} else if err != nil {
		return fmt.Errorf("%w: %w", errUsage, err)
	}
	if flags.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q: flags only (-dir DIR)", errUsage, flags.Args())
	}
	if *dir == "" {
		tmp, err := os.MkdirTemp("", "stowage-quickstart-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		*dir = tmp
	}

	r, err := repo.Open(ctx, *dir, repo.WithQuotaMaxBytes(4*mib))
	if err != nil {
		return err
	}
	defer r.Close()
	store := reservations.New(r)
	say := func(format string, a ...any) { fmt.Fprintf(out, format+"\n", a...) }
	quota := func() {
		q := r.Quota()
		say("    quota: max %s, used %s, reserved %s, available %s",
			size(q.Max), size(q.Used), size(q.Reserved), size(q.Available()))
	}

	say("Opened a repo on LevelDB with a quota of %s.", size(r.Quota().Max))
	quota()

	a, err := store.AddAvailability(ctx, reservations.Availability{TotalSize: 1 * mib, Duration: 24 * 3600, MinPrice: *uint256.NewInt(1000), MaxCollateral: *uint256.NewInt(500)})
	if err != nil {
		return err
	}
	say("Offered %s for requests of up to a day paying at least 1000 per slot: availability %s.", size(a.Size), tail(a.ID.String()))
	quota()

	ask := stowage.StorageAsk{Slots: 4, SlotSize: slotSize, Duration: 3600, Reward: *uint256.NewInt(2), Collateral: *uint256.NewInt(100)}
	request := stowage.RequestID{0xca, 0xfe}
	price := ask.PricePerSlot()
	say("A request %s… asks for %d slots of %s for an hour, paying %s per slot.", short(request.String()), ask.Slots, size(ask.SlotSize), price.Dec())

	res, err := store.ReserveSlot(ctx, stowage.Slot{RequestID: request, Index: 2, Ask: ask})
	if err != nil {
		return err
	}
	a, err = store.Availability(ctx, a.ID)
	if err != nil {
		return err
	}
	say("Reserved slot 2: reservation %s holds %s; the availability has %s of %s free.", tail(res.ID.String()), size(res.Size), size(a.Size), size(a.TotalSize))
	quota()

	// Download three of the slot's four blocks: each write moves the block's
	// bytes from the reservation to the disk, in one atomic change.
	var keys []datastore.Key
	for i := range 3 {
		key := datastore.NewKey(fmt.Sprintf("%s/%d/%d", request, res.SlotIndex, i))
		keys = append(keys, key)
		if err := store.PutBlock(ctx, res.ID, key, make([]byte, blockSize)); err != nil {
			return err
		}
		res, err = store.Reservation(ctx, res.ID)
		if err != nil {
			return err
		}
		say("Wrote block %d (%s); the reservation holds %s more and its blocks use %s.", i, size(blockSize), size(res.Size), size(res.Used))
	}
	quota()

	say("The request was cancelled before the last block: deleting the reservation.")
	if err := store.DeleteReservation(ctx, res.ID); err != nil {
		return err
	}
	a, err = store.Availability(ctx, a.ID)
	if err != nil {
		return err
	}
	left := 0
	for _, key := range keys {
		has, err := r.HasBlock(ctx, key)
		if err != nil {
			return err
		}
		if has {
			left++
		}
	}
	say("Its blocks are deleted (%d left) and all %s came back: the availability has %s of %s free.", left, size(res.Size+res.Used), size(a.Size), size(a.TotalSize))
	quota()

	if err := store.Verify(ctx); err != nil {
		return err
	}
	say("Check: every invariant holds (reserved, used and blocks add up).")
	return nil
}

func size(n uint64) string {
	switch {
	case n >= mib && n%mib == 0:
		return fmt.Sprintf("%d MiB", n/mib)
	case n >= kib && n%kib == 0:
		return fmt.Sprintf("%d KiB", n/kib)
	}
	return fmt.Sprintf("%d B", n)
}

func short(s string) string { return s[:8] }

// tail shortens a UUIDv7 to its random end (its start is a timestamp, the
// same for IDs made in the same millisecond).
func tail(s string) string { return "…" + s[len(s)-8:] }

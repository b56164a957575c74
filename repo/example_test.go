package repo_test

import (
	"context"
	"fmt"
	"os"

	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage/repo"
)

func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "stowage-repo")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	r, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(1<<20))
	if err != nil {
		panic(err)
	}
	defer r.Close()

	// Promise 4 KiB to a download, then write the first KiB of it:
	// release before put, so the block fits.
	if err := r.Reserve(ctx, 4096); err != nil {
		panic(err)
	}
	if err := r.Release(ctx, 1024); err != nil {
		panic(err)
	}
	if err := r.PutBlock(ctx, datastore.NewKey("block-0"), make([]byte, 1024)); err != nil {
		panic(err)
	}
	q := r.Quota()
	fmt.Printf("max=%d used=%d reserved=%d available=%d\n", q.Max, q.Used, q.Reserved, q.Available())

	err = r.Reserve(ctx, 1<<20)
	fmt.Println(err != nil)
	// Output:
	// max=1048576 used=1024 reserved=3072 available=1044480
	// true
}

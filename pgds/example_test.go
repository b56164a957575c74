package pgds_test

import (
	"context"
	"fmt"

	"github.com/stowage/stowage/pgds"
	"github.com/stowage/stowage/repo"
)

// A repo whose metadata lives in PostgreSQL. This example needs a server, so
// it has no Output line: it is compiled, not run. The tests of this package
// run the same calls against a private server.
func Example() {
	ctx := context.Background()
	ds, err := pgds.Open(ctx, "postgres://stowage:secret@localhost:5432/stowage?connect_timeout=5",
		pgds.WithTable("host1"))
	if err != nil {
		fmt.Println("open:", err)
		return
	}
	defer ds.Close()

	r, err := repo.New(ctx, ds, repo.WithQuotaMaxBytes(1<<30))
	if err != nil {
		fmt.Println("repo:", err)
		return
	}
	defer r.Close()
	if err := r.Reserve(ctx, 4096); err != nil {
		fmt.Println("reserve:", err)
		return
	}
	fmt.Println("available:", r.Available())
}

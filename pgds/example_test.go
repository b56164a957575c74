package pgds_test

import (
	"context"
	"errors"
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

// A conflict between two transactions is reported as ErrSerialization,
// whose Retryable method tells any caller (repo.WithShared among them) to
// run the transaction again; a lost answer to COMMIT is ErrCommitUnknown,
// which must not be retried blindly.
func Example_retry() {
	conflict := fmt.Errorf("commit: %w", pgds.ErrSerialization)
	var r interface{ Retryable() bool }
	fmt.Println(errors.Is(conflict, pgds.ErrSerialization), errors.As(conflict, &r) && r.Retryable())

	lost := fmt.Errorf("commit: %w", pgds.ErrCommitUnknown)
	fmt.Println(errors.Is(lost, pgds.ErrSerialization), errors.As(lost, &r))
	// Output:
	// true true
	// false false
}

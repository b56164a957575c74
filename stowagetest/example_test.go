package stowagetest_test

import (
	"context"
	"fmt"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
	"github.com/stowage/stowage/stowagetest"
)

// Scenario drives a repo and its Store through every kind of change; the
// suite replays it with a failure at each write. In a test of your own
// datastore, call stowagetest.Datastore(t, open) instead.
func ExampleScenario() {
	ctx := context.Background()
	ds := dssync.MutexWrap(datastore.NewMapDatastore())
	r, err := repo.New(ctx, ds, repo.WithQuotaMaxBytes(1<<20))
	if err != nil {
		panic(err)
	}
	s := reservations.New(r)
	stowagetest.Scenario(ctx, r, s)

	as, _ := s.Availabilities(ctx)
	rs, _ := s.Reservations(ctx)
	q := r.Quota()
	fmt.Println("availabilities:", len(as), "reservations:", len(rs))
	fmt.Println("reserved:", q.Reserved, "used:", q.Used, "verify:", s.Verify(ctx))
	// Output:
	// availabilities: 1 reservations: 1
	// reserved: 450 used: 60 verify: <nil>
}

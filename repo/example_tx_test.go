package repo_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/stowage/stowage/repo"
)

// A host keeps the state of each sale in a record of its own, written in
// the same atomic change as the bytes the sale moves: after a crash the
// record and the quota never disagree.
func ExampleRepo_Update() {
	ctx := context.Background()
	r, err := repo.New(ctx, dssync.MutexWrap(datastore.NewMapDatastore()), repo.WithQuotaMaxBytes(1<<20))
	if err != nil {
		panic(err)
	}
	defer r.Close()
	sale := datastore.NewKey("/host/sales/request-1/slot-0")

	// The sale starts: its 4 KiB are promised, and its state says so.
	err = r.Update(ctx, func(tx *repo.Tx) error {
		if err := tx.Reserve(4096); err != nil {
			return err
		}
		return tx.Put(sale, []byte("reserved"))
	})
	if err != nil {
		panic(err)
	}

	// The first block arrives: its bytes move from Reserved to Used, the
	// block is stored, and the state moves on, all or nothing.
	err = r.Update(ctx, func(tx *repo.Tx) error {
		data := make([]byte, 1024)
		if err := tx.Release(uint64(len(data))); err != nil {
			return err
		}
		if err := tx.PutBlock(datastore.NewKey("/request-1/slot-0/0"), data); err != nil {
			return err
		}
		return tx.Put(sale, []byte("filling 1024/4096"))
	})
	if err != nil {
		panic(err)
	}

	// An error from fn abandons the whole change.
	errNo := errors.New("the client went away")
	err = r.Update(ctx, func(tx *repo.Tx) error {
		if err := tx.Put(sale, []byte("cancelled")); err != nil {
			return err
		}
		return errNo
	})
	fmt.Println("abandoned:", errors.Is(err, errNo))

	// The SDK's own keys are not the host's to write.
	err = r.Update(ctx, func(tx *repo.Tx) error {
		return tx.Put(datastore.NewKey("/meta/quota/used"), []byte{0})
	})
	fmt.Println("refused:", errors.Is(err, repo.ErrReservedKey))

	// One consistent state: the record and the counters of one change.
	err = r.View(ctx, func(tx *repo.Tx) error {
		state, err := tx.Get(sale)
		if err != nil {
			return err
		}
		q := tx.Quota()
		fmt.Printf("%s: used=%d reserved=%d\n", state, q.Used, q.Reserved)
		return nil
	})
	if err != nil {
		panic(err)
	}
	// Output:
	// abandoned: true
	// refused: true
	// filling 1024/4096: used=1024 reserved=3072
}

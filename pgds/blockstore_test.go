package pgds_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/pgds"
	"github.com/stowage/stowage/pgds/internal/pgtest"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// hookBlocks is a block store whose batches run a hook once they have
// committed.
type hookBlocks struct {
	*dssync.MutexDatastore
	mu          sync.Mutex
	afterCommit func()
}

func (b *hookBlocks) Batch(ctx context.Context) (datastore.Batch, error) {
	inner, err := b.MutexDatastore.Batch(ctx)
	if err != nil {
		return nil, err
	}
	return &hookBatch{Batch: inner, b: b}, nil
}

type hookBatch struct {
	datastore.Batch
	b *hookBlocks
}

func (h *hookBatch) Commit(ctx context.Context) error {
	if err := h.Batch.Commit(ctx); err != nil {
		return err
	}
	h.b.mu.Lock()
	hook := h.b.afterCommit
	h.b.afterCommit = nil
	h.b.mu.Unlock()
	if hook != nil {
		hook()
	}
	return nil
}

// blockstoreHost opens a host in shared mode whose blocks live in a block
// store of their own, with a reservation of three blocks.
func blockstoreHost(t *testing.T) (*hookDS, *hookBlocks, *reservations.Store, *repo.Repo, reservations.Reservation, []datastore.Key) {
	t.Helper()
	ds, err := pgds.Open(t.Context(), pgtest.URL(t))
	require.NoError(t, err)
	t.Cleanup(func() { ds.Close() })
	h := &hookDS{Datastore: ds}
	blocks := &hookBlocks{MutexDatastore: dssync.MutexWrap(datastore.NewMapDatastore())}
	r, err := repo.New(t.Context(), h, repo.WithShared(), repo.WithBlockstore(blocks), repo.WithQuotaMaxBytes(1<<20))
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	s := reservations.New(r)
	ctx := t.Context()
	_, err = s.AddAvailability(ctx, reservations.Availability{TotalSize: 1000, Duration: 100})
	require.NoError(t, err)
	res, err := s.ReserveSlot(ctx, stowage.Slot{RequestID: stowage.RequestID{1}, Ask: testAsk})
	require.NoError(t, err)
	var keys []datastore.Key
	for i := range 3 {
		k := datastore.NewKey(fmt.Sprintf("/blk%d", i))
		require.NoError(t, s.PutBlock(ctx, res.ID, k, []byte("data")))
		keys = append(keys, k)
	}
	require.NoError(t, s.Verify(ctx))
	return h, blocks, s, r, res, keys
}

// checkDeleteOutcome checks what a DeleteReservation that failed half-way
// left: the reservation and its blocks both there or both gone, or else
// the caller was told the outcome is unknown (ErrWriteFailed, never an
// error that means nothing was written). A repeated delete then balances
// the books either way.
func checkDeleteOutcome(t *testing.T, err error, s *reservations.Store, r *repo.Repo, res reservations.Reservation, keys []datastore.Key) {
	t.Helper()
	ctx := t.Context()
	_, rerr := s.Reservation(ctx, res.ID)
	there := rerr == nil
	if !there {
		require.ErrorIs(t, rerr, reservations.ErrNotFound)
	}
	var held int
	for _, k := range keys {
		ok, err := r.HasBlock(ctx, k)
		require.NoError(t, err)
		if ok {
			held++
		}
	}
	whole := (there && held == len(keys)) || (!there && held == 0)
	if !whole {
		assert.ErrorIs(t, err, repo.ErrWriteFailed,
			"reservation there: %v, %d of %d blocks there, yet the caller got %v", there, held, len(keys), err)
	}
	if err == nil {
		assert.False(t, there, "the delete succeeded")
	} else {
		t.Logf("delete: %v (reservation there: %v, %d of %d blocks)", err, there, held, len(keys))
	}
	require.NoError(t, s.DeleteReservation(ctx, res.ID), "the delete repeated")
	require.NoError(t, s.Verify(ctx))
	require.NoError(t, r.Verify(ctx))
}

// The block store commits the deletes of a reservation's blocks, then the
// caller's ctx ends before the metadata commits.
func TestShared_BlockstoreDeleteThenCtxCancelled(t *testing.T) {
	_, blocks, s, r, res, keys := blockstoreHost(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	blocks.mu.Lock()
	blocks.afterCommit = cancel
	blocks.mu.Unlock()
	err := s.DeleteReservation(ctx, res.ID)
	checkDeleteOutcome(t, err, s, r, res, keys)
}

// The block store commits the deletes of a reservation's blocks, then the
// metadata fails to commit (a conflict on every attempt).
func TestShared_BlockstoreDeleteThenMetadataFails(t *testing.T) {
	h, blocks, s, r, res, keys := blockstoreHost(t)
	blocks.mu.Lock()
	blocks.afterCommit = func() {
		h.mu.Lock()
		h.failCommits = -1
		h.mu.Unlock()
	}
	blocks.mu.Unlock()
	err := s.DeleteReservation(t.Context(), res.ID)
	require.Error(t, err)
	assert.False(t, errors.Is(err, repo.ErrConflict), "ErrConflict says nothing was changed, and blocks were deleted: %v", err)
	h.mu.Lock()
	h.failCommits = 0
	h.mu.Unlock()
	checkDeleteOutcome(t, err, s, r, res, keys)
}

// Conflicts after the block deletes are retried as any other: the delete
// succeeds once the metadata commits, and the books balance.
func TestShared_BlockstoreDeleteThenConflictsIsRetried(t *testing.T) {
	h, blocks, s, r, res, _ := blockstoreHost(t)
	blocks.mu.Lock()
	blocks.afterCommit = func() {
		h.mu.Lock()
		h.failCommits = 3
		h.mu.Unlock()
	}
	blocks.mu.Unlock()
	require.NoError(t, s.DeleteReservation(t.Context(), res.ID))
	_, err := s.Reservation(t.Context(), res.ID)
	require.ErrorIs(t, err, reservations.ErrNotFound)
	require.NoError(t, s.Verify(t.Context()))
	require.NoError(t, r.Verify(t.Context()))
}

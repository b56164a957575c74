package reservations_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/internal/oddkeys"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// Issue 17 item 3: Store.PutBlock refuses an odd key with
// repo.ErrInvalidKey, writes nothing (no block, no index entry outside the
// reservation's prefix), never panics, and the books stay balanced: the
// reservation is deleted whole afterwards.
func TestStorePutBlock_RefusesOddKeys(t *testing.T) {
	backends := map[string]func(t *testing.T) (*reservations.Store, *repo.Repo){
		"memory": func(t *testing.T) (*reservations.Store, *repo.Repo) {
			s, r, _ := newStore(t, 1<<20)
			return s, r
		},
		"leveldb": func(t *testing.T) (*reservations.Store, *repo.Repo) {
			r, err := repo.Open(t.Context(), t.TempDir(), repo.WithQuotaMaxBytes(1<<20), repo.WithNoSync())
			require.NoError(t, err)
			t.Cleanup(func() { _ = r.Close() })
			return reservations.New(r), r
		},
	}
	for name, open := range backends {
		t.Run(name, func(t *testing.T) {
			s, r := open(t)
			ctx := t.Context()
			a := mustAvailability(t, s, 1000)
			res, err := s.ReserveSlot(ctx, slotOf(1, 0, 100))
			require.NoError(t, err)
			require.NoError(t, s.PutBlock(ctx, res.ID, blockKey(1), []byte("held")))
			before, quota := snapshot(t, r.Datastore()), r.Quota()
			for k, key := range oddkeys.Block() {
				err := func() (err error) {
					defer func() {
						if p := recover(); p != nil {
							err = fmt.Errorf("panicked: %v", p)
						}
					}()
					return s.PutBlock(ctx, res.ID, key, []byte("data"))
				}()
				assert.ErrorIs(t, err, repo.ErrInvalidKey, k)
				assert.Equal(t, before, snapshot(t, r.Datastore()), "%s: nothing written", k)
				assert.Equal(t, quota, r.Quota(), k)
			}
			requireInvariant(t, s)
			require.NoError(t, s.DeleteReservation(ctx, res.ID))
			assert.Equal(t, repo.Quota{Max: 1 << 20, Reserved: 1000}, r.Quota(), "the delete found every block")
			assert.Equal(t, uint64(1000), availability(t, s, a.ID).Size)
			requireInvariant(t, s)
		})
	}
}

package httpapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/reservations"
)

// 16 clients add, resize and delete availabilities over HTTP while 16
// reservers take and give back slots through the store: no answer is a
// 500, nothing is overcommitted, and the books balance.
func TestAPI_ConcurrentClientsAndReservers(t *testing.T) {
	const clients, reservers, rounds = 16, 16, 12
	ctx := context.Background()
	f := newFixture(t)
	var wg sync.WaitGroup
	var reserved atomic.Int64
	allowed := map[int]bool{200: true, 201: true, 204: true, 404: true, 409: true, 422: true}
	for c := range clients {
		wg.Go(func() {
			for i := range rounds {
				r := do(t, f.srv, "POST", "/sales/availability",
					strings.NewReader(fmt.Sprintf(`{"totalSize": %d, "duration": 3600, "totalCollateral": "1000"}`, 3000+1000*(i%5))), nil)
				if !assert.True(t, allowed[r.status], "POST: %d %s", r.status, r.body) || r.status != 201 {
					continue
				}
				id := r.json(t)["id"].(string)
				r = do(t, f.srv, "PATCH", "/sales/availability/"+id, strings.NewReader(fmt.Sprintf(`{"totalSize": %d}`, 1000+500*((c+i)%6))), nil)
				assert.True(t, allowed[r.status], "PATCH: %d %s", r.status, r.body)
				r = do(t, f.srv, "GET", "/sales/availability/"+id+"/reservations", nil, nil)
				assert.True(t, allowed[r.status], "GET: %d %s", r.status, r.body)
				r = do(t, f.srv, "DELETE", "/sales/availability/"+id, nil, nil)
				assert.True(t, allowed[r.status], "DELETE: %d %s", r.status, r.body)
			}
		})
	}
	for w := range reservers {
		wg.Go(func() {
			for i := range rounds {
				res, err := reserve(ctx, f.store, byte(100+w), uint64(i), 1000, 10, noExpiry)
				if errors.Is(err, reservations.ErrNoAvailability) {
					continue
				}
				if !assert.NoError(t, err) {
					return
				}
				reserved.Add(1)
				q := f.repo.Quota()
				assert.LessOrEqual(t, q.Used+q.Reserved, q.Max, "overcommitted")
				if i%2 == 0 {
					assert.NoError(t, unreserve(ctx, f.store, res))
				}
			}
		})
	}
	wg.Wait()
	assert.Positive(t, reserved.Load(), "the reservers got slots")
	require.NoError(t, f.store.Verify(ctx))
	require.NoError(t, f.repo.Verify(ctx))
	q := f.repo.Quota()
	assert.LessOrEqual(t, q.Used+q.Reserved, q.Max)
	// Every availability left is listed as the store has it.
	r := do(t, f.srv, "GET", "/sales/availability", nil, nil)
	require.Equal(t, http.StatusOK, r.status)
	as, err := f.store.Availabilities(ctx)
	require.NoError(t, err)
	assert.Len(t, r.list(t), len(as))
}

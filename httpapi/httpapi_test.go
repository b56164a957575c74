package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	legacyrouter "github.com/getkin/kin-openapi/routers/legacy"
	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/httpapi"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// spec is the OpenAPI document every response of the tests is checked
// against.
var spec = sync.OnceValues(func() (*openapi3.T, error) {
	b, err := os.ReadFile("openapi.json")
	if err != nil {
		return nil, err
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(b)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("the document itself: %w", err)
	}
	doc.Servers = nil // the tests mount the handler at the root
	return doc, nil
})

var router = sync.OnceValues(func() (routers.Router, error) {
	doc, err := spec()
	if err != nil {
		return nil, err
	}
	return legacyrouter.NewRouter(doc)
})

// validate checks a response against the OpenAPI document: the path's
// schema for its status, or, for a path or method the document does not
// have, the Error schema.
func validate(req *http.Request, status int, header http.Header, body []byte) error {
	doc, err := spec()
	if err != nil {
		return err
	}
	rt, err := router()
	if err != nil {
		return err
	}
	route, params, err := rt.FindRoute(req)
	if err != nil {
		if status != http.StatusNotFound && status != http.StatusMethodNotAllowed && status != http.StatusUnauthorized {
			return fmt.Errorf("%s %s: not in the document, yet answered %d", req.Method, req.URL.Path, status)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			return err
		}
		return doc.Components.Schemas["Error"].Value.VisitJSON(v)
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	return openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts},
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                opts,
	})
}

// fixture is a host with two availabilities, A (holding reservation R,
// which has written one block) and B (holding nothing).
type fixture struct {
	repo  *repo.Repo
	store *reservations.Store
	srv   *httptest.Server
	A, B  reservations.Availability
	R     reservations.Reservation
}

const quota = 1_000_000

var noExpiry time.Time

func newRepo(t testing.TB) (*repo.Repo, *reservations.Store) {
	t.Helper()
	r, err := repo.Open(context.Background(), t.TempDir(), repo.WithNoSync(), repo.WithQuotaMaxBytes(quota))
	require.NoError(t, err)
	t.Cleanup(func() { _ = r.Close() })
	return r, reservations.New(r)
}

func newFixture(t *testing.T, opts ...httpapi.Option) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{}
	f.repo, f.store = newRepo(t)
	var err error
	f.A, err = f.store.AddAvailability(ctx, reservations.Availability{
		TotalSize: 100_000, Duration: 3600, MinPrice: u(10), MaxCollateral: u(500), TotalCollateral: u(1000),
	})
	require.NoError(t, err)
	f.B, err = f.store.AddAvailability(ctx, reservations.Availability{TotalSize: 50_000, Duration: 60})
	require.NoError(t, err)
	f.R, err = reserve(ctx, f.store, 1, 0, 1000, 100, time.Unix(2_000_000_000-60, 0))
	require.NoError(t, err)
	require.Equal(t, f.A.ID, f.R.AvailabilityID)
	require.NoError(t, f.store.PutBlock(ctx, f.R.ID, datastore.NewKey("/block/1"), make([]byte, 100)))
	f.R, err = f.store.Reservation(ctx, f.R.ID)
	require.NoError(t, err)
	f.A, err = f.store.Availability(ctx, f.A.ID)
	require.NoError(t, err)
	f.srv = httptest.NewServer(httpapi.New(f.store, f.repo, opts...))
	t.Cleanup(f.srv.Close)
	return f
}

// state is everything a request could change.
type state struct {
	Quota          repo.Quota
	Availabilities []reservations.Availability
	Reservations   []reservations.Reservation
}

func (f *fixture) state(t *testing.T) state {
	t.Helper()
	ctx := context.Background()
	as, err := f.store.Availabilities(ctx)
	require.NoError(t, err)
	rs, err := f.store.Reservations(ctx)
	require.NoError(t, err)
	return state{Quota: f.repo.Quota(), Availabilities: as, Reservations: rs}
}

// response is an answer as a client sees it.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(r.body, &m), "%s", r.body)
	return m
}

func (r response) list(t *testing.T) []map[string]any {
	t.Helper()
	var l []map[string]any
	require.NoError(t, json.Unmarshal(r.body, &l), "%s", r.body)
	return l
}

// do sends a request with a real client and checks the answer against the
// OpenAPI document.
func do(t testing.TB, srv *httptest.Server, method, path string, body io.Reader, header http.Header) response {
	t.Helper()
	var sent []byte
	if body != nil {
		var err error
		sent, err = io.ReadAll(body)
		require.NoError(t, err)
	}
	req, err := http.NewRequest(method, srv.URL+path, bytes.NewReader(sent))
	require.NoError(t, err)
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, validate(req, resp.StatusCode, resp.Header, b), "%s %s -> %d %s", method, path, resp.StatusCode, b)
	if resp.StatusCode < 300 {
		require.NoError(t, validateRequest(method, srv.URL+path, sent), "%s %s %s was accepted", method, path, sent)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// validateRequest checks that a request the API accepted is one the
// OpenAPI document allows.
func validateRequest(method, url string, body []byte) error {
	rt, err := router()
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	route, params, err := rt.FindRoute(req)
	if err != nil {
		return err
	}
	return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	})
}

func u(n uint64) uint256.Int { return *uint256.NewInt(n) }

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func TestAPI(t *testing.T) {
	const unknown = "01890000-0000-7000-8000-000000000000"
	big := `{"totalSize": 1, "duration": 1, "minPrice": "` + strings.Repeat("1", 1<<20) + `"}`
	type row struct {
		name    string
		method  string
		path    string // {A}, {B}, {R}: the fixture's IDs
		body    string
		opts    []httpapi.Option
		header  http.Header
		status  int
		errHas  []string                                   // for an error: what its message says
		check   func(t *testing.T, f *fixture, r response) // for a success
		changes bool                                       // the row may change the store
	}
	rows := []row{
		{name: "space", method: "GET", path: "/space", status: 200, check: func(t *testing.T, f *fixture, r response) {
			assert.JSONEq(t, `{"quotaMaxBytes":1000000,"quotaUsedBytes":100,"quotaReservedBytes":149900,"quotaAvailableBytes":850000,"totalBlocks":1}`, string(r.body))
		}},
		{name: "list availabilities", method: "GET", path: "/sales/availability", status: 200, check: func(t *testing.T, f *fixture, r response) {
			l := r.list(t)
			require.Len(t, l, 2)
			assert.Equal(t, map[string]any{
				"id": f.A.ID.String(), "totalSize": 100000.0, "freeSize": 99000.0, "duration": 3600.0,
				"minPrice": "10", "maxCollateral": "500", "totalCollateral": "1000", "totalRemainingCollateral": "900",
				"enabled": true, "until": 0.0,
			}, l[0])
			assert.Equal(t, f.B.ID.String(), l[1]["id"])
		}},
		{name: "add", method: "POST", path: "/sales/availability", body: `{"totalSize": 2000, "duration": 600, "minPrice": "5", "maxCollateral": "7"}`, status: 201, changes: true,
			check: func(t *testing.T, f *fixture, r response) {
				m := r.json(t)
				assert.Equal(t, 2000.0, m["totalSize"])
				assert.Equal(t, 2000.0, m["freeSize"])
				assert.Equal(t, true, m["enabled"], "enabled defaults to true")
				assert.Equal(t, "5", m["minPrice"])
				id, err := reservations.ParseAvailabilityID(m["id"].(string))
				require.NoError(t, err)
				a, err := f.store.Availability(context.Background(), id)
				require.NoError(t, err)
				assert.Equal(t, uint64(600), a.Duration)
				assert.Equal(t, uint64(quota-152_000), f.repo.Quota().Available())
			}},
		{name: "add with every field", method: "POST", path: "/sales/availability",
			body: `{"totalSize": 2000, "duration": 600, "minPrice": "5", "maxCollateral": "7", "totalCollateral": "70", "enabled": false, "until": 1900000000}`, status: 201, changes: true,
			check: func(t *testing.T, f *fixture, r response) {
				m := r.json(t)
				assert.Equal(t, false, m["enabled"])
				assert.Equal(t, 1900000000.0, m["until"])
				assert.Equal(t, "70", m["totalRemainingCollateral"])
				id, _ := reservations.ParseAvailabilityID(m["id"].(string))
				a, err := f.store.Availability(context.Background(), id)
				require.NoError(t, err)
				assert.True(t, a.Disabled)
				assert.Equal(t, int64(1900000000), a.Until.Unix())
			}},
		{name: "add: bad JSON", method: "POST", path: "/sales/availability", body: `{"totalSize": `, status: 400, errHas: []string{"body"}},
		{name: "add: not an object", method: "POST", path: "/sales/availability", body: `[1]`, status: 400, errHas: []string{"object"}},
		{name: "add: empty body", method: "POST", path: "/sales/availability", status: 400, errHas: []string{"body"}},
		{name: "add: unknown field", method: "POST", path: "/sales/availability", body: `{"totalSize": 1, "duration": 1, "size": 3}`, status: 400, errHas: []string{`"size"`}},
		{name: "add: id given", method: "POST", path: "/sales/availability", body: `{"id": "x", "totalSize": 1, "duration": 1}`, status: 400, errHas: []string{`"id"`}},
		{name: "add: remaining collateral given", method: "POST", path: "/sales/availability", body: `{"totalRemainingCollateral": "1", "totalSize": 1, "duration": 1}`, status: 400, errHas: []string{`"totalRemainingCollateral"`}},
		{name: "add: a field in the wrong case", method: "POST", path: "/sales/availability", body: `{"totalsize": 1, "duration": 1}`, status: 400, errHas: []string{`"totalsize"`}},
		{name: "add: freeSize in the wrong case", method: "POST", path: "/sales/availability", body: `{"totalSize": 1, "duration": 1, "freesize": 1}`, status: 400, errHas: []string{`"freesize"`}},
		{name: "add: null", method: "POST", path: "/sales/availability", body: `{"totalSize": 1, "duration": 1, "minPrice": null}`, status: 400, errHas: []string{"minPrice", "null"}},
		{name: "add: wrong type", method: "POST", path: "/sales/availability", body: `{"totalSize": "big", "duration": 1}`, status: 400, errHas: []string{"totalSize"}},
		{name: "add: negative size", method: "POST", path: "/sales/availability", body: `{"totalSize": -1, "duration": 1}`, status: 400, errHas: []string{"totalSize"}},
		{name: "add: amount not decimal", method: "POST", path: "/sales/availability", body: `{"totalSize": 1, "duration": 1, "minPrice": "1.5"}`, status: 400, errHas: []string{"minPrice"}},
		{name: "add: amount as a number", method: "POST", path: "/sales/availability", body: `{"totalSize": 1, "duration": 1, "maxCollateral": 5}`, status: 400, errHas: []string{"maxCollateral"}},
		{name: "add: amount too large", method: "POST", path: "/sales/availability", body: `{"totalSize": 1, "duration": 1, "totalCollateral": "1` + strings.Repeat("0", 80) + `"}`, status: 400, errHas: []string{"totalCollateral"}},
		{name: "add: negative amount", method: "POST", path: "/sales/availability", body: `{"totalSize": 1, "duration": 1, "minPrice": "-1"}`, status: 400, errHas: []string{"minPrice"}},
		{name: "add: data after the object", method: "POST", path: "/sales/availability", body: `{"totalSize": 1, "duration": 1} {}`, status: 400, errHas: []string{"after"}},
		{name: "add: freeSize", method: "POST", path: "/sales/availability", body: `{"totalSize": 1, "duration": 1, "freeSize": 1}`, status: 422, errHas: []string{"freeSize"}},
		{name: "add: zero size", method: "POST", path: "/sales/availability", body: `{"totalSize": 0, "duration": 1}`, status: 422, errHas: []string{"size"}},
		{name: "add: no size", method: "POST", path: "/sales/availability", body: `{"duration": 1}`, status: 422, errHas: []string{"size"}},
		{name: "add: no duration", method: "POST", path: "/sales/availability", body: `{"totalSize": 1}`, status: 422, errHas: []string{"duration"}},
		{name: "add: zero duration", method: "POST", path: "/sales/availability", body: `{"totalSize": 1, "duration": 0}`, status: 422, errHas: []string{"duration"}},
		{name: "add: over quota", method: "POST", path: "/sales/availability", body: `{"totalSize": 900000, "duration": 1}`, status: 422, errHas: []string{"quota", "900000"}},
		{name: "add: negative until", method: "POST", path: "/sales/availability", body: `{"totalSize": 1, "duration": 1, "until": -5}`, status: 422, errHas: []string{"until"}},
		{name: "add: until past year 9999", method: "POST", path: "/sales/availability", body: `{"totalSize": 1, "duration": 1, "until": 300000000000}`, status: 422, errHas: []string{"time"}},
		{name: "add: body over 1 MiB", method: "POST", path: "/sales/availability", body: big, status: 413, errHas: []string{"larger"}},

		{name: "get", method: "GET", path: "/sales/availability/{A}", status: 200, check: func(t *testing.T, f *fixture, r response) {
			m := r.json(t)
			assert.Equal(t, f.A.ID.String(), m["id"])
			assert.Equal(t, 99000.0, m["freeSize"])
		}},
		{name: "get: bad id", method: "GET", path: "/sales/availability/nope", status: 400, errHas: []string{"id", "nope"}},
		{name: "get: unknown", method: "GET", path: "/sales/availability/" + unknown, status: 404, errHas: []string{unknown}},

		{name: "patch duration", method: "PATCH", path: "/sales/availability/{A}", body: `{"duration": 7200}`, status: 200, changes: true,
			check: func(t *testing.T, f *fixture, r response) {
				a, err := f.store.Availability(context.Background(), f.A.ID)
				require.NoError(t, err)
				want := f.A
				want.Duration = 7200
				assert.Equal(t, want, a, "only the field given changes")
				assert.Equal(t, 7200.0, r.json(t)["duration"])
			}},
		{name: "patch grows", method: "PATCH", path: "/sales/availability/{A}", body: `{"totalSize": 200000}`, status: 200, changes: true,
			check: func(t *testing.T, f *fixture, r response) {
				m := r.json(t)
				assert.Equal(t, 200000.0, m["totalSize"])
				assert.Equal(t, 199000.0, m["freeSize"])
				assert.Equal(t, uint64(quota-250_000), f.repo.Quota().Available())
			}},
		{name: "patch disables, sets until and budget", method: "PATCH", path: "/sales/availability/{A}", body: `{"enabled": false, "until": 2100000000, "totalCollateral": "300", "minPrice": "11"}`, status: 200, changes: true,
			check: func(t *testing.T, f *fixture, r response) {
				m := r.json(t)
				assert.Equal(t, false, m["enabled"])
				assert.Equal(t, 2100000000.0, m["until"])
				assert.Equal(t, "200", m["totalRemainingCollateral"])
				assert.Equal(t, "11", m["minPrice"])
				assert.Equal(t, 100000.0, m["totalSize"])
			}},
		{name: "patch: empty object changes nothing", method: "PATCH", path: "/sales/availability/{B}", body: `{}`, status: 200, changes: true,
			check: func(t *testing.T, f *fixture, r response) {
				b, err := f.store.Availability(context.Background(), f.B.ID)
				require.NoError(t, err)
				assert.Equal(t, f.B, b)
			}},
		{name: "patch: below what reservations hold", method: "PATCH", path: "/sales/availability/{A}", body: `{"totalSize": 500}`, status: 422, errHas: []string{"500", "1000"}},
		{name: "patch: over quota", method: "PATCH", path: "/sales/availability/{A}", body: `{"totalSize": 2000000}`, status: 422, errHas: []string{"quota"}},
		{name: "patch: budget below what reservations hold", method: "PATCH", path: "/sales/availability/{A}", body: `{"totalCollateral": "50"}`, status: 422, errHas: []string{"50", "100"}},
		{name: "patch: until before a held slot's end", method: "PATCH", path: "/sales/availability/{A}", body: `{"until": 1999000000}`, status: 422, errHas: []string{"until"}},
		{name: "patch: freeSize", method: "PATCH", path: "/sales/availability/{A}", body: `{"freeSize": 5}`, status: 422, errHas: []string{"freeSize"}},
		{name: "patch: zero duration", method: "PATCH", path: "/sales/availability/{A}", body: `{"duration": 0}`, status: 422, errHas: []string{"duration"}},
		{name: "patch: bad JSON", method: "PATCH", path: "/sales/availability/{A}", body: `{`, status: 400, errHas: []string{"body"}},
		{name: "patch: unknown field", method: "PATCH", path: "/sales/availability/{A}", body: `{"colour": "red"}`, status: 400, errHas: []string{`"colour"`}},
		{name: "patch: null", method: "PATCH", path: "/sales/availability/{A}", body: `{"until": null}`, status: 400, errHas: []string{"until"}},
		{name: "patch: wrong type", method: "PATCH", path: "/sales/availability/{A}", body: `{"enabled": "yes"}`, status: 400, errHas: []string{"enabled"}},
		{name: "patch: bad id", method: "PATCH", path: "/sales/availability/12", body: `{}`, status: 400, errHas: []string{"id"}},
		{name: "patch: unknown", method: "PATCH", path: "/sales/availability/" + unknown, body: `{"duration": 5}`, status: 404, errHas: []string{unknown}},
		{name: "patch: body over 1 MiB", method: "PATCH", path: "/sales/availability/{A}", body: big, status: 413, errHas: []string{"larger"}},

		{name: "delete", method: "DELETE", path: "/sales/availability/{B}", status: 204, changes: true,
			check: func(t *testing.T, f *fixture, r response) {
				assert.Empty(t, r.body)
				_, err := f.store.Availability(context.Background(), f.B.ID)
				assert.ErrorIs(t, err, reservations.ErrNotFound)
				assert.Equal(t, uint64(quota-100_000), f.repo.Quota().Available())
			}},
		{name: "delete: holds reservations", method: "DELETE", path: "/sales/availability/{A}", status: 409, errHas: []string{"reservations"}},
		{name: "delete: unknown", method: "DELETE", path: "/sales/availability/" + unknown, status: 404, errHas: []string{unknown}},
		{name: "delete: bad id", method: "DELETE", path: "/sales/availability/x", status: 400, errHas: []string{"id"}},

		{name: "reservations of", method: "GET", path: "/sales/availability/{A}/reservations", status: 200, check: func(t *testing.T, f *fixture, r response) {
			l := r.list(t)
			require.Len(t, l, 1)
			assert.Equal(t, map[string]any{
				"id": f.R.ID.String(), "availabilityId": f.A.ID.String(), "size": 900.0, "used": 100.0, "slotSize": 1000.0,
				"requestId": f.R.RequestID.String(), "slotIndex": 0.0, "collateral": "100", "validUntil": 2000000000.0,
			}, l[0])
		}},
		{name: "reservations of: none", method: "GET", path: "/sales/availability/{B}/reservations", status: 200, check: func(t *testing.T, f *fixture, r response) {
			assert.JSONEq(t, `[]`, string(r.body))
		}},
		{name: "reservations of: unknown", method: "GET", path: "/sales/availability/" + unknown + "/reservations", status: 404, errHas: []string{unknown}},
		{name: "reservations of: bad id", method: "GET", path: "/sales/availability/zz/reservations", status: 400, errHas: []string{"id"}},

		{name: "reservation", method: "GET", path: "/sales/reservations/{R}", status: 200, check: func(t *testing.T, f *fixture, r response) {
			m := r.json(t)
			assert.Equal(t, f.R.ID.String(), m["id"])
			assert.Equal(t, 900.0, m["size"])
		}},
		{name: "reservation: unknown", method: "GET", path: "/sales/reservations/" + unknown, status: 404, errHas: []string{unknown}},
		{name: "reservation: bad id", method: "GET", path: "/sales/reservations/{A}x", status: 400, errHas: []string{"id"}},

		{name: "queue: none", method: "GET", path: "/sales/queue", status: 404},
		{name: "openapi", method: "GET", path: "/openapi.json", status: 200, check: func(t *testing.T, f *fixture, r response) {
			want, err := os.ReadFile("openapi.json")
			require.NoError(t, err)
			assert.Equal(t, want, r.body)
		}},

		{name: "wrong method on a collection", method: "PUT", path: "/sales/availability", body: `{}`, status: 405, check: func(t *testing.T, f *fixture, r response) {
			assert.Contains(t, r.header.Get("Allow"), "GET")
			assert.Contains(t, r.header.Get("Allow"), "POST")
		}},
		{name: "wrong method on space", method: "POST", path: "/space", status: 405, check: func(t *testing.T, f *fixture, r response) {
			assert.Contains(t, r.header.Get("Allow"), "GET")
			assert.NotContains(t, r.header.Get("Allow"), "POST")
		}},
		{name: "wrong method on an availability", method: "POST", path: "/sales/availability/{A}", status: 405, check: func(t *testing.T, f *fixture, r response) {
			for _, m := range []string{"GET", "PATCH", "DELETE"} {
				assert.Contains(t, r.header.Get("Allow"), m)
			}
		}},
		{name: "no such path", method: "GET", path: "/sales/nothing", status: 404, errHas: []string{"/sales/nothing"}},

		{name: "token: missing", opts: []httpapi.Option{httpapi.WithToken("s3cret")}, method: "GET", path: "/space", status: 401, errHas: []string{"token"},
			check: func(t *testing.T, f *fixture, r response) {
				assert.Contains(t, r.header.Get("WWW-Authenticate"), "Bearer")
			}},
		{name: "token: wrong", opts: []httpapi.Option{httpapi.WithToken("s3cret")}, method: "DELETE", path: "/sales/availability/{B}",
			header: http.Header{"Authorization": {"Bearer s3cret2"}}, status: 401, errHas: []string{"token"}},
		{name: "token: other scheme", opts: []httpapi.Option{httpapi.WithToken("s3cret")}, method: "GET", path: "/space",
			header: http.Header{"Authorization": {"Basic s3cret"}}, status: 401, errHas: []string{"token"}},
		{name: "token: right", opts: []httpapi.Option{httpapi.WithToken("s3cret")}, method: "DELETE", path: "/sales/availability/{B}",
			header: http.Header{"Authorization": {"Bearer s3cret"}}, status: 204, changes: true},
	}
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, tc.opts...)
			path := strings.NewReplacer("{A}", f.A.ID.String(), "{B}", f.B.ID.String(), "{R}", f.R.ID.String()).Replace(tc.path)
			before := f.state(t)
			commits := f.repo.Stats().Commits
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			r := do(t, f.srv, tc.method, path, body, tc.header)
			require.Equal(t, tc.status, r.status, "%s", r.body)
			if r.status != http.StatusNoContent {
				assert.Equal(t, "application/json", r.header.Get("Content-Type"))
			}
			if r.status >= 400 {
				var e struct{ Error string }
				require.NoError(t, json.Unmarshal(r.body, &e), "%s", r.body)
				assert.NotEmpty(t, e.Error)
				for _, s := range tc.errHas {
					assert.Contains(t, e.Error, s)
				}
				assert.NotContains(t, e.Error, "internal")
			}
			if tc.check != nil {
				tc.check(t, f, r)
			}
			if !tc.changes {
				assert.Equal(t, before, f.state(t), "nothing changed")
				assert.Equal(t, commits, f.repo.Stats().Commits, "nothing written")
			}
			require.NoError(t, f.store.Verify(context.Background()))
		})
	}
}

func TestAPI_Queue(t *testing.T) {
	q := newPausedQueue(t, 3)
	f := newFixture(t, httpapi.WithQueue(q))
	r := do(t, f.srv, "GET", "/sales/queue", nil, nil)
	require.Equal(t, 200, r.status, "%s", r.body)
	m := r.json(t)
	stats := m["stats"].(map[string]any)
	assert.Equal(t, 3.0, stats["waiting"])
	assert.Equal(t, 3.0, stats["pushed"])
	assert.Equal(t, true, stats["paused"])
	items := m["items"].([]any)
	require.Len(t, items, 3)
	first := items[0].(map[string]any)
	assert.Equal(t, "7", first["reward"])
	assert.Equal(t, 1024.0, first["slotSize"])
	assert.Equal(t, 3, q.Len(), "a GET takes nothing off the queue")
}

// A 500 tells the caller nothing of the cause, and logs it.
func TestAPI_InternalErrorIsLoggedNotShown(t *testing.T) {
	f := newFixture(t)
	// A corrupt record behind the store's back: not the caller's doing.
	key := datastore.NewKey("/meta/sales/reservations/" + f.B.ID.String())
	require.NoError(t, f.repo.Datastore().Put(context.Background(), key, []byte("{not json")))
	var logs bytes.Buffer
	srv := httptest.NewServer(httpapi.New(f.store, f.repo, httpapi.WithLogger(slogTo(&logs))))
	defer srv.Close()
	r := do(t, srv, "GET", "/sales/availability/"+f.B.ID.String(), nil, nil)
	require.Equal(t, 500, r.status)
	assert.JSONEq(t, `{"error":"internal error"}`, string(r.body))
	assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	assert.Contains(t, logs.String(), "corrupt")
}

// A repo that cannot answer (here: closed) is a 503 the caller may retry,
// not a 500.
func TestAPI_ClosedRepoIsUnavailable(t *testing.T) {
	f := newFixture(t)
	require.NoError(t, f.repo.Close())
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/sales/availability", ""},
		{"GET", "/space", ""},
		{"POST", "/sales/availability", `{"totalSize": 1, "duration": 1}`},
		{"DELETE", "/sales/availability/" + f.B.ID.String(), ""},
	} {
		r := do(t, f.srv, c.method, c.path, strings.NewReader(c.body), nil)
		assert.Equal(t, http.StatusServiceUnavailable, r.status, "%s %s: %s", c.method, c.path, r.body)
		assert.Contains(t, string(r.body), "closed")
		assert.Equal(t, "application/json", r.header.Get("Content-Type"))
	}
}

// No GET writes, not even the first one on a new repo.
func TestAPI_GetsWriteNothing(t *testing.T) {
	r, store := newRepo(t)
	srv := httptest.NewServer(httpapi.New(store, r, httpapi.WithQueue(newPausedQueue(t, 2))))
	defer srv.Close()
	for _, p := range []string{"/space", "/sales/availability", "/sales/queue", "/openapi.json",
		"/sales/availability/01890000-0000-7000-8000-000000000000",
		"/sales/availability/01890000-0000-7000-8000-000000000000/reservations",
		"/sales/reservations/01890000-0000-7000-8000-000000000000"} {
		do(t, srv, "GET", p, nil, nil)
	}
	assert.Zero(t, r.Stats().Commits)
	assert.Zero(t, r.Stats().WriteFailures)
}

// The document refuses the bodies the API refuses for their shape.
func TestOpenAPI_RefusesWhatTheAPIRefuses(t *testing.T) {
	for _, body := range []string{
		`{"totalSize": 1, "duration": 1, "size": 3}`,
		`{"totalSize": 1, "duration": 1, "freeSize": 1}`,
		`{"totalSize": 1, "duration": 1, "id": "x"}`,
		`{"totalSize": "1", "duration": 1}`,
		`{"totalSize": 1, "duration": 1, "minPrice": "1.5"}`,
		`{"totalSize": 1, "duration": 1, "minPrice": 5}`,
		`{"totalSize": -1, "duration": 1}`,
	} {
		assert.Error(t, validateRequest("POST", "http://x/sales/availability", []byte(body)), body)
	}
	assert.NoError(t, validateRequest("POST", "http://x/sales/availability", []byte(`{"totalSize": 1, "duration": 1, "minPrice": "5", "enabled": false, "until": 7}`)))
}

package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/httpapi"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// The cost of the API beside the Store call it makes, on NoSync LevelDB:
// "store" calls the Store directly; "handler" serves a request as net/http
// hands it over, already parsed (the API's own cost: routing, decoding,
// checks, the Store call, encoding); "client" goes through a real
// http.Client and server over loopback TCP.

func BenchmarkListAvailabilities100(b *testing.B) {
	ctx := context.Background()
	r, store := newRepo(b)
	for range 100 {
		_, err := store.AddAvailability(ctx, reservations.Availability{TotalSize: 1000, Duration: 60})
		require.NoError(b, err)
	}
	h := httpapi.New(store, r)
	b.Run("store", func(b *testing.B) {
		for b.Loop() {
			as, err := store.Availabilities(ctx)
			if err != nil || len(as) != 100 {
				b.Fatal(err, len(as))
			}
		}
	})
	b.Run("handler", func(b *testing.B) {
		var w writer
		for b.Loop() {
			w.reset()
			h.ServeHTTP(&w, request("GET", "/sales/availability", ""))
			if w.code != 200 {
				b.Fatal(w.code, w.body.String())
			}
		}
	})
	b.Run("client", func(b *testing.B) {
		srv := httptest.NewServer(h)
		defer srv.Close()
		c := srv.Client()
		for b.Loop() {
			resp, err := c.Get(srv.URL + "/sales/availability")
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatal(resp.StatusCode)
			}
		}
	})
}

// Each variant gets a repo of its own: deleted records slow LevelDB's scans
// until it compacts them, so one run would tax the next.
func BenchmarkAddDeleteAvailability(b *testing.B) {
	ctx := context.Background()
	const body = `{"totalSize": 1000, "duration": 60, "minPrice": "100"}`
	b.Run("store", func(b *testing.B) {
		_, store := newRepo(b)
		for b.Loop() {
			a, err := store.AddAvailability(ctx, reservations.Availability{TotalSize: 1000, Duration: 60, MinPrice: u(100)})
			if err != nil {
				b.Fatal(err)
			}
			if err := store.DeleteAvailability(ctx, a.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("handler", func(b *testing.B) {
		h := httpapi.New(newRepoStore(b))
		var w writer
		for b.Loop() {
			w.reset()
			h.ServeHTTP(&w, request("POST", "/sales/availability", body))
			var a struct{ ID string }
			if w.code != 201 || json.Unmarshal(w.body.Bytes(), &a) != nil {
				b.Fatal(w.code, w.body.String())
			}
			w.reset()
			h.ServeHTTP(&w, request("DELETE", "/sales/availability/"+a.ID, ""))
			if w.code != 204 {
				b.Fatal(w.code, w.body.String())
			}
		}
	})
	b.Run("client", func(b *testing.B) {
		srv := httptest.NewServer(httpapi.New(newRepoStore(b)))
		defer srv.Close()
		c := srv.Client()
		for b.Loop() {
			resp, err := c.Post(srv.URL+"/sales/availability", "application/json", strings.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			var a struct{ ID string }
			err = json.NewDecoder(resp.Body).Decode(&a)
			resp.Body.Close()
			if err != nil || resp.StatusCode != 201 {
				b.Fatal(resp.StatusCode, err)
			}
			req, _ := http.NewRequest("DELETE", srv.URL+"/sales/availability/"+a.ID, nil)
			resp, err = c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 204 {
				b.Fatal(resp.StatusCode)
			}
		}
	})
}

func newRepoStore(b *testing.B) (*reservations.Store, *repo.Repo) {
	r, store := newRepo(b)
	return store, r
}

// request is a request as the server hands it to a handler.
func request(method, path, body string) *http.Request {
	r := &http.Request{Method: method, URL: &url.URL{Path: path}, RequestURI: path, Header: http.Header{},
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Host: "127.0.0.1", Body: http.NoBody}
	if body != "" {
		r.Body, r.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
	}
	return r
}

// writer is a ResponseWriter reused from request to request, as a server
// reuses its buffers.
type writer struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (w *writer) reset() {
	if w.header == nil {
		w.header = http.Header{}
	}
	clear(w.header)
	w.code = 200
	w.body.Reset()
}
func (w *writer) Header() http.Header         { return w.header }
func (w *writer) Write(b []byte) (int, error) { return w.body.Write(b) }
func (w *writer) WriteHeader(code int)        { w.code = code }

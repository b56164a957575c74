package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage/httpapi"
	"github.com/stowage/stowage/reservations"
)

// The cost of the API beside the Store call it makes, on NoSync LevelDB:
// "store" calls the Store directly, "handler" serves the request in
// process (the API's own cost: routing, JSON, the Store call), "client"
// goes through a real http.Client over loopback TCP.

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
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "/sales/availability", nil))
			if w.Code != 200 {
				b.Fatal(w.Code, w.Body)
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

func BenchmarkAddDeleteAvailability(b *testing.B) {
	ctx := context.Background()
	r, store := newRepo(b)
	h := httpapi.New(store, r)
	const body = `{"totalSize": 1000, "duration": 60, "minPrice": "100"}`
	b.Run("store", func(b *testing.B) {
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
		for b.Loop() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("POST", "/sales/availability", strings.NewReader(body)))
			var a struct{ ID string }
			if w.Code != 201 || json.Unmarshal(w.Body.Bytes(), &a) != nil {
				b.Fatal(w.Code, w.Body)
			}
			w = httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("DELETE", "/sales/availability/"+a.ID, nil))
			if w.Code != 204 {
				b.Fatal(w.Code, w.Body)
			}
		}
	})
	b.Run("client", func(b *testing.B) {
		srv := httptest.NewServer(h)
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

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stowage/stowage/httpapi"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// apiPrefix is where -http mounts the operator's API.
const apiPrefix = "/api/stowage/v1"

// apiServer serves the operator's API (package httpapi) for -http: over
// the running host while the simulation runs and, with -serve, over the
// state it left once it is over. Mounting it is all a host needs: a mux,
// http.StripPrefix and httpapi.New.
type apiServer struct {
	ln   net.Listener
	srv  *http.Server
	api  atomic.Pointer[http.Handler] // nil between the two
	done chan error
}

// listenAPI starts serving on addr; nil without -http.
func listenAPI(addr string, stderr io.Writer) (*apiServer, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-http: %w", err)
	}
	a := &apiServer{ln: ln, done: make(chan error, 1)}
	mux := http.NewServeMux()
	mux.Handle(apiPrefix+"/", http.StripPrefix(apiPrefix, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := a.api.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"the host is not running"}`+"\n")
	})))
	a.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { a.done <- a.srv.Serve(ln) }()
	fmt.Fprintf(stderr, "storagenode: the operator's API is on http://%s%s/\n", ln.Addr(), apiPrefix)
	return a, nil
}

// serveHost serves the API over the running host (nil: over nothing).
func (a *apiServer) serveHost(h *Host) {
	if a == nil {
		return
	}
	if h == nil {
		a.api.Store(nil)
		return
	}
	var api http.Handler = httpapi.New(h.store, h.repo, httpapi.WithQueue(h.queue), httpapi.WithLogger(h.log))
	a.api.Store(&api)
}

// serveDir reopens the repo a run left in dir and serves the API over it
// until ctx is done.
func (a *apiServer) serveDir(ctx context.Context, dir string, stderr io.Writer) error {
	var saved savedHost
	b, err := os.ReadFile(filepath.Join(dir, hostFile))
	if err == nil {
		err = json.Unmarshal(b, &saved)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", hostFile, err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(saved.Capacity), repo.WithLogger(log))
	if err != nil {
		return err
	}
	var api http.Handler = httpapi.New(reservations.New(r), r, httpapi.WithLogger(log))
	a.api.Store(&api)
	fmt.Fprintf(stderr, "storagenode: serving the state in %s on http://%s%s/ until SIGINT or SIGTERM\n", dir, a.ln.Addr(), apiPrefix)
	<-ctx.Done()
	a.api.Store(nil)
	return r.Close()
}

// afterRun is -serve: serve the state the run left until SIGINT or SIGTERM.
func (a *apiServer) afterRun(dir string, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return a.serveDir(ctx, dir, stderr)
}

// close stops serving: requests in flight are given a few seconds.
func (a *apiServer) close() error {
	if a == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := a.srv.Shutdown(ctx)
	if serr := <-a.done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}

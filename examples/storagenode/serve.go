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
	"syscall"
	"time"

	"github.com/stowage/stowage/httpapi"
	"github.com/stowage/stowage/repo"
	"github.com/stowage/stowage/reservations"
)

// apiPrefix is where -http mounts the operator's API.
const apiPrefix = "/api/stowage/v1"

// serveAfterRun returns what main runs once the simulation is over and its
// bubble is gone (see inBubble): with -http, serve the operator's API over
// the state the run left in -dir until SIGINT or SIGTERM. It runs outside
// the bubble because real network I/O cannot share the bubble's fake clock.
// A run stopped by a signal serves nothing.
func serveAfterRun(args []string, stderr io.Writer, signaled func() syscall.Signal, then func()) func() {
	o, err := parseFlags(args, io.Discard)
	if err != nil || o.http == "" {
		return then
	}
	return func() {
		if then != nil {
			then()
		}
		if signaled() != 0 {
			return
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		ln, err := net.Listen("tcp", o.http)
		if err == nil {
			fmt.Fprintf(stderr, "storagenode: serving the operator's API on http://%s%s/ (the state in %s); Ctrl-C to stop\n", ln.Addr(), apiPrefix, o.dir)
			err = serveAPI(ctx, ln, o.dir, slog.New(slog.NewTextHandler(stderr, nil)))
		}
		if err != nil {
			fmt.Fprintln(stderr, "storagenode: -http:", err)
		}
	}
}

// serveAPI opens the repo a run left in dir and serves package httpapi over
// it, under apiPrefix, on ln until ctx is done. This is all a host needs to
// give its operator the API: a mux, http.StripPrefix and httpapi.New.
func serveAPI(ctx context.Context, ln net.Listener, dir string, log *slog.Logger) error {
	var saved savedHost
	b, err := os.ReadFile(filepath.Join(dir, hostFile))
	if err == nil {
		err = json.Unmarshal(b, &saved)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", hostFile, err)
	}
	r, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(saved.Capacity), repo.WithLogger(log))
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(apiPrefix+"/", http.StripPrefix(apiPrefix, httpapi.New(reservations.New(r), r, httpapi.WithLogger(log))))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = srv.Shutdown(shut)
		cancel()
		<-errc
	case err = <-errc:
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return errors.Join(err, r.Close())
}

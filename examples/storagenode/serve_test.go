package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The state a run leaves, served with -http's serveAPI and changed by a real
// client; the change is there after a restart.
func TestHTTP_ServesTheStateTheRunLeft(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runSim(t, []string{"-requests", "30", "-capacity", "16MiB", "-progress", "none", "-dir", dir}, nil)
	require.Equal(t, 0, code, stderr)

	serve := func() (base string, stop func()) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- serveAPI(ctx, ln, dir, slog.New(slog.DiscardHandler)) }()
		return "http://" + ln.Addr().String() + apiPrefix, func() {
			cancel()
			require.NoError(t, <-done)
			// goleveldb's mpoolDrain ends a second after Close (outside a
			// bubble: a real second); TestMain checks for leaks.
			require.Eventually(t, func() bool {
				buf := make([]byte, 1<<20)
				return !strings.Contains(string(buf[:runtime.Stack(buf, true)]), "mpoolDrain")
			}, 10*time.Second, 20*time.Millisecond)
		}
	}
	call := func(method, url, body string, want int, out any) {
		t.Helper()
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		require.NoError(t, err)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		require.Equal(t, want, resp.StatusCode, "%s %s: %s", method, url, b)
		if out != nil {
			require.NoError(t, json.Unmarshal(b, out), "%s", b)
		}
	}

	base, stop := serve()
	var space struct{ QuotaMaxBytes, QuotaAvailableBytes uint64 }
	call("GET", base+"/space", "", 200, &space)
	assert.Equal(t, uint64(16<<20), space.QuotaMaxBytes)
	assert.Zero(t, space.QuotaAvailableBytes, "the run offered all of its capacity")
	var as []struct {
		ID                  string
		TotalSize, FreeSize uint64
	}
	call("GET", base+"/sales/availability", "", 200, &as)
	require.Len(t, as, 2)
	assert.Equal(t, uint64(8<<20), as[0].TotalSize)
	assert.Equal(t, as[0].TotalSize, as[0].FreeSize, "every sale of the run is over")

	var e struct{ Error string }
	call("POST", base+"/sales/availability", `{"totalSize": 1048576, "duration": 3600}`, 422, &e)
	assert.Contains(t, e.Error, "quota")
	call("PATCH", base+"/sales/availability/"+as[0].ID, `{"totalSize": 7340032}`, 200, nil)
	var added struct{ ID string }
	call("POST", base+"/sales/availability", `{"totalSize": 1048576, "duration": 3600}`, 201, &added)
	stop()

	base, stop = serve()
	defer stop()
	call("GET", base+"/sales/availability", "", 200, &as)
	require.Len(t, as, 3)
	assert.Equal(t, uint64(7<<20), as[0].TotalSize)
	assert.Equal(t, added.ID, as[2].ID)
	call("DELETE", base+"/sales/availability/"+added.ID, "", 204, nil)
	call("GET", base+"/space", "", 200, &space)
	assert.Equal(t, uint64(1<<20), space.QuotaAvailableBytes)
}

func TestHTTP_NeedsDir(t *testing.T) {
	code, _, stderr := runSim(t, []string{"-http", "127.0.0.1:0"}, nil)
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, "-http")
	assert.Contains(t, stderr, "-dir")
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// get asks the API with a real client and decodes the answer.
func get(t *testing.T, method, url, body string, want int, out any) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, want, resp.StatusCode, "%s %s: %s", method, url, b)
	if want != http.StatusNoContent {
		assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), "%s %s", method, url)
	}
	if out != nil {
		require.NoError(t, json.Unmarshal(b, out), "%s", b)
	}
}

type availabilityJSON struct {
	ID                  string
	TotalSize, FreeSize uint64
}

type reservationJSON struct{ Size, Used uint64 }

var apiAddr = regexp.MustCompile(`the operator's API is on (http://\S+)/`)

// -http serves the running host: at every step of the simulation (the host
// idle in between) a real client reads it, and what it reads balances.
func TestHTTP_ServesTheRunningHost(t *testing.T) {
	var out, errb bytes.Buffer
	var base string
	steps, held, queued := 0, false, false
	// signal is called by the loop between steps, on the goroutine that
	// writes to errb: reading errb here is safe.
	signal := func() syscall.Signal {
		if base == "" {
			m := apiAddr.FindStringSubmatch(errb.String())
			require.NotNil(t, m, "stderr: %s", errb.String())
			base = m[1]
		}
		if steps++; steps > 30 {
			return 0
		}
		var space struct{ QuotaMaxBytes, QuotaReservedBytes, QuotaUsedBytes uint64 }
		get(t, "GET", base+"/space", "", 200, &space)
		assert.Equal(t, uint64(16<<20), space.QuotaMaxBytes)
		var as []availabilityJSON
		get(t, "GET", base+"/sales/availability", "", 200, &as)
		require.Len(t, as, 2)
		for _, a := range as {
			var rs []reservationJSON
			get(t, "GET", base+"/sales/availability/"+a.ID+"/reservations", "", 200, &rs)
			var inRes uint64
			for _, r := range rs {
				inRes += r.Size + r.Used
			}
			assert.Equal(t, a.TotalSize-a.FreeSize, inRes, "availability %s: held = what its reservations hold", a.ID)
			held = held || inRes > 0
		}
		var q struct{ Stats struct{ Pushed uint64 } }
		get(t, "GET", base+"/sales/queue", "", 200, &q)
		queued = queued || q.Stats.Pushed > 0
		return 0
	}
	code := run([]string{"-requests", "40", "-capacity", "16MiB", "-progress", "none", "-http", "127.0.0.1:0"},
		env{stdout: &out, stderr: &errb, wall: time.Now, signal: signal})
	require.Equal(t, 0, code, errb.String())
	assert.Equal(t, "ok", lastLine(t, out.String())[6])
	assert.Greater(t, steps, 30)
	assert.True(t, held, "some step saw bytes held by reservations")
	assert.True(t, queued, "some step saw slots pushed to the queue")
	_, err := http.Get(base + "/space")
	assert.Error(t, err, "the server is closed once the run is over")
}

// -serve's part: once the run is over, the state it left is served; a change
// made through the API is there after a restart.
func TestHTTP_ServesTheStateTheRunLeft(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := runSim(t, []string{"-requests", "30", "-capacity", "16MiB", "-progress", "none", "-dir", dir}, nil)
	require.Equal(t, 0, code, stderr)

	a, err := listenAPI("127.0.0.1:0", io.Discard)
	require.NoError(t, err)
	defer func() { assert.NoError(t, a.close()) }()
	base := "http://" + a.ln.Addr().String() + apiPrefix
	var e struct{ Error string }
	get(t, "GET", base+"/space", "", 503, &e)
	assert.Contains(t, e.Error, "not running")

	serve := func() (stop func()) {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- a.serveDir(ctx, dir, io.Discard) }()
		require.Eventually(t, func() bool {
			resp, err := http.Get(base + "/space")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		}, 10*time.Second, 10*time.Millisecond)
		return func() { cancel(); require.NoError(t, <-done) }
	}

	stop := serve()
	var space struct{ QuotaMaxBytes, QuotaAvailableBytes uint64 }
	get(t, "GET", base+"/space", "", 200, &space)
	assert.Equal(t, uint64(16<<20), space.QuotaMaxBytes)
	assert.Zero(t, space.QuotaAvailableBytes, "the run offered all of its capacity")
	var as []availabilityJSON
	get(t, "GET", base+"/sales/availability", "", 200, &as)
	require.Len(t, as, 2)
	assert.Equal(t, uint64(8<<20), as[0].TotalSize)
	get(t, "GET", base+"/sales/queue", "", 404, &e) // no queue once the host is gone

	get(t, "POST", base+"/sales/availability", `{"totalSize": 1048576, "duration": 3600}`, 422, &e)
	assert.Contains(t, e.Error, "quota")
	get(t, "PATCH", base+"/sales/availability/"+as[0].ID, `{"totalSize": 7340032}`, 200, nil)
	var added struct{ ID string }
	get(t, "POST", base+"/sales/availability", `{"totalSize": 1048576, "duration": 3600}`, 201, &added)
	stop()
	get(t, "GET", base+"/space", "", 503, &e)

	stop = serve()
	defer stop()
	get(t, "GET", base+"/sales/availability", "", 200, &as)
	require.Len(t, as, 3)
	assert.Equal(t, uint64(7<<20), as[0].TotalSize)
	assert.Equal(t, added.ID, as[2].ID)
	get(t, "DELETE", base+"/sales/availability/"+added.ID, "", 204, nil)
	get(t, "GET", base+"/space", "", 200, &space)
	assert.Equal(t, uint64(1<<20), space.QuotaAvailableBytes)
}

func TestHTTP_ServeNeedsHTTPAndDir(t *testing.T) {
	for _, args := range [][]string{
		{"-serve", "-dir", t.TempDir()},
		{"-serve", "-http", "127.0.0.1:0"},
	} {
		code, _, stderr := runSim(t, args, nil)
		assert.Equal(t, 2, code, "%v", args)
		assert.Contains(t, stderr, "-serve", "%v", args)
	}
}

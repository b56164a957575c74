package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var summaryLine = regexp.MustCompile(`^summary: requests=(\d+) filled=(\d+) ignored=(\d+) errored=(\d+) reservations_left=(\d+) invariant=(ok|FAILED)$`)

// lastLine returns the last line of out and checks its shape.
func lastLine(t *testing.T, out string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	m := summaryLine.FindStringSubmatch(lines[len(lines)-1])
	require.NotNil(t, m, "last line: %q", lines[len(lines)-1])
	return m
}

func TestRun_PrintsProgressThenSummary(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"-requests", "60", "-capacity", "16MiB", "-progress", "plain"}, &stdout, &stderr)
	require.Equal(t, 0, code, "stderr: %s", stderr.String())
	assert.Empty(t, stderr.String(), "no logs without -v")

	out := stdout.String()
	m := lastLine(t, out)
	assert.Equal(t, "60", m[1], "requests")
	assert.NotEqual(t, "0", m[2], "filled")
	assert.Equal(t, "0", m[5], "reservations left")
	assert.Equal(t, "ok", m[6])
	assert.Contains(t, out, "sim +0d02h", "a plain progress line every two simulated hours")
	assert.Contains(t, out, "OUTCOME")
	assert.Contains(t, out, "finished")
	assert.NotContains(t, out, "\r", "no redrawn line when stdout is not a terminal")
}

func TestRun_SameSeedSameRun(t *testing.T) {
	outcome := func(seed string) string {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 0, run(context.Background(), []string{"-seed", seed, "-requests", "40", "-progress", "none"}, &stdout, &stderr))
		return lastLine(t, stdout.String())[0]
	}
	assert.Equal(t, outcome("5"), outcome("5"))
}

func TestRun_ResumesFromItsDirectory(t *testing.T) {
	dir := t.TempDir()
	args := []string{"-dir", dir, "-requests", "60", "-capacity", "16MiB", "-progress", "none"}

	var first, stderr bytes.Buffer
	require.Equal(t, 0, run(context.Background(), append(args, "-for", "3h"), &first, &stderr), stderr.String())
	assert.Contains(t, first.String(), "run again with the same -dir to resume")
	m := lastLine(t, first.String())
	assert.NotEqual(t, "0", m[5], "sales were running when the first run stopped")
	assert.FileExists(t, filepath.Join(dir, marketFile))

	var second bytes.Buffer
	require.Equal(t, 0, run(context.Background(), args, &second, &stderr), stderr.String())
	m = lastLine(t, second.String())
	assert.Equal(t, "0", m[5], "nothing left once the market is done")
	assert.Equal(t, "ok", m[6])
	assert.Regexp(t, `total +\d+ +\d+ reached filled, [1-9]\d* resumed after a restart`, second.String())
}

func TestRun_HelpExitsZero(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, run(context.Background(), []string{"-h"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "-capacity")
}

func TestRun_RejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-capacity", "lots"},
		{"-progress", "fancy"},
		{"-min-price", "-1"},
		{"stray"},
		{"-workers", "0"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), args, &stdout, &stderr)
		assert.NotZero(t, code, "%q", args)
		assert.NotEmpty(t, stderr.String(), "%q says why", args)
	}
}

func TestWriteSummary_FailedInvariantIsTheLastLine(t *testing.T) {
	var out bytes.Buffer
	writeSummary(&out, report{
		host:         HostStats{Requests: 3, Filled: 2, Ignored: 1},
		reservations: 1,
		err:          errors.New("reserved bytes do not add up"),
	})
	m := lastLine(t, out.String())
	assert.Equal(t, "summary: requests=3 filled=2 ignored=1 errored=0 reservations_left=1 invariant=FAILED", m[0])
	assert.Contains(t, out.String(), "reserved bytes do not add up")
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]uint64{
		"4096": 4096, "64KiB": 64 << 10, "64K": 64 << 10, "32MiB": 32 << 20, "1GiB": 1 << 30, "2TiB": 2 << 40, "7B": 7,
	} {
		got, err := parseBytes(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, got, in)
		}
	}
	for _, in := range []string{"", "KiB", "1.5MiB", "-1", "20000000TiB", "12XB"} {
		_, err := parseBytes(in)
		assert.Error(t, err, in)
	}
	for _, n := range []uint64{0, 1000, 16 << 10, 32 << 20, 3 << 30, 1<<40 + 1} {
		b := byteSize(n)
		back, err := parseBytes(b.String())
		require.NoError(t, err, b.String())
		assert.Equal(t, n, back, "String and Set agree")
	}
}

func TestResolveProgress(t *testing.T) {
	assert.Equal(t, ProgressPlain, resolveProgress(ProgressAuto, &bytes.Buffer{}))
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	require.NoError(t, err)
	defer f.Close()
	assert.Equal(t, ProgressPlain, resolveProgress(ProgressAuto, f), "a regular file is not a terminal")
	assert.Equal(t, ProgressLine, resolveProgress(ProgressLine, f))
}

func TestProgress_LineModeRedrawsInPlace(t *testing.T) {
	ctx := context.Background()
	sim := testSim(3, 5)
	market, clock := newTestMarket(t, sim)
	h, err := OpenHost(ctx, testHostConfig(t), market, market)
	require.NoError(t, err)
	defer h.Close()
	var out bytes.Buffer
	p := newProgress(&out, ProgressLine, sim.Start, 3600)
	p.refresh = 0
	p.update(clock.Now(), h)
	p.update(clock.Now(), h)
	p.done(clock.Now(), h)
	s := out.String()
	assert.Equal(t, 3, strings.Count(s, "\r"))
	assert.Equal(t, 1, strings.Count(s, "\n"), "one newline, at the end")
	assert.Contains(t, s, "queue")
}

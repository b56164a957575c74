package main

import (
	"bytes"
	"io"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var summaryLine = regexp.MustCompile(`^summary: this run: requests=(\d+) filled=(\d+) ignored=(\d+) errored=(\d+) reservations_left=(\d+) invariant=(ok|FAILED)$`)

// runSim runs the program as main does; stop, if set, is asked for a
// signal at every step.
func runSim(t *testing.T, args []string, stop func() syscall.Signal) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	if stop == nil {
		stop = func() syscall.Signal { return 0 }
	}
	code = run(args, env{stdout: &out, stderr: &errb, wall: time.Now, signal: stop})
	return code, out.String(), errb.String()
}

// lastLine returns the fields of the summary line, the last of out.
func lastLine(t *testing.T, out string) []string {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	m := summaryLine.FindStringSubmatch(lines[len(lines)-1])
	require.NotNil(t, m, "last line: %q", lines[len(lines)-1])
	return m
}

func TestRun_PrintsProgressThenSummary(t *testing.T) {
	code, out, stderr := runSim(t, []string{"-requests", "60", "-capacity", "16MiB", "-progress", "plain"}, nil)
	require.Equal(t, 0, code, stderr)
	assert.Empty(t, stderr, "no logs without -v")
	m := lastLine(t, out)
	assert.Equal(t, "60", m[1])
	assert.NotEqual(t, "0", m[2], "filled")
	assert.Equal(t, "0", m[5], "reservations left")
	assert.Equal(t, "ok", m[6])
	assert.Contains(t, out, "sim +0d02h", "a plain progress line every two simulated hours")
	assert.Contains(t, out, "OUTCOME (this run)")
	assert.Contains(t, out, "MARKET (cumulative)")
	assert.Regexp(t, `availability 1 +8\.0 MiB total, 8\.0 MiB free, 0 B held`, out)
	assert.NotContains(t, out, "\r")
	assert.NotContains(t, out, "-dir to resume", "no resume hint without -dir")
}

func TestRun_SameSeedSameRun(t *testing.T) {
	summary := func(seed string) string {
		code, out, stderr := runSim(t, []string{"-seed", seed, "-requests", "40", "-progress", "none"}, nil)
		require.Equal(t, 0, code, stderr)
		return out[strings.Index(out, "OUTCOME"):strings.Index(out, "simulated ")]
	}
	assert.Equal(t, summary("5"), summary("5"))
}

// TestRun_SignalSavesAndResumesToTheSameTotals interrupts a run, resumes it
// and compares the market's cumulative totals with an uninterrupted run.
func TestRun_SignalSavesAndResumesToTheSameTotals(t *testing.T) {
	args := []string{"-requests", "60", "-capacity", "16MiB", "-progress", "none"}
	code, whole, _ := runSim(t, args, nil)
	require.Equal(t, 0, code)
	market := func(out string) string {
		return out[strings.Index(out, "MARKET"):strings.Index(out, "HOST")]
	}
	for sig, want := range map[syscall.Signal]int{syscall.SIGINT: 130, syscall.SIGTERM: 143} {
		t.Run(sig.String(), func(t *testing.T) {
			dir := t.TempDir()
			steps := 0
			code, first, stderr := runSim(t, append(args, "-dir", dir), func() syscall.Signal {
				if steps++; steps > 300 {
					return sig
				}
				return 0
			})
			require.Equal(t, want, code, stderr)
			assert.Contains(t, first, "stopped         by "+sig.String()+"; run again with the same -dir to resume")
			assert.Equal(t, "ok", lastLine(t, first)[6])

			code, second, stderr := runSim(t, append(args, "-dir", dir, "-seed", "9"), nil)
			require.Equal(t, 0, code, stderr)
			assert.Contains(t, stderr, "-seed 9 ignored")
			m := lastLine(t, second)
			assert.Equal(t, "0", m[5])
			assert.Equal(t, "ok", m[6])
			assert.NotContains(t, second, "from sim +0d00h00m", "simulated time goes on")
			assert.Equal(t, market(whole), market(second), "the same cumulative market totals")
		})
	}
}

func TestRun_HelpSaysWhatItDoes(t *testing.T) {
	code, _, stderr := runSim(t, []string{"-h"}, nil)
	assert.Equal(t, 0, code)
	assert.True(t, strings.HasPrefix(stderr, "storagenode runs a storage host"), stderr)
	assert.Contains(t, stderr, "-capacity")
}

func TestRun_RejectsBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"-capacity", "lots"}, "-capacity"},
		{[]string{"-capacity", "1KiB"}, "-capacity 1KiB: want 1MiB to 1TiB"},
		{[]string{"-progress", "fancy"}, "-progress fancy: want auto, line, plain or none"},
		{[]string{"-min-price", "-1"}, `invalid value "-1" for flag -min-price: bad amount "-1": want a whole number of tokens, 0 or more`},
		{[]string{"-max-collateral", "1.5"}, "want a whole number of tokens"},
		{[]string{"-capacity", "1.5B"}, "not a whole number of bytes"},
		{[]string{"-capacity", "64XB"}, `unknown unit "XB"`},
		{[]string{"stray"}, "unexpected arguments"},
		{[]string{"-workers", "0"}, "-workers 0: want 1 to -queue (128)"},
		{[]string{"-workers", "9", "-queue", "8"}, "-workers 9: want 1 to -queue (8)"},
		{[]string{"-queue", "70000"}, "-queue 70000: want 1 to 65535"},
		{[]string{"-requests", "-5"}, "-requests -5: want 1 to 1000000"},
		{[]string{"-availabilities", "0"}, "-availabilities 0: want 1 to 64"},
		{[]string{"-batch", "0"}, "-batch 0: want 1 to 64MiB"},
		{[]string{"-max-duration", "-1h"}, "-max-duration -1h0m0s: want a positive duration"},
		{[]string{"-every", "-1h"}, "-every -1h0m0s: want a positive duration"},
		{[]string{"-for", "-1h"}, "-for -1h0m0s: want a positive duration"},
		{[]string{"-for", "0s"}, "-for 0s: want a positive duration"},
		{[]string{"-market-timeout", "0s"}, "-market-timeout 0s: want a positive duration"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(c.args, env{stdout: &stdout, stderr: &stderr})
		assert.Equal(t, 2, code, "%q", c.args)
		assert.Contains(t, stderr.String(), c.says, "%q", c.args)
		assert.Empty(t, stdout.String())
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]uint64{
		"4096": 4096, "64KiB": 64 << 10, "64K": 64 << 10, "32MiB": 32 << 20, "1GiB": 1 << 30, "2TiB": 2 << 40, "7B": 7,
		"1.5GiB": 3 << 29, "1.5MiB": 3 << 19, "0.5KiB": 512, "64MB": 64e6, "64mb": 64e6, "64mib": 64 << 20,
		"64 MiB": 64 << 20, " 4096 ": 4096, "1kb": 1000, "2.5GB": 2.5e9, "1TB": 1e12, "64m": 64 << 20,
		"18446744073709551615": 1<<64 - 1,
	} {
		got, err := parseBytes(in)
		if assert.NoError(t, err, in) {
			assert.Equal(t, want, got, in)
		}
	}
	for in, says := range map[string]string{
		"": "no number", "KiB": "no number", ".": "no number", "1.2.3MiB": "no number", "-1": "no number",
		"20000000TiB": "more than 2^64-1 bytes", "18446744073709551616": "more than 2^64-1 bytes",
		"12XB": `unknown unit "XB"`, "1.3B": "not a whole number of bytes", "0.1KiB": "not a whole number of bytes",
		"1e3": `unknown unit "e3"`,
	} {
		_, err := parseBytes(in)
		assert.ErrorContains(t, err, says, in)
	}
}

// Every flag that takes bytes reads them with parseBytes.
func TestFlags_BytesAcceptEveryUnit(t *testing.T) {
	for _, in := range []string{"1.5MiB", "64MB", "64mb", "4096"} {
		o, err := parseFlags([]string{"-capacity", "1TiB", "-batch", in}, io.Discard)
		require.NoError(t, err, in)
		want, err := parseBytes(in)
		require.NoError(t, err)
		assert.Equal(t, want, o.host.Batch, in)
	}
	for _, in := range []string{"1.5GiB", "64MB", "64mb", "1048576"} {
		o, err := parseFlags([]string{"-capacity", in}, io.Discard)
		require.NoError(t, err, in)
		want, _ := parseBytes(in)
		assert.Equal(t, want, o.host.Capacity, in)
	}
}

// The example binary is an ordinary program: no test machinery in it.
func TestBinary_ImportsNoTesting(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	require.NoError(t, err, "%s", out)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/stowage/stowage/slotqueue", "the list is the binary's")
	assert.NotContains(t, deps, "testing")
	assert.NotContains(t, deps, "testing/synctest")
}

var reservationsLine = regexp.MustCompile(`reservations +(\d+) left; at start (\d+) resumed, (\d+) requeued \(download goes on\), (\d+) deleted`)

// A run stopped with reservations left, resumed with the same -dir, finds
// each of them and says what became of it: resumed, requeued or deleted.
func TestRun_ResumeAccountsForEveryReservation(t *testing.T) {
	dir := t.TempDir()
	args := []string{"-requests", "200", "-progress", "none", "-dir", dir}
	code, first, stderr := runSim(t, append(args, "-for", "5h5m"), nil) // three downloads under way
	require.Equal(t, 0, code, stderr)
	m := reservationsLine.FindStringSubmatch(first)
	require.NotNil(t, m, first)
	left := atoi(t, m[1])
	require.Positive(t, left, "the first run stops with reservations left")

	code, second, stderr := runSim(t, args, nil)
	require.Equal(t, 0, code, stderr)
	m = reservationsLine.FindStringSubmatch(second)
	require.NotNil(t, m, second)
	assert.Equal(t, left, atoi(t, m[2])+atoi(t, m[3])+atoi(t, m[4]), "resumed + requeued + deleted: %s", m[0])
	assert.Positive(t, atoi(t, m[3]), "downloads cut short are requeued")
	assert.Equal(t, "0", lastLine(t, second)[5], "none left at the end")
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	require.NoError(t, err)
	return n
}

package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRun_TellsTheStory(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"-dir", t.TempDir()}, &out))
	text := out.String()
	assert.Contains(t, text, "reservation")
	assert.Contains(t, text, "the availability has 768 KiB of 1 MiB free")
	assert.Contains(t, text, "used 192 KiB, reserved 832 KiB")
	assert.Contains(t, text, "Its blocks are deleted (0 left) and all 256 KiB came back: the availability has 1 MiB of 1 MiB free.")
	assert.Contains(t, text, "quota: max 4 MiB, used 0 B, reserved 1 MiB, available 3 MiB\nCheck")
	lines := strings.Split(strings.TrimSpace(text), "\n")
	assert.Equal(t, "Check: every invariant holds (reserved, used and blocks add up).", lines[len(lines)-1])
}

func TestRun_HelpExitsZero(t *testing.T) {
	var out, stderr bytes.Buffer
	err := run(t.Context(), []string{"-h"}, &out)
	assert.Equal(t, 0, exitCode(err, &stderr))
	assert.Contains(t, out.String(), "Usage: quickstart")
	assert.Contains(t, out.String(), "-dir")
	assert.Empty(t, stderr.String())
}

func TestRun_RefusesExtraArguments(t *testing.T) {
	for _, args := range [][]string{{"data"}, {"-dir", t.TempDir(), "extra"}, {"-nope"}} {
		var out, stderr bytes.Buffer
		err := run(t.Context(), args, &out)
		assert.Equal(t, 2, exitCode(err, &stderr), "%q", args)
		assert.NotContains(t, out.String(), "Opened a repo", "%q: nothing runs", args)
		if len(args) > 1 {
			assert.Contains(t, stderr.String(), `unexpected arguments ["extra"]`)
		}
	}
}

func TestExitCode_FailureIsOne(t *testing.T) {
	var stderr bytes.Buffer
	assert.Equal(t, 1, exitCode(errors.New("disk full"), &stderr))
	assert.Equal(t, "quickstart: disk full\n", stderr.String())
	assert.Equal(t, 0, exitCode(nil, &stderr))
}

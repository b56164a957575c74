package main

import (
	"bytes"
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

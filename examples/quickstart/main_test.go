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
	assert.Contains(t, text, "the availability has 768 KiB left")
	assert.Contains(t, text, "The 64 KiB never written went back to the availability, which now has 832 KiB.")
	lines := strings.Split(strings.TrimSpace(text), "\n")
	assert.Equal(t, "Check: reserved bytes equal availabilities plus reservations.", lines[len(lines)-1])
}

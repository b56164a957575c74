package sim

import (
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestClock_StepJumpsToTheNextCallback(t *testing.T) {
	c := NewClock(100)
	var got []string
	c.At(130, func() { got = append(got, "130") })
	c.At(110, func() { got = append(got, "110a") })
	c.At(110, func() { got = append(got, "110b") })

	next, ok := c.Next()
	require.True(t, ok)
	assert.Equal(t, uint64(110), next)
	assert.Equal(t, uint64(100), c.Unix(), "Next does not move the clock")

	require.True(t, c.Step())
	assert.Equal(t, uint64(110), c.Unix())
	assert.Equal(t, []string{"110a", "110b"}, got, "same time: registration order")

	require.True(t, c.Step())
	assert.Equal(t, uint64(130), c.Unix())
	assert.False(t, c.Step(), "nothing left")
	assert.Equal(t, uint64(130), c.Unix())
}

func TestClock_CallbacksMayRegisterForTheSameTime(t *testing.T) {
	c := NewClock(0)
	var got []int
	c.At(5, func() {
		got = append(got, 1)
		c.At(5, func() { got = append(got, 2) }) // now: same step
		c.At(1, func() { got = append(got, 3) }) // past: same step, clock stays
		c.At(9, func() { got = append(got, 4) }) // later step
	})
	require.True(t, c.Step())
	assert.Equal(t, []int{1, 3, 2}, got, "earliest time first")
	assert.Equal(t, uint64(5), c.Unix())
	require.True(t, c.Step())
	assert.Equal(t, []int{1, 3, 2, 4}, got)
}

func TestClock_StopCancels(t *testing.T) {
	c := NewClock(0)
	ran := false
	stop := c.At(10, func() { ran = true })
	keep := c.At(20, func() {})
	assert.True(t, stop())
	assert.False(t, stop(), "second stop")
	assert.Equal(t, 1, c.Pending())
	require.True(t, c.Step())
	assert.False(t, ran)
	assert.Equal(t, uint64(20), c.Unix())
	assert.False(t, keep(), "already ran")
}

// Step returns only once the goroutines its callbacks started with Go have
// returned.
func TestClock_StepWaitsForGo(t *testing.T) {
	c := NewClock(0)
	var done atomic.Int32
	for range 3 {
		c.At(5, func() {
			c.Go(func() { done.Add(1) })
		})
	}
	require.True(t, c.Step())
	assert.Equal(t, int32(3), done.Load())
}

package sim_test

import (
	"fmt"

	"github.com/stowage/stowage/examples/storagenode/sim"
)

// Simulated time moves only when the driver steps it, straight to the next
// timer, so a day passes in no time.
func ExampleClock() {
	c := sim.NewClock(1000)
	c.At(1060, func() { fmt.Println("a minute later:", c.Unix()) })
	c.At(4600, func() { fmt.Println("an hour later:", c.Unix()) })
	for c.Step() {
	}
	fmt.Println("no timer left:", c.Pending())
	// Output:
	// a minute later: 1060
	// an hour later: 4600
	// no timer left: 0
}

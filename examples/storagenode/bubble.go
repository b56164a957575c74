package main

import (
	"os"
	"testing"
	"testing/synctest"
	"time"
)

// inBubble runs f in a testing/synctest bubble, then atExit (if set), and
// exits with f's status.
//
// The simulation steps its clock whenever the host has done all it can,
// which is when every goroutine of the host is blocked: synctest.Wait
// reports exactly that, with no counters inside the host. Bubbles exist
// only inside tests, so the program runs itself as the one test of a
// testing.Main. Inside the bubble the time package runs on a fake clock;
// the host never reads it (its clock is the simulated one), and wallClock
// gives the real time for the report.
func inBubble(f func() int, atExit func()) {
	os.Args = os.Args[:1] // the flags are f's, not the testing package's
	testing.Main(func(string, string) (bool, error) { return true, nil },
		[]testing.InternalTest{{Name: "storagenode", F: func(t *testing.T) {
			code := 0
			synctest.Test(t, func(*testing.T) { code = f() })
			if atExit != nil {
				atExit()
			}
			os.Exit(code)
		}}}, nil, nil)
}

// wallClock returns a function that reports the real time, also inside a
// bubble: a goroutine outside it reads the clock, over channels made
// outside it. Not for concurrent use.
func wallClock() func() time.Time {
	req, resp := make(chan struct{}), make(chan time.Time)
	go func() {
		for range req {
			resp <- time.Now()
		}
	}()
	return func() time.Time {
		req <- struct{}{}
		return <-resp
	}
}

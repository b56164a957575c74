package main

import (
	"fmt"
	"strings"
)

// debugState describes what keeps the host from being idle, for the
// message of a test that timed out waiting for it.
func (h *Host) debugState() string {
	var b strings.Builder
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(&b, "busy sales %d, workers held %d, queue %d, active workers %d\n",
		h.busy, h.processing, h.queue.Len(), h.queue.ActiveWorkers())
	for _, s := range h.sales {
		if s.busy {
			s.mu.Lock()
			state := s.state
			s.mu.Unlock()
			fmt.Fprintf(&b, "  %s: state %v (machine: %v), runs %d, transition %v, events %d, ending %v\n",
				s.ref, state, s.m.State(), s.running, s.inflight, s.pending, s.ending)
		}
	}
	return b.String()
}

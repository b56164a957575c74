package market_test

import (
	"fmt"

	"github.com/stowage/stowage/examples/storagenode/market"
)

// Events and request states print as the host's log lines show them.
func ExampleEventKind() {
	fmt.Println(market.EventRequested, market.EventSlotFreed, market.RequestNew, market.RequestFinished)
	// Output:
	// requested slot-freed new finished
}

package market_test

import (
	"fmt"

	"github.com/stowage/stowage"
	"github.com/stowage/stowage/examples/storagenode/market"
)

// A slot is named by its request and index; events and states print as
// the host's log lines show them.
func ExampleSlotRef() {
	ref := market.SlotRef{Request: stowage.RequestID{0xca, 0xfe}, Slot: 3}
	fmt.Println(ref.String()[:8], ref.Slot)
	fmt.Println(market.EventRequested, market.RequestNew)
	// Output:
	// 0xcafe00 3
	// requested new
}

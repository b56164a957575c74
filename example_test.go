package stowage_test

import (
	"fmt"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage"
)

func ExampleStorageAsk_PricePerSlot() {
	ask := stowage.StorageAsk{
		Slots:    4,
		SlotSize: 1 << 20,
		Duration: 3600,
		Reward:   *uint256.NewInt(5),
	}
	price := ask.PricePerSlot()
	fmt.Println(price.Dec())
	// Output: 18000
}

func ExampleParseRequestID() {
	id, err := stowage.ParseRequestID("0x00000000000000000000000000000000000000000000000000000000000000ff")
	if err != nil {
		panic(err)
	}
	fmt.Println(id[31], id)
	// Output: 255 0x00000000000000000000000000000000000000000000000000000000000000ff
}

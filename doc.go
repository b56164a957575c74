// Package stowage is an SDK for the selling side of a decentralised storage
// marketplace. A storage host embeds it to decide which storage requests to
// serve and to account, byte by byte, for the disk space it has promised.
//
// # The domain
//
// A client posts a storage request: a dataset cut into [StorageAsk.Slots]
// equal slots of [StorageAsk.SlotSize] bytes, stored for
// [StorageAsk.Duration] seconds, paying [StorageAsk.Reward] per second per
// slot and asking each host to lock [StorageAsk.Collateral].
//
// The host operator declares Availabilities ("I offer this many bytes, for
// requests of at most this long, at a price of at least this much"). Creating
// one reserves its bytes in the repo quota. Serving a slot carves a
// Reservation of SlotSize bytes out of a matching availability; bytes are
// released from the reservation as the slot's data is written to disk, and
// whatever it still holds returns to the availability when the sale ends.
//
// # Packages
//
//   - repo: the byte quota (max / used / reserved) and block storage over any
//     go-datastore, with embedded LevelDB as the default.
//   - reservations: Availabilities and Reservations, changed atomically with
//     the quota.
//   - slotqueue: a bounded priority queue of slots, most profitable first,
//     processed by a pool of workers.
//   - statemachine: a generic asynchronous state machine that drives each
//     sale.
//
// The SDK leaves the wiring to the application: examples/quickstart shows the
// accounting in a few dozen lines and examples/storagenode a complete
// simulated storage host.
//
// This package holds the vocabulary the others share: [RequestID] and
// [StorageAsk].
package stowage

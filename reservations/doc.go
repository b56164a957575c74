// Package reservations accounts for the bytes a storage host has promised:
// Availabilities (what the operator offers) and Reservations (what one slot
// of one request holds), kept in step with the repo's quota and its blocks.
//
// # The life of a slot's bytes
//
// An Availability says "I offer TotalSize bytes, for slots of at most
// Duration seconds, paying at least MinPrice per slot, locking at most
// MaxCollateral" (and optionally: until a date, within a collateral
// budget). AddAvailability reserves its bytes in the repo quota, so nothing
// else can take that disk. Its Size is the part no reservation holds.
//
//	a, err := store.AddAvailability(ctx, reservations.Availability{
//		TotalSize: 100 << 30, Duration: 30 * 24 * 3600, MinPrice: minPrice, MaxCollateral: maxCollateral,
//	})
//
// When the host decides to serve a slot (a stowage.Slot, the same value the
// slot queue hands its workers), ReserveSlot finds a fitting availability
// and carves a Reservation of Ask.SlotSize bytes out of it, in one atomic
// step: the availability's Size shrinks, the reservation's Size holds the
// bytes, and its ValidUntil is slot.Ends() (zero, never expiring, for a
// slot without Expiry). Many reservations draw on one availability at
// once. CreateReservation does the same on an availability the host
// chooses, checking every term the same way.
//
//	res, err := store.ReserveSlot(ctx, slot)
//	var none *reservations.NoAvailabilityError
//	if errors.As(err, &none) {
//		// none.Term says what ruled the slot out: size, duration, price, ...
//	}
//
// While the slot's data downloads, Store.PutBlock writes each block and
// moves its bytes from the reservation's Size to its Used (and from the
// repo's Reserved to its Used), in one atomic change:
//
//	err = store.PutBlock(ctx, res.ID, blockKey, data)
//
// When the sale ends, however it ends, DeleteReservation deletes the blocks
// the reservation wrote and gives Size + Used back to the availability: the
// offer is whole again. ReclaimExpired does the same for every reservation
// whose contract is over, for the sales a host never got to finish; run it
// periodically.
//
//	err = store.DeleteReservation(ctx, res.ID)
//
// Hosts that write blocks themselves use the lower-level Release (bytes
// leave the reservation and the offer for good) and repo.Repo.PutBlock.
//
// # Guarantees
//
// Every change re-reads the records it changes and is committed with the
// quota counters as one atomic batch (see package repo: its grouped
// commits, fail-stop after a failed write, and what a crash can and cannot
// do). For a repo whose bytes and records only this package changes:
//
//  1. repo.Reserved == Σ availability.Size + Σ reservation.Size;
//  2. for every availability, TotalSize == Size + Σ its reservations' (Size + Used);
//  3. repo.Used == Σ stored blocks, and Σ reservation.Used <= repo.Used;
//  4. with a collateral budget, FreeCollateral + Σ reservation.Collateral == TotalCollateral;
//  5. the counters on disk equal those in memory;
//
// after every operation, every failed operation, and every crash. Verify
// checks them all and reports each difference. A reservation with many
// blocks is deleted in atomic steps of 512 blocks: a crash between two
// leaves a smaller reservation, every invariant holding, and a repeated
// DeleteReservation (or ReclaimExpired) finishes it.
//
// # Storage
//
// Records are JSON in the repo's metadata datastore, under /meta/sales:
// availabilities, their reservations, and indexes beside them so that
// listing availabilities, finding a reservation by ID or by slot and
// finding the blocks of a reservation each read only what they need. The
// layout is no part of the API (read and change the records through the
// Store); IDs are UUIDv7, so listings come in creation order, and token
// amounts are decimal strings. A record that does not decode is reported
// with ErrCorrupt, never acted upon. The layout's version is recorded with
// the first write, so that a later release can move the records; a
// datastore written by a later release is refused with ErrNewerLayout.
//
// # Units
//
// Sizes are bytes (uint64), durations seconds (uint64, as in
// stowage.StorageAsk), points in time time.Time (zero: none). Token
// amounts are uint256.Int in the marketplace's smallest unit: a slot's
// Ask.Reward is per second, its Ask.Collateral and an availability's
// MinPrice and MaxCollateral per slot (MinPrice is compared with
// Ask.PricePerSlot(), the reward over the slot's whole duration).
//
// # Caveats
//
//   - A Store is safe for concurrent use, and several Stores on one repo
//     share one state; two repos on one datastore are not supported.
//   - All changes of a repo are staged one at a time under one lock (their
//     commits are shared), possibly on another caller's goroutine: a
//     ModifyAvailability function must be quick and must not call the
//     Store.
//   - FindAvailability answers from memory and is a hint: use ReserveSlot,
//     which finds and reserves in one step, to serve a slot.
//   - Verify holds every change off while it reads everything.
package reservations

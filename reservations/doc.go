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
// do). Each is one repo.Repo.Update, and each listing one repo.Repo.View:
// this package uses the repo's public transaction, with a capability that
// lets it alone write under /meta/sales (a host's own records go beside
// them, through the same Update, atomically with the bytes). For a repo whose bytes and records only this package changes:
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
// A big delete shares the repo: each step is a change of its own, so other
// callers' changes are staged and written between two steps (a step holds
// the staging lock about as long as a change of 512 blocks takes to stage,
// a millisecond or two), and each step reads the block index from where
// the step before stopped, so a step costs the same at the end of a big
// reservation as at its start and the cost per block stays flat. (Reading
// from the start each time stepped over every delete of the steps before,
// which LevelDB keeps until compaction: 64,000 blocks cost seven times as
// much per block as 4,000.) Should a PutBlock add a block to the
// reservation meanwhile (the delete watches its block index for that), the
// last step reads the index once from the start, so that block is deleted
// too.
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
// Reservations that expire are indexed by ValidUntil too, in the same
// atomic change that writes or deletes them; one that never expires
// (ValidUntil zero) is not. A datastore written before that index existed
// (layout 2) gets it with the first call, in one atomic change.
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
// # Reads, checks and sweeps, and what they cost
//
// Every listing (Availabilities, Reservations, ReservationsOf) and
// ReservationForSlot reads one consistent state: a LevelDB snapshot on the
// embedded database, a read-only transaction in shared mode, or on other
// datastores a read under the staging lock (changes wait while it reads).
// A record a concurrent change deleted is simply not listed; ErrCorrupt
// means the datastore really holds an inconsistent state.
//
// Verify reads every record once (availabilities, reservations, the four
// indexes and each indexed block's size) and sorts the reservations by ID
// once: its time grows with the number of records and indexed blocks, its
// memory with the number of reservations (about 100 bytes each). On the
// embedded LevelDB it reads a snapshot, holding changes off only while
// those in flight become durable: changes go on while it reads. Elsewhere
// (a separate block store, another datastore) changes wait until it is
// done. BenchmarkVerifyScale measures it at 100,000 reservations.
//
// ReclaimExpired reads the expiry index from its start (the earliest
// ValidUntil) and stops at the first entry after now: its cost grows with
// the number of reservations that have expired, not with the number held
// (on the embedded LevelDB; a datastore without ordered prefix scans
// reads the whole index). Each expired reservation is then deleted as
// DeleteReservation does, in its own change.
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
//   - Verify holds every change off while it reads everything, except on
//     the embedded LevelDB with blocks in it (repo.Open), where it reads a
//     snapshot.
package reservations

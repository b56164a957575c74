// Package reservations accounts for the bytes a storage host has promised:
// Availabilities (what the operator offers) and Reservations (what one slot
// of one request holds).
//
// # Availabilities
//
// An Availability says "I offer Size bytes, for requests of at most Duration
// seconds, paying at least MinPrice per slot, locking at most
// MaxCollateral". CreateAvailability reserves its bytes in the repo quota,
// so nothing else can take that disk. UpdateAvailability changes the terms
// and grows or shrinks the bytes (reserving or releasing the difference);
// DeleteAvailability gives the bytes back, once no reservation draws on it.
//
// # Reservations
//
// When the host decides to serve a slot, FindAvailability picks a matching
// availability and CreateReservation carves SlotSize bytes out of it: the
// availability's Size shrinks by that much and a Reservation holds the bytes.
// Many reservations can draw on one availability at once, so a single large
// availability does not limit how many slots download in parallel.
//
// While the slot's data is downloaded, Release hands bytes back to the repo
// quota batch by batch, just before the blocks that use them are written
// (repo.PutBlock). When the sale ends, however it ends, DeleteReservation
// returns whatever the reservation still holds to its availability.
//
//	a, _ := store.CreateAvailability(ctx, 100<<30, 30*24*3600, minPrice, maxCollateral)
//	found, ok, _ := store.FindAvailability(ctx, slotSize, duration, pricePerSlot, collateral)
//	res, _ := store.CreateReservation(ctx, found.ID, slotSize, requestID, slotIndex)
//	for _, block := range blocks {
//		_ = store.Release(ctx, res.ID, res.AvailabilityID, uint64(len(block)))
//		_ = r.PutBlock(ctx, key, block)
//	}
//	_ = store.DeleteReservation(ctx, res.ID, res.AvailabilityID)
//
// # Guarantees
//
// For a repo whose Reserve and Release are called only by this package:
//
//	repo.Reserved == Σ availability.Size + Σ reservation.Size
//
// holds after every operation, after every failed operation and after a
// crash at any point, because every change that touches several records and
// the quota counter is one atomic repo.Commit, made under a lock per
// availability, and memory changes only once the write succeeded. Verify
// checks the invariant and reports any difference.
//
// # Storage
//
// Records are JSON in the repo's metadata datastore (see Prefix): an
// availability at /meta/sales/reservations/<availabilityID> and its
// reservations one level below it. IDs are UUIDv7, so key order is creation
// order; token amounts are decimal strings. A record that does not decode is
// reported with ErrCorrupt, never acted upon.
//
// A Store is safe for concurrent use.
package reservations

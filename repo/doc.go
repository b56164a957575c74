// Package repo is the host's byte quota and block store.
//
// # The quota
//
// A Repo keeps three counters: Max (configured), Used (bytes of stored
// blocks) and Reserved (bytes promised but not yet written).
// Available = Max - Used - Reserved. Reserve refuses what does not fit with
// ErrQuotaNotEnough; Release refuses to take more than is reserved with
// ErrReleaseExceedsReserved; HasAvailable(n) is true exactly when Reserve(n)
// would succeed.
//
// Used and Reserved live in the metadata datastore under UsedKey and
// ReservedKey as 8-byte big-endian numbers and are loaded by New. Every
// change is written before it is visible in memory, and a failed write leaves
// both exactly as they were.
//
// # Blocks
//
// PutBlock, GetBlock, HasBlock and DeleteBlock store the data itself. A new
// block adds its length to Used, an overwrite counts only the difference and
// a delete gives the bytes back. Blocks share the metadata datastore (under
// /blocks) unless WithBlockstore names another one.
//
// # Datastores
//
// Open puts the repo on the embedded LevelDB in a directory, fsyncing every
// write unless WithNoSync is given. New takes any datastore.Batching the
// application already has. Multi-record changes (Commit) are one batch, so
// the datastore's batches must be atomic, as LevelDB's are; WithTransactions
// switches to datastore transactions for stores that offer those instead.
//
// # Basics
//
//	r, err := repo.Open(ctx, dir, repo.WithQuotaMaxBytes(100<<30))
//	...
//	defer r.Close()
//	if err := r.Reserve(ctx, slotSize); errors.Is(err, repo.ErrQuotaNotEnough) {
//		// the disk is promised elsewhere
//	}
//
// Most applications do not call Reserve and Release directly: the
// reservations package does, together with its own records.
package repo

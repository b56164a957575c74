package reservations

import "github.com/ipfs/go-datastore"

// KV is a record for a test to write behind the Store's back.
type KV struct {
	Key   datastore.Key
	Value []byte
}

// IndexEntriesForTest returns the index entries of r beyond its record,
// byID and slot entries: its expiry index entry, if it expires.
func IndexEntriesForTest(r Reservation) []KV {
	if r.ValidUntil.IsZero() {
		return nil
	}
	return []KV{{expiryKey(&r), []byte(r.AvailabilityID.String())}}
}

// LayoutForTest is the current layout's version.
const LayoutForTest = layoutVersion

// SetVerifyHook makes f run whenever Verify starts reading (nil: nothing).
func SetVerifyHook(f func()) { verifyHook = f }

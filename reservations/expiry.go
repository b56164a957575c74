package reservations

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/ipfs/go-datastore"
)

// The expiry index: one entry per reservation whose ValidUntil is set,
//
//	/meta/sales/expiry/<when>/<reservationID>   "<availabilityID>"
//
// where <when> is ValidUntil as 24 hex digits (its Unix second offset by
// 2^63, then its nanosecond), so key order is time order. It is written
// and deleted in the same atomic change as the reservation; a reservation
// that never expires (ValidUntil zero) has no entry. ReclaimExpired reads
// it from the start and stops at the first entry after now.
var expiryPrefix = datastore.NewKey("/meta/sales/expiry")

// expiryLen is the length of <when>.
const expiryLen = 24

// encodeExpiry is t's <when>.
func encodeExpiry(t time.Time) string {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(t.Unix())^(1<<63))
	binary.BigEndian.PutUint32(b[8:], uint32(t.Nanosecond()))
	return hex.EncodeToString(b[:])
}

// expiryKey is r's entry in the expiry index.
func expiryKey(r *Reservation) datastore.Key {
	var id [37]byte
	id[0] = '/'
	encodeUUID(id[1:], r.ID)
	return datastore.RawKey(expiryPrefix.String() + "/" + encodeExpiry(r.ValidUntil) + string(id[:]))
}

// putExpiry indexes a new reservation by its ValidUntil, if it has one.
func (t txn) putExpiry(r *Reservation) error {
	if r.ValidUntil.IsZero() {
		return nil
	}
	return t.Put(expiryKey(r), []byte(r.AvailabilityID.String()))
}

// deleteExpiry drops a deleted reservation's entry, if it has one.
func (t txn) deleteExpiry(r *Reservation) error {
	if r.ValidUntil.IsZero() {
		return nil
	}
	return t.Delete(expiryKey(r))
}

// parseExpiryKey splits an expiry index key into <when> and the
// reservation's ID.
func parseExpiryKey(key string) (when string, id ReservationID, err error) {
	rest := key[len(expiryPrefix.String())+1:]
	if len(rest) != expiryLen+1+36 || rest[expiryLen] != '/' {
		return "", ReservationID{}, fmt.Errorf("%w: unexpected key %s", ErrCorrupt, key)
	}
	id, err = ParseReservationID(rest[expiryLen+1:])
	if err != nil {
		return "", ReservationID{}, fmt.Errorf("%w: %s: %w", ErrCorrupt, key, err)
	}
	return rest[:expiryLen], id, nil
}

// upgradeLayout2 brings a datastore of layout 2, which had no expiry index,
// to the current layout in the change at hand: it indexes every reservation
// that expires and records the current version. It reads every reservation,
// once.
func (t txn) upgradeLayout2(log *slog.Logger) error {
	n := 0
	err := t.Scan(recordsPrefix, false, func(key string, value []byte) error {
		if !isReservationKey(key) {
			return nil
		}
		r, err := decodeReservation(datastore.RawKey(key), value)
		if err != nil {
			return err
		}
		if !r.ValidUntil.IsZero() {
			n++
		}
		return t.putExpiry(&r)
	})
	if err != nil {
		return fmt.Errorf("reservations: index reservations by expiry (layout 2 to %d): %w", layoutVersion, err)
	}
	log.Info("reservations indexed by expiry", "reservations", n, "layout", layoutVersion)
	return t.Put(layoutKey, []byte(strconv.Itoa(layoutVersion)))
}

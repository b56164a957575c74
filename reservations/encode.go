package reservations

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage"
)

// The records are JSON, encoded here field by field rather than through
// encoding/json's reflection: every change encodes one or two of them under
// the staging lock. The output is what json.Marshal gives (the tests
// compare the two on random records), so records written by either read
// back the same.

// MarshalJSON encodes the record; amounts are decimal strings.
func (a Availability) MarshalJSON() ([]byte, error) { return appendAvailability(nil, &a) }

// MarshalJSON encodes the record; amounts are decimal strings.
func (r Reservation) MarshalJSON() ([]byte, error) { return appendReservation(nil, &r) }

func appendAvailability(b []byte, a *Availability) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendUUID(b, a.ID)
	b = append(b, `,"size":`...)
	b = strconv.AppendUint(b, a.Size, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendUint(b, a.Duration, 10)
	b = append(b, `,"minPrice":`...)
	b = appendAmount(b, &a.MinPrice)
	b = append(b, `,"maxCollateral":`...)
	b = appendAmount(b, &a.MaxCollateral)
	b = append(b, `,"totalSize":`...)
	b = strconv.AppendUint(b, a.TotalSize, 10)
	if a.Disabled {
		b = append(b, `,"disabled":true`...)
	}
	b, err := appendTime(b, `,"until":`, a.Until)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"totalCollateral":`...)
	b = appendAmount(b, &a.TotalCollateral)
	b = append(b, `,"freeCollateral":`...)
	b = appendAmount(b, &a.FreeCollateral)
	return append(b, '}'), nil
}

func appendReservation(b []byte, r *Reservation) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendUUID(b, r.ID)
	b = append(b, `,"availabilityId":`...)
	b = appendUUID(b, r.AvailabilityID)
	b = append(b, `,"size":`...)
	b = strconv.AppendUint(b, r.Size, 10)
	b = append(b, `,"requestId":`...)
	b = appendRequestID(b, r.RequestID)
	b = append(b, `,"slotIndex":`...)
	b = strconv.AppendUint(b, r.SlotIndex, 10)
	b = append(b, `,"slotSize":`...)
	b = strconv.AppendUint(b, r.SlotSize, 10)
	b = append(b, `,"used":`...)
	b = strconv.AppendUint(b, r.Used, 10)
	b = append(b, `,"collateral":`...)
	b = appendAmount(b, &r.Collateral)
	b, err := appendTime(b, `,"validUntil":`, r.ValidUntil)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendUUID appends a quoted UUID in its canonical form.
func appendUUID[ID ~[16]byte](b []byte, id ID) []byte {
	var s [38]byte
	s[0], s[37] = '"', '"'
	encodeUUID(s[1:37], id)
	return append(b, s[:]...)
}

// encodeUUID writes id's canonical 36-character form into s.
func encodeUUID[ID ~[16]byte](s []byte, id ID) {
	hex.Encode(s[0:8], id[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], id[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], id[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], id[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], id[10:16])
}

func appendRequestID(b []byte, id stowage.RequestID) []byte {
	var s [68]byte
	s[0], s[1], s[2], s[67] = '"', '0', 'x', '"'
	hex.Encode(s[3:67], id[:])
	return append(b, s[:]...)
}

// appendAmount appends a quoted decimal string, as uint256.Int's
// MarshalJSON does.
func appendAmount(b []byte, z *uint256.Int) []byte {
	b = append(b, '"')
	if z.IsUint64() {
		b = strconv.AppendUint(b, z.Uint64(), 10)
	} else {
		b = append(b, z.Dec()...)
	}
	return append(b, '"')
}

// appendTime appends name and t, unless t is zero (omitzero).
func appendTime(b []byte, name string, t time.Time) ([]byte, error) {
	if t.IsZero() {
		return b, nil
	}
	j, err := t.MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidTime, err)
	}
	return append(append(b, name...), j...), nil
}

package reservations

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/google/uuid"
	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage"
)

// Prefix is the datastore key under which every availability and
// reservation record lives:
//
//	/meta/sales/reservations/<availabilityID>                  Availability
//	/meta/sales/reservations/<availabilityID>/<reservationID>  Reservation
var Prefix = datastore.NewKey(prefixString)

// Availability is bytes the host offers to sell, and on what terms.
//
// Size is the free bytes left to reserve: it shrinks as reservations are
// carved out of it and grows back as they are deleted. The terms bound the
// requests it serves: at most Duration seconds, paying at least MinPrice per
// slot, asking at most MaxCollateral.
type Availability struct {
	ID            AvailabilityID `json:"id"`
	Size          uint64         `json:"size"`     // free bytes left to reserve
	Duration      uint64         `json:"duration"` // longest request served, seconds
	MinPrice      uint256.Int    `json:"minPrice"` // least a slot must pay over its duration
	MaxCollateral uint256.Int    `json:"maxCollateral"`
}

// Reservation is bytes carved out of an Availability for one slot of one
// request. Size shrinks as the slot's data is written (Store.Release).
type Reservation struct {
	ID             ReservationID     `json:"id"`
	AvailabilityID AvailabilityID    `json:"availabilityId"`
	Size           uint64            `json:"size"` // bytes still reserved, not yet written
	RequestID      stowage.RequestID `json:"requestId"`
	SlotIndex      uint64            `json:"slotIndex"`
}

// Key returns the datastore key of the availability's record.
func (a Availability) Key() datastore.Key { return availabilityKey(a.ID) }

// Key returns the datastore key of the reservation's record.
func (r Reservation) Key() datastore.Key { return reservationKey(r.AvailabilityID, r.ID) }

// prefixString is Prefix as a string, the start of every record key.
const prefixString = "/meta/sales/reservations"

func availabilityKey(id AvailabilityID) datastore.Key {
	var buf [len(prefixString) + 1 + 36]byte
	b := append(buf[:0], prefixString+"/"...)
	b = appendUUID(b, uuid.UUID(id))
	return datastore.RawKey(string(b))
}

func reservationKey(availabilityID AvailabilityID, id ReservationID) datastore.Key {
	var buf [len(prefixString) + 2 + 2*36]byte
	b := append(buf[:0], prefixString+"/"...)
	b = appendUUID(b, uuid.UUID(availabilityID))
	b = append(b, '/')
	b = appendUUID(b, uuid.UUID(id))
	return datastore.RawKey(string(b))
}

// MarshalJSON encodes the record with amounts as decimal strings. It writes
// the bytes directly: records are encoded on every change, and this is several
// times cheaper than reflection.
func (a Availability) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 160)
	b = append(b, `{"id":"`...)
	b = appendUUID(b, uuid.UUID(a.ID))
	b = append(b, `","size":`...)
	b = strconv.AppendUint(b, a.Size, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendUint(b, a.Duration, 10)
	b = append(b, `,"minPrice":"`...)
	b = append(b, a.MinPrice.Dec()...)
	b = append(b, `","maxCollateral":"`...)
	b = append(b, a.MaxCollateral.Dec()...)
	b = append(b, `"}`...)
	return b, nil
}

// MarshalJSON encodes the record; see Availability.MarshalJSON.
func (r Reservation) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 200)
	b = append(b, `{"id":"`...)
	b = appendUUID(b, uuid.UUID(r.ID))
	b = append(b, `","availabilityId":"`...)
	b = appendUUID(b, uuid.UUID(r.AvailabilityID))
	b = append(b, `","size":`...)
	b = strconv.AppendUint(b, r.Size, 10)
	b = append(b, `,"requestId":"`...)
	b = append(b, "0x"...)
	b = hex.AppendEncode(b, r.RequestID[:])
	b = append(b, `","slotIndex":`...)
	b = strconv.AppendUint(b, r.SlotIndex, 10)
	b = append(b, '}')
	return b, nil
}

// appendUUID appends the canonical 8-4-4-4-12 form of id without
// allocating.
func appendUUID(b []byte, id uuid.UUID) []byte {
	b = hex.AppendEncode(b, id[0:4])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[4:6])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[6:8])
	b = append(b, '-')
	b = hex.AppendEncode(b, id[8:10])
	b = append(b, '-')
	return hex.AppendEncode(b, id[10:16])
}

// decodeAvailability decodes the record stored under key, checking that it
// belongs there.
func decodeAvailability(key datastore.Key, data []byte) (Availability, error) {
	a, ok := parseAvailability(data)
	if !ok {
		a = Availability{}
		if err := json.Unmarshal(data, &a); err != nil {
			return Availability{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, key, err)
		}
	}
	if availabilityKey(a.ID) != key {
		return Availability{}, fmt.Errorf("%w: %s holds availability %s", ErrCorrupt, key, a.ID)
	}
	return a, nil
}

// decodeReservation decodes the record stored under key, checking that it
// belongs there.
func decodeReservation(key datastore.Key, data []byte) (Reservation, error) {
	r, ok := parseReservation(data)
	if !ok {
		r = Reservation{}
		if err := json.Unmarshal(data, &r); err != nil {
			return Reservation{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, key, err)
		}
	}
	if reservationKey(r.AvailabilityID, r.ID) != key {
		return Reservation{}, fmt.Errorf("%w: %s holds reservation %s of availability %s", ErrCorrupt, key, r.ID, r.AvailabilityID)
	}
	return r, nil
}

func encode(v json.Marshaler) []byte {
	b, _ := v.MarshalJSON() // our encoders never fail
	return b
}

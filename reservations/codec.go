package reservations

import (
	"bytes"
	"strconv"

	"github.com/google/uuid"
	"github.com/holiman/uint256"

	"github.com/stowage/stowage"
)

// The records are JSON, and any JSON with the documented fields decodes
// (through encoding/json). Records this package wrote have one canonical
// shape, and reading them is on the path of every operation, so they are
// first tried with this small exact parser, several times faster than
// reflection. Anything it does not recognise goes to encoding/json.

// cursor walks a canonical record; the first mismatch sets ok to false and
// every later call is a no-op.
type cursor struct {
	b  []byte
	ok bool
}

func (c *cursor) lit(s string) {
	if c.ok && len(c.b) >= len(s) && string(c.b[:len(s)]) == s {
		c.b = c.b[len(s):]
		return
	}
	c.ok = false
}

func (c *cursor) uuid() (id uuid.UUID) {
	if !c.ok || len(c.b) < 36 {
		c.ok = false
		return id
	}
	id, err := uuid.ParseBytes(c.b[:36])
	if err != nil {
		c.ok = false
		return id
	}
	c.b = c.b[36:]
	return id
}

func (c *cursor) uint() uint64 {
	if !c.ok {
		return 0
	}
	i := 0
	for i < len(c.b) && c.b[i] >= '0' && c.b[i] <= '9' {
		i++
	}
	n, err := strconv.ParseUint(string(c.b[:i]), 10, 64)
	if err != nil {
		c.ok = false
		return 0
	}
	c.b = c.b[i:]
	return n
}

// amount reads a quoted decimal.
func (c *cursor) amount(z *uint256.Int) {
	if !c.ok {
		return
	}
	i := bytes.IndexByte(c.b, '"')
	if i <= 0 || z.SetFromDecimal(string(c.b[:i])) != nil {
		c.ok = false
		return
	}
	c.b = c.b[i:]
}

func (c *cursor) requestID() (id stowage.RequestID) {
	if !c.ok || len(c.b) < 66 || id.UnmarshalText(c.b[:66]) != nil {
		c.ok = false
		return id
	}
	c.b = c.b[66:]
	return id
}

func (c *cursor) end() bool { return c.ok && len(c.b) == 0 }

// parseAvailability reads the canonical form written by MarshalJSON.
func parseAvailability(b []byte) (a Availability, ok bool) {
	c := cursor{b: b, ok: true}
	c.lit(`{"id":"`)
	a.ID = AvailabilityID(c.uuid())
	c.lit(`","size":`)
	a.Size = c.uint()
	c.lit(`,"duration":`)
	a.Duration = c.uint()
	c.lit(`,"minPrice":"`)
	c.amount(&a.MinPrice)
	c.lit(`","maxCollateral":"`)
	c.amount(&a.MaxCollateral)
	c.lit(`"}`)
	return a, c.end()
}

// parseReservation reads the canonical form written by MarshalJSON.
func parseReservation(b []byte) (r Reservation, ok bool) {
	c := cursor{b: b, ok: true}
	c.lit(`{"id":"`)
	r.ID = ReservationID(c.uuid())
	c.lit(`","availabilityId":"`)
	r.AvailabilityID = AvailabilityID(c.uuid())
	c.lit(`","size":`)
	r.Size = c.uint()
	c.lit(`,"requestId":"`)
	r.RequestID = c.requestID()
	c.lit(`","slotIndex":`)
	r.SlotIndex = c.uint()
	c.lit(`}`)
	return r, c.end()
}

package reservations

import (
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/holiman/uint256"
)

// parseReservation decodes a reservation record without the memo: first
// by the fast path, which reads exactly what appendReservation writes and
// nothing else, else by encoding/json (which then decides what is valid).
// Verify reads every record once, so the memo would only churn.
func parseReservation(data []byte) (Reservation, error) {
	var r Reservation
	if fastReservation(data, &r) {
		return r, nil
	}
	r = Reservation{}
	err := json.Unmarshal(data, &r)
	return r, err
}

// fastReservation decodes data into r if it is exactly in
// appendReservation's form, and reports whether it was.
func fastReservation(data []byte, r *Reservation) bool {
	p := parser{b: data}
	return p.lit(`{"id":`) && p.uuid((*[16]byte)(&r.ID)) &&
		p.lit(`,"availabilityId":`) && p.uuid((*[16]byte)(&r.AvailabilityID)) &&
		p.lit(`,"size":`) && p.uint(&r.Size) &&
		p.lit(`,"requestId":"0x`) && p.hex(r.RequestID[:]) && p.lit(`"`) &&
		p.lit(`,"slotIndex":`) && p.uint(&r.SlotIndex) &&
		p.lit(`,"slotSize":`) && p.uint(&r.SlotSize) &&
		p.lit(`,"used":`) && p.uint(&r.Used) &&
		p.lit(`,"collateral":`) && p.amount(&r.Collateral) &&
		(p.lit(`}`) || p.lit(`,"validUntil":`) && p.time(&r.ValidUntil) && p.lit(`}`)) &&
		p.done()
}

type parser struct {
	b []byte
	i int
}

func (p *parser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

func (p *parser) done() bool { return p.i == len(p.b) }

// uint reads a JSON number that is a uint64 without leading zeros.
func (p *parser) uint(n *uint64) bool {
	start := p.i
	var v uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		d := uint64(p.b[p.i] - '0')
		if v > (1<<64-1-d)/10 {
			return false
		}
		v = v*10 + d
		p.i++
	}
	if p.i == start || p.b[start] == '0' && p.i-start > 1 {
		return false
	}
	*n = v
	return true
}

// hex reads len(dst) bytes as lowercase hex digits.
func (p *parser) hex(dst []byte) bool {
	n := 2 * len(dst)
	if len(p.b)-p.i < n {
		return false
	}
	src := p.b[p.i : p.i+n]
	for _, c := range src {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	if _, err := hex.Decode(dst, src); err != nil {
		return false
	}
	p.i += n
	return true
}

// uuid reads a quoted UUID in its canonical lowercase form.
func (p *parser) uuid(id *[16]byte) bool {
	return p.lit(`"`) && p.hex(id[0:4]) && p.lit("-") && p.hex(id[4:6]) && p.lit("-") &&
		p.hex(id[6:8]) && p.lit("-") && p.hex(id[8:10]) && p.lit("-") && p.hex(id[10:16]) && p.lit(`"`)
}

// amount reads a quoted decimal amount as appendAmount writes it.
func (p *parser) amount(z *uint256.Int) bool {
	if !p.lit(`"`) {
		return false
	}
	start := p.i
	var small uint64
	if p.uint(&small) && p.lit(`"`) {
		z.SetUint64(small)
		return true
	}
	// Larger than a uint64: uint256 decides.
	p.i = start
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	if p.i == start || p.b[start] == '0' || !p.lit(`"`) {
		return false
	}
	return z.SetFromDecimal(string(p.b[start:p.i-1])) == nil
}

// time reads a quoted RFC 3339 time as time.Time's MarshalJSON writes it.
func (p *parser) time(t *time.Time) bool {
	if !p.lit(`"`) {
		return false
	}
	start := p.i
	for p.i < len(p.b) && p.b[p.i] != '"' && p.b[p.i] != '\\' {
		p.i++
	}
	if !p.lit(`"`) {
		return false
	}
	return t.UnmarshalJSON(p.b[start-1:p.i]) == nil
}

// uuidOf decodes s if it is a UUID in its canonical lowercase form, as
// encodeUUID writes it, without allocating.
func uuidOf(s string) (id [16]byte, ok bool) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, false
	}
	j := 0
	for i := 0; i < 36; i += 2 {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			i--
			continue
		}
		hi, ok1 := unhex(s[i])
		lo, ok2 := unhex(s[i+1])
		if !ok1 || !ok2 {
			return id, false
		}
		id[j] = hi<<4 | lo
		j++
	}
	return id, j == 16
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// reservationIDOf is ParseReservationID, without allocating for the
// canonical form.
func reservationIDOf(s string) (ReservationID, error) {
	if id, ok := uuidOf(s); ok {
		return id, nil
	}
	return ParseReservationID(s)
}

// availabilityIDOf is ParseAvailabilityID, without allocating for the
// canonical form.
func availabilityIDOf(s string) (AvailabilityID, error) {
	if id, ok := uuidOf(s); ok {
		return id, nil
	}
	return ParseAvailabilityID(s)
}

// isReservationKeyOf reports whether key is reservationKey(aid, id),
// without building it.
func isReservationKeyOf(key string, aid AvailabilityID, id ReservationID) bool {
	p := recordsPrefix.String()
	if len(key) != len(p)+2+2*36 || key[:len(p)] != p || key[len(p)] != '/' || key[len(p)+37] != '/' {
		return false
	}
	var s [36]byte
	encodeUUID(s[:], aid)
	if string(s[:]) != key[len(p)+1:len(p)+37] {
		return false
	}
	encodeUUID(s[:], id)
	return string(s[:]) == key[len(p)+38:]
}

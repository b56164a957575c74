package stowage

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/holiman/uint256"
)

// ErrInvalidRequestID is returned when text does not decode to a RequestID.
var ErrInvalidRequestID = errors.New("stowage: invalid request id")

// RequestID identifies a storage request on the marketplace: the 32-byte hash
// the chain assigns to it. The zero value is a valid (if unlikely) ID.
//
// RequestID is a comparable value type, so it can key a map.
type RequestID [32]byte

// String returns "0x" followed by 64 lowercase hex digits.
func (id RequestID) String() string {
	var buf [66]byte
	buf[0], buf[1] = '0', 'x'
	hex.Encode(buf[2:], id[:])
	return string(buf[:])
}

// MarshalText encodes the ID as String does.
func (id RequestID) MarshalText() ([]byte, error) {
	return []byte(id.String()), nil
}

// UnmarshalText decodes 64 hex digits, with or without a "0x" prefix.
// Anything else fails with an error that wraps ErrInvalidRequestID.
func (id *RequestID) UnmarshalText(text []byte) error {
	s := text
	if len(s) >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		s = s[2:]
	}
	if len(s) != 2*len(id) {
		return fmt.Errorf("%w: %q: want 64 hex digits, got %d", ErrInvalidRequestID, text, len(s))
	}
	var out RequestID
	if _, err := hex.Decode(out[:], s); err != nil {
		return fmt.Errorf("%w: %q: %v", ErrInvalidRequestID, text, err)
	}
	*id = out
	return nil
}

// ParseRequestID decodes s as UnmarshalText does.
func ParseRequestID(s string) (RequestID, error) {
	var id RequestID
	err := id.UnmarshalText([]byte(s))
	return id, err
}

// StorageAsk is what a client asks of the hosts that store its request: how
// many slots, how big each is, for how long, and what it pays and demands.
type StorageAsk struct {
	Slots      uint64      // number of slots
	SlotSize   uint64      // bytes per slot
	Duration   uint64      // seconds
	Reward     uint256.Int // per second, per slot
	Collateral uint256.Int // per slot
}

// PricePerSlot is what one slot pays over the whole duration: Duration ×
// Reward. A product that does not fit in 256 bits saturates at the maximum
// value rather than wrapping around, so an absurd ask never looks cheap.
func (a StorageAsk) PricePerSlot() uint256.Int {
	return MulSaturating(a.Duration, &a.Reward)
}

// MulSaturating returns n × x, or the largest uint256 when the product
// overflows. It is the one place price arithmetic is done, so every package
// agrees on how an overflowing price compares.
func MulSaturating(n uint64, x *uint256.Int) uint256.Int {
	var out uint256.Int
	if _, overflow := out.MulOverflow(uint256.NewInt(n), x); overflow {
		out.SetAllOne()
	}
	return out
}

// Slot is one slot of a storage request, as the queue, the reservations and
// the host all see it: the same value goes from slotqueue to ReserveSlot
// unchanged.
type Slot struct {
	RequestID RequestID  // the request the slot belongs to
	Index     uint64     // 0 .. Ask.Slots-1
	Ask       StorageAsk // SlotSize (bytes), Duration (seconds), Reward (per second), Collateral (per slot)
	Expiry    time.Time  // the request must have started by then; zero: no deadline
}

// Ends returns Expiry + Ask.Duration: the latest time the slot's contract can
// end. It is zero when Expiry is zero (the slot never expires). A sum past
// what a time.Time can hold saturates at the latest Unix second it can hold
// (no record accepts such a time: it is refused, not wrapped around).
func (s Slot) Ends() time.Time {
	if s.Expiry.IsZero() {
		return time.Time{}
	}
	sec := s.Expiry.Unix()
	if s.Ask.Duration > uint64(maxUnixSeconds-min(sec, maxUnixSeconds)) {
		return time.Unix(maxUnixSeconds, 0).In(s.Expiry.Location())
	}
	return time.Unix(sec+int64(s.Ask.Duration), int64(s.Expiry.Nanosecond())).In(s.Expiry.Location())
}

// maxUnixSeconds is the latest Unix second a time.Time holds without
// overflowing (its seconds count from year 1).
const maxUnixSeconds = math.MaxInt64 - 62135596800

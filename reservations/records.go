package reservations

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/holiman/uint256"
	"github.com/ipfs/go-datastore"

	"github.com/stowage/stowage"
)

// Keys of the records, all in the repo's metadata datastore. The layout is
// no part of the API: read and change the records through the Store.
//
//	/meta/sales/reservations/<availabilityID>                 Availability
//	/meta/sales/reservations/<availabilityID>/<reservationID> Reservation
//	/meta/sales/availabilities/<availabilityID>               (empty) index of availabilities
//	/meta/sales/byid/<reservationID>                          the reservation's availability ID
//	/meta/sales/slots/<requestID>/<slotIndex>                 "<availabilityID>/<reservationID>"
//	/meta/sales/blocks/<reservationID><blockKey>              size of a block it wrote
//	/meta/sales/expiry/<validUntil>/<reservationID>           its availability ID (see expiry.go)
//	/meta/sales/layout                                        the layout's version
//
// Every key is built from IDs (UUIDs, a request's hex), a decimal slot
// index and a block key the repo accepted (a proper key below its block
// prefix), so none a caller passes can land outside its prefix. The index
// of availabilities lets a listing read the availabilities without walking
// the reservations nested under them.
var (
	recordsPrefix    = datastore.NewKey("/meta/sales/reservations")
	availIndexPrefix = datastore.NewKey("/meta/sales/availabilities")
	byIDPrefix       = datastore.NewKey("/meta/sales/byid")
	slotPrefix       = datastore.NewKey("/meta/sales/slots")
	blocksPrefix     = datastore.NewKey("/meta/sales/blocks")
	layoutKey        = datastore.NewKey("/meta/sales/layout")
)

// layoutVersion is the version of the layout above, recorded at layoutKey
// with the first write, so that a later release can tell what it reads and
// move it. Layout 3 adds the expiry index to layout 2, which is upgraded on
// first use (upgradeLayout); a datastore with a later version is refused
// (ErrNewerLayout).
const layoutVersion = 3

// Availability is bytes the host offers to sell, and on what terms.
//
// TotalSize is the whole offer; Size is the part no reservation holds. A
// reservation moves bytes from Size into itself; when it is deleted they come
// back (see Store.DeleteReservation), so the offer is whole again. The terms
// bound the slots it takes: lasting at most Duration seconds, paying at least
// MinPrice per slot over the slot's whole duration, asking at most
// MaxCollateral per slot, and, when Until is set, with contracts over by
// Until. With a collateral budget (TotalCollateral non-zero) each slot's
// collateral is taken from FreeCollateral while its reservation lives.
//
// Sizes are bytes, durations seconds, times time.Time; token amounts are
// in the marketplace's smallest unit, as stowage.StorageAsk has them.
type Availability struct {
	ID            AvailabilityID `json:"id"`
	Size          uint64         `json:"size"`          // bytes free: the part of TotalSize no reservation holds; set by the Store
	Duration      uint64         `json:"duration"`      // seconds: the longest slot it takes (compared with Ask.Duration)
	MinPrice      uint256.Int    `json:"minPrice"`      // per slot, over the slot's whole duration: the least Ask.PricePerSlot() it takes (not per second)
	MaxCollateral uint256.Int    `json:"maxCollateral"` // per slot: the most Ask.Collateral it takes

	TotalSize       uint64      `json:"totalSize"`          // bytes offered in all; Size is the part no reservation holds
	Disabled        bool        `json:"disabled,omitempty"` // takes no new slots; slots it already holds go on
	Until           time.Time   `json:"until,omitzero"`     // takes no slot whose Ends() is later; zero: no limit
	TotalCollateral uint256.Int `json:"totalCollateral"`    // collateral budget over all its reservations together; zero: no budget
	FreeCollateral  uint256.Int `json:"freeCollateral"`     // what is left of TotalCollateral; set by the Store
}

// Reservation is bytes carved out of an Availability for one slot of one
// request. Size is what it still holds for blocks not yet written; Used is
// what the blocks written with Store.PutBlock take. Sizes are bytes.
type Reservation struct {
	ID             ReservationID     `json:"id"`
	AvailabilityID AvailabilityID    `json:"availabilityId"`
	Size           uint64            `json:"size"` // bytes still reserved, not yet written
	RequestID      stowage.RequestID `json:"requestId"`
	SlotIndex      uint64            `json:"slotIndex"` // the slot's Index in its request

	SlotSize   uint64      `json:"slotSize"`            // bytes the slot was reserved with (its Ask.SlotSize)
	Used       uint64      `json:"used"`                // bytes of the blocks written with Store.PutBlock
	Collateral uint256.Int `json:"collateral"`          // per slot: taken from the availability's collateral budget (zero without a budget)
	ValidUntil time.Time   `json:"validUntil,omitzero"` // the slot's Ends(): its contract is over by then; zero: never expires
}

// held is what the availability's reservations hold: TotalSize - Size.
func (a Availability) held() uint64 { return a.TotalSize - a.Size }

func (a Availability) hasBudget() bool { return !a.TotalCollateral.IsZero() }

func availabilityKey(id AvailabilityID) datastore.Key {
	return idKey(recordsPrefix, id)
}

func availabilityIndexKey(id AvailabilityID) datastore.Key {
	return idKey(availIndexPrefix, id)
}

func reservationKey(availabilityID AvailabilityID, id ReservationID) datastore.Key {
	return idKey(recordsPrefix, availabilityID, id)
}

func byIDKey(id ReservationID) datastore.Key {
	return idKey(byIDPrefix, id)
}

// slotKey is built in one allocation (keys are made on every change).
func slotKey(requestID stowage.RequestID, index uint64) datastore.Key {
	p := slotPrefix.String()
	b := make([]byte, 0, len(p)+1+66+1+20)
	b = append(append(b, p...), "/0x"...)
	b = hex.AppendEncode(b, requestID[:])
	b = strconv.AppendUint(append(b, '/'), index, 10)
	return datastore.RawKey(string(b))
}

func reservationBlocksPrefix(id ReservationID) datastore.Key {
	return idKey(blocksPrefix, id)
}

// isIDKey reports whether key is idKey(prefix, ids...), without building
// it.
func isIDKey(key datastore.Key, prefix datastore.Key, ids ...[16]byte) bool {
	k, p := key.String(), prefix.String()
	if len(k) != len(p)+37*len(ids) || k[:len(p)] != p {
		return false
	}
	k = k[len(p):]
	for _, id := range ids {
		var s [37]byte
		s[0] = '/'
		encodeUUID(s[1:], id)
		if k[:37] != string(s[:]) {
			return false
		}
		k = k[37:]
	}
	return true
}

// idKey is prefix/id/id..., built in one allocation (keys are made on
// every change).
func idKey(prefix datastore.Key, ids ...[16]byte) datastore.Key {
	p := prefix.String()
	var sb strings.Builder
	sb.Grow(len(p) + 37*len(ids))
	sb.WriteString(p)
	for _, id := range ids {
		var s [37]byte
		s[0] = '/'
		encodeUUID(s[1:], id)
		sb.Write(s[:])
	}
	return datastore.RawKey(sb.String())
}

// putBlockIndex stages idx, the index entry (blockIndexKey) of a block of
// reservation id, of size n: the only way a block enters the index.
func (t txn) putBlockIndex(s *state, id ReservationID, idx datastore.Key, n uint64) error {
	s.noBlocks.delete(id)
	return t.Put(idx, encodeSize(n))
}

// blockIndexKey remembers, under the reservation, a block it wrote.
func blockIndexKey(id ReservationID, block datastore.Key) datastore.Key {
	return datastore.RawKey(reservationBlocksPrefix(id).String() + block.String())
}

// memo remembers records this process decoded or encoded, by their bytes.
// The same bytes always decode to the same record, so a hit is as good as
// decoding; it is no cache of state (every change still reads the record's
// bytes from the datastore), only of the work of encoding/json's
// reflective decoder. It holds the records in use: two generations of
// memoSize, the older dropped when the newer fills, a hit in the older
// moving to the newer.
//
// Entries are found by a hash of the bytes and confirmed by the bytes
// themselves, which the entry keeps without copying them: the slice a
// record was encoded into or read from is not written again, and were it
// written, the comparison would miss.
type memo[T any] struct {
	g generations[uint64, memoEntry[T]]
}

type memoEntry[T any] struct {
	b []byte
	v T
}

var memoSeed = maphash.MakeSeed()

func (c *memo[T]) get(b []byte) (T, bool) {
	e, ok := c.g.get(maphash.Bytes(memoSeed, b), func(e memoEntry[T]) bool { return bytes.Equal(e.b, b) })
	return e.v, ok
}

// put remembers that b decodes to v. b must not be written afterwards.
func (c *memo[T]) put(b []byte, v T) {
	c.g.put(maphash.Bytes(memoSeed, b), memoEntry[T]{b: b, v: v})
}

// generations is a map that holds what is in use: two generations of
// memoSize entries, the older dropped when the newer fills, an entry found
// in the older moving to the newer. It is safe for concurrent use.
type generations[K comparable, V any] struct {
	mu       sync.Mutex
	cur, old map[K]V
}

// memoSize is how many entries a generation holds.
const memoSize = 512

// get returns the entry of k, if it has one that match accepts.
func (g *generations[K, V]) get(k K, match func(V) bool) (V, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if v, ok := g.cur[k]; ok && match(v) {
		return v, true
	}
	if v, ok := g.old[k]; ok && match(v) {
		g.add(k, v)
		return v, true
	}
	var zero V
	return zero, false
}

// put sets the entry of k (the older generation keeps no other).
func (g *generations[K, V]) put(k K, v V) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.old, k)
	g.add(k, v)
}

// delete removes the entry of k.
func (g *generations[K, V]) delete(k K) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.cur, k)
	delete(g.old, k)
}

func (g *generations[K, V]) add(k K, v V) {
	if g.cur == nil || len(g.cur) >= memoSize {
		g.old, g.cur = g.cur, make(map[K]V, memoSize)
	}
	g.cur[k] = v
}

var (
	availabilityMemo memo[Availability]
	reservationMemo  memo[Reservation]
)

// Room for a record in one allocation: the records are a few hundred
// bytes (more only with amounts beyond 64 bits).
const (
	availabilityRoom = 384
	reservationRoom  = 384
)

func encodeAvailability(a Availability) ([]byte, error) {
	b, err := appendAvailability(make([]byte, 0, availabilityRoom), &a)
	if err == nil {
		availabilityMemo.put(b, a)
	}
	return b, err
}

func encodeReservation(r Reservation) ([]byte, error) {
	b, err := appendReservation(make([]byte, 0, reservationRoom), &r)
	if err == nil {
		reservationMemo.put(b, r)
	}
	return b, err
}

// decodeAvailability decodes the record stored under key, checking that it
// belongs there.
func decodeAvailability(key datastore.Key, data []byte) (Availability, error) {
	a, ok := availabilityMemo.get(data)
	if !ok {
		if err := json.Unmarshal(data, &a); err != nil {
			return Availability{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, key, err)
		}
		availabilityMemo.put(data, a)
	}
	if !isIDKey(key, recordsPrefix, a.ID) {
		return Availability{}, fmt.Errorf("%w: %s holds availability %s", ErrCorrupt, key, a.ID)
	}
	if a.Size > a.TotalSize {
		return Availability{}, fmt.Errorf("%w: %s: size %d above totalSize %d", ErrCorrupt, key, a.Size, a.TotalSize)
	}
	return a, nil
}

// decodeReservation decodes the record stored under key, checking that it
// belongs there.
func decodeReservation(key datastore.Key, data []byte) (Reservation, error) {
	r, ok := reservationMemo.get(data)
	if !ok {
		if err := json.Unmarshal(data, &r); err != nil {
			return Reservation{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, key, err)
		}
		reservationMemo.put(data, r)
	}
	if !isIDKey(key, recordsPrefix, r.AvailabilityID, r.ID) {
		return Reservation{}, fmt.Errorf("%w: %s holds reservation %s of availability %s", ErrCorrupt, key, r.ID, r.AvailabilityID)
	}
	return r, nil
}

func decodeSize(key datastore.Key, b []byte) (uint64, error) {
	n, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrCorrupt, key, err)
	}
	return n, nil
}

func encodeSize(n uint64) []byte { return strconv.AppendUint(nil, n, 10) }

// decodeSlot decodes a slot index record: "<availabilityID>/<reservationID>".
func decodeSlot(key datastore.Key, b []byte) (AvailabilityID, ReservationID, error) {
	a, r, ok := strings.Cut(string(b), "/")
	if ok {
		aid, err1 := ParseAvailabilityID(a)
		rid, err2 := ParseReservationID(r)
		if err1 == nil && err2 == nil {
			return aid, rid, nil
		}
	}
	return AvailabilityID{}, ReservationID{}, fmt.Errorf("%w: %s holds %q", ErrCorrupt, key, b)
}

// isSlotOf reports whether b is encodeSlot(r), without allocating.
func isSlotOf(b []byte, r Reservation) bool {
	var s [73]byte
	encodeUUID(s[0:36], r.AvailabilityID)
	s[36] = '/'
	encodeUUID(s[37:73], r.ID)
	return string(b) == string(s[:])
}

func encodeSlot(r Reservation) []byte {
	return []byte(r.AvailabilityID.String() + "/" + r.ID.String())
}

// formatBytes writes n in binary units, for messages an operator reads.
func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatUint(n, 10) + " B"
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	v := float64(n) / float64(div)
	s := strconv.FormatFloat(v, 'f', 1, 64)
	s = strings.TrimSuffix(s, ".0")
	return s + " " + string("KMGTPE"[exp]) + "iB"
}

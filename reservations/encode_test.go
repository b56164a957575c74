package reservations

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/holiman/uint256"
	"github.com/stretchr/testify/require"

	"github.com/stowage/stowage"
)

// Without methods: json.Marshal of these is encoding/json's own encoding,
// which the hand-written encoders must match byte for byte.
type (
	reflectAvailability Availability
	reflectReservation  Reservation
)

func randAmount(r *rand.Rand) uint256.Int {
	var z uint256.Int
	switch r.IntN(3) {
	case 0:
	case 1:
		z.SetUint64(r.Uint64())
	default:
		z = uint256.Int{r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64()}
	}
	return z
}

func randTime(r *rand.Rand) time.Time {
	if r.IntN(2) == 0 {
		return time.Time{}
	}
	zones := []*time.Location{time.UTC, time.FixedZone("x", -7*3600-30*60), time.Local}
	return time.Unix(r.Int64N(250000000000)-62135596800, r.Int64N(1e9)).In(zones[r.IntN(len(zones))])
}

func randBytes(r *rand.Rand, b []byte) {
	for i := range b {
		b[i] = byte(r.Uint32())
	}
}

func TestEncode_MatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		a := Availability{Size: r.Uint64(), Duration: r.Uint64(), MinPrice: randAmount(r), MaxCollateral: randAmount(r),
			TotalSize: r.Uint64(), Disabled: r.IntN(2) == 0, Until: randTime(r), TotalCollateral: randAmount(r), FreeCollateral: randAmount(r)}
		randBytes(r, a.ID[:])
		want, err := json.Marshal((*reflectAvailability)(&a))
		require.NoError(t, err)
		got, err := a.MarshalJSON()
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
		var back Availability
		require.NoError(t, json.Unmarshal(got, &back))
		require.True(t, back.Until.Equal(a.Until))
		back.Until, a.Until = time.Time{}, time.Time{}
		require.Equal(t, a, back)

		res := Reservation{Size: r.Uint64(), SlotIndex: r.Uint64(), SlotSize: r.Uint64(), Used: r.Uint64(), Collateral: randAmount(r), ValidUntil: randTime(r)}
		randBytes(r, res.ID[:])
		randBytes(r, res.AvailabilityID[:])
		randBytes(r, res.RequestID[:])
		want, err = json.Marshal((*reflectReservation)(&res))
		require.NoError(t, err)
		got, err = res.MarshalJSON()
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	}
}

func TestEncode_TimeOutOfRange(t *testing.T) {
	a := Availability{TotalSize: 1, Until: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, err := a.MarshalJSON()
	require.True(t, errors.Is(err, ErrInvalidTime), "got %v", err)
	res := Reservation{ValidUntil: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, err = res.MarshalJSON()
	require.True(t, errors.Is(err, ErrInvalidTime), "got %v", err)
}

// The memo keeps what is in use: an entry hit while the newer generation
// fills survives the turnover that drops the rest.
func TestMemo_KeepsWhatIsInUse(t *testing.T) {
	var m memo[int]
	key := func(i int) []byte { return []byte{byte(i), byte(i >> 8), byte(i >> 16)} }
	m.put([]byte("hot"), -1)
	for i := range 3 * memoSize {
		m.put(key(i), i)
		v, ok := m.get([]byte("hot"))
		require.True(t, ok, "after %d other entries", i)
		require.Equal(t, -1, v)
	}
	_, ok := m.get(key(0))
	require.False(t, ok, "an entry nobody used is dropped")
	v, ok := m.get(key(3*memoSize - 1))
	require.True(t, ok)
	require.Equal(t, 3*memoSize-1, v)
	require.LessOrEqual(t, len(m.g.cur)+len(m.g.old), 2*memoSize)
}

func TestKeys_AreTheDocumentedOnes(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 100 {
		var aid AvailabilityID
		var rid ReservationID
		randBytes(r, aid[:])
		randBytes(r, rid[:])
		require.Equal(t, "/meta/sales/reservations/"+aid.String(), availabilityKey(aid).String())
		require.Equal(t, "/meta/sales/availabilities/"+aid.String(), availabilityIndexKey(aid).String())
		require.Equal(t, "/meta/sales/reservations/"+aid.String()+"/"+rid.String(), reservationKey(aid, rid).String())
		require.Equal(t, "/meta/sales/byid/"+rid.String(), byIDKey(rid).String())
		require.Equal(t, "/meta/sales/blocks/"+rid.String(), reservationBlocksPrefix(rid).String())
		var req stowage.RequestID
		randBytes(r, req[:])
		index := r.Uint64()
		require.Equal(t, "/meta/sales/slots/"+req.String()+"/"+strconv.FormatUint(index, 10), slotKey(req, index).String())
		res := Reservation{ID: rid, AvailabilityID: aid}
		require.True(t, isSlotOf(encodeSlot(res), res))
		require.False(t, isSlotOf(encodeSlot(Reservation{ID: rid}), res))
		require.True(t, isIDKey(reservationKey(aid, rid), recordsPrefix, aid, rid))
		require.False(t, isIDKey(reservationKey(aid, rid), recordsPrefix, rid, aid))
		require.False(t, isIDKey(availabilityKey(aid), recordsPrefix, aid, rid))
	}
}

// The memo keeps the bytes it was given, not a copy: bytes written after
// they were remembered are a miss, never the record they used to be.
func TestMemo_WrittenBytesMiss(t *testing.T) {
	var m memo[int]
	b := []byte("record")
	m.put(b, 1)
	v, ok := m.get([]byte("record"))
	require.True(t, ok)
	require.Equal(t, 1, v)
	b[0] = 'R'
	_, ok = m.get([]byte("record"))
	require.False(t, ok, "the bytes it was given changed")
	_, ok = m.get([]byte("Record"))
	require.False(t, ok, "nothing was remembered for these bytes")
}

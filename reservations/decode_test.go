package reservations

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The fast decoder reads what the encoder writes as encoding/json does,
// and what it does not take (anything else) goes to encoding/json.
func TestParseReservation_MatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for range 2000 {
		res := Reservation{Size: r.Uint64(), SlotIndex: r.Uint64(), SlotSize: r.Uint64(), Used: r.Uint64(), Collateral: randAmount(r), ValidUntil: randTime(r)}
		randBytes(r, res.ID[:])
		randBytes(r, res.AvailabilityID[:])
		randBytes(r, res.RequestID[:])
		b, err := res.MarshalJSON()
		require.NoError(t, err)
		var fast Reservation
		require.True(t, fastReservation(b, &fast), "%s", b)
		var want Reservation
		require.NoError(t, json.Unmarshal(b, &want))
		require.True(t, want.ValidUntil.Equal(fast.ValidUntil))
		want.ValidUntil, fast.ValidUntil = time.Time{}, time.Time{}
		require.Equal(t, want, fast)

		// Any one byte changed: the fast path either refuses it or agrees
		// with encoding/json.
		bad := []byte(string(b))
		bad[r.IntN(len(bad))] = "0123456789\"{},:x-aF \\"[r.IntN(21)]
		var f, j Reservation
		if fastReservation(bad, &f) {
			require.NoError(t, json.Unmarshal(bad, &j), "%s", bad)
			require.True(t, j.ValidUntil.Equal(f.ValidUntil))
			j.ValidUntil, f.ValidUntil = time.Time{}, time.Time{}
			require.Equal(t, j, f, "%s", bad)
		}
	}
	for _, s := range []string{`{"id":"x"}`, ``, `{"id":"01a24e30-4b2f-7bbe-b235-e62feb8f218d"`} {
		_, err := parseReservation([]byte(s))
		require.Error(t, err, s)
	}
}

func TestExpiryKey_OrdersByTime(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	for range 1000 {
		a, b := randTime(r), randTime(r)
		if a.IsZero() || b.IsZero() {
			continue
		}
		ea, eb := encodeExpiry(a), encodeExpiry(b)
		require.Len(t, ea, expiryLen)
		switch {
		case a.Before(b):
			require.Less(t, ea, eb)
		case a.After(b):
			require.Greater(t, ea, eb)
		default:
			require.Equal(t, ea, eb)
		}
	}
}

func TestUUIDOf_ReadsTheCanonicalForm(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for range 1000 {
		var id ReservationID
		randBytes(r, id[:])
		got, ok := uuidOf(id.String())
		require.True(t, ok)
		require.Equal(t, [16]byte(id), got)
		var aid AvailabilityID
		randBytes(r, aid[:])
		require.True(t, isReservationKeyOf(reservationKey(aid, id).String(), aid, id))
		require.False(t, isReservationKeyOf(reservationKey(AvailabilityID(id), ReservationID(aid)).String(), aid, id))
	}
	for _, s := range []string{"", "01a24e30-4b2f-7bbe-b235-e62feb8f218", "01A24E30-4B2F-7BBE-B235-E62FEB8F218D", "01a24e30x4b2f-7bbe-b235-e62feb8f218d", "g1a24e30-4b2f-7bbe-b235-e62feb8f218d"} {
		_, ok := uuidOf(s)
		require.False(t, ok, s)
	}
}

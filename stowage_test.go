package stowage

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/holiman/uint256"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRequestID_TextRoundTrip(t *testing.T) {
	var id RequestID
	for i := range id {
		id[i] = byte(i * 7)
	}
	text, err := id.MarshalText()
	require.NoError(t, err)
	assert.Equal(t, id.String(), string(text))
	assert.True(t, strings.HasPrefix(string(text), "0x"))
	assert.Len(t, text, 66)

	var back RequestID
	require.NoError(t, back.UnmarshalText(text))
	assert.Equal(t, id, back)

	// Without the prefix too.
	require.NoError(t, back.UnmarshalText(text[2:]))
	assert.Equal(t, id, back)
}

func TestRequestID_JSONRoundTrip(t *testing.T) {
	in := struct{ ID RequestID }{ID: RequestID{1, 2, 3}}
	b, err := json.Marshal(in)
	require.NoError(t, err)
	var out struct{ ID RequestID }
	require.NoError(t, json.Unmarshal(b, &out))
	assert.Equal(t, in, out)
}

func TestRequestID_UnmarshalTextRejectsBadInput(t *testing.T) {
	for _, in := range []string{"", "0x", "0x1234", strings.Repeat("zz", 32), "0x" + strings.Repeat("0", 65)} {
		var id RequestID
		id[0] = 9
		err := id.UnmarshalText([]byte(in))
		assert.ErrorIs(t, err, ErrInvalidRequestID, "input %q", in)
		assert.Equal(t, byte(9), id[0], "a failed decode must not change the id")
	}
}

func TestStorageAsk_PricePerSlot(t *testing.T) {
	ask := StorageAsk{Duration: 1000, Reward: *uint256.NewInt(100)}
	p := ask.PricePerSlot()
	assert.Equal(t, uint64(100_000), p.Uint64())
}

func TestStorageAsk_PricePerSlotSaturates(t *testing.T) {
	var huge uint256.Int
	huge.SetAllOne()
	ask := StorageAsk{Duration: 2, Reward: huge}
	p := ask.PricePerSlot()
	assert.Equal(t, huge, p)
}

func TestSlot_Ends(t *testing.T) {
	expiry := time.Date(2026, 12, 7, 10, 0, 0, 500, time.UTC)
	s := Slot{Ask: StorageAsk{Duration: 3600}, Expiry: expiry}
	assert.True(t, s.Ends().Equal(expiry.Add(time.Hour)), "got %v", s.Ends())
	assert.Equal(t, time.UTC, s.Ends().Location())
}

func TestSlot_EndsZeroWithoutExpiry(t *testing.T) {
	s := Slot{Ask: StorageAsk{Duration: 3600}}
	assert.True(t, s.Ends().IsZero(), "a slot without Expiry never expires")
}

func TestSlot_EndsSaturates(t *testing.T) {
	expiry := time.Unix(1_800_000_000, 0)
	for _, d := range []uint64{1 << 63, 1<<64 - 1, uint64(maxUnixSeconds)} {
		s := Slot{Ask: StorageAsk{Duration: d}, Expiry: expiry}
		ends := s.Ends()
		assert.Equal(t, int64(maxUnixSeconds), ends.Unix(), "duration %d", d)
		assert.True(t, ends.After(expiry), "duration %d wrapped around to %v", d, ends)
	}
}

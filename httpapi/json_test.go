package httpapi

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
)

// decodeValue's direct reads agree with encoding/json on every input.
func TestDecodeValue_AgreesWithEncodingJSON(t *testing.T) {
	inputs := []string{
		`0`, `7`, `18446744073709551615`, `18446744073709551616`, `-1`, `-0`, `1.5`, `1e3`, `"5"`, `true`,
		`9223372036854775807`, `-9223372036854775808`, `9223372036854775808`,
		`false`, `"true"`, `1`,
		`""`, `"1000"`, `"a\"b"`, `"\u0031"`, `"é"`, `"a\\b"`, `5`, `null`, `[]`, `{}`,
	}
	for _, in := range inputs {
		raw := json.RawMessage(in)
		check := func(name string, got, want any, gotErr, wantErr error) {
			t.Helper()
			assert.Equal(t, wantErr == nil, gotErr == nil, "%s %s: %v / %v", name, in, gotErr, wantErr)
			if wantErr == nil {
				assert.Equal(t, want, got, "%s %s", name, in)
			} else {
				assert.Equal(t, wantErr.Error(), gotErr.Error(), "%s %s", name, in)
			}
		}
		var u, uw *uint64
		e, ew := decodeValue(raw, &u), json.Unmarshal(raw, &uw)
		check("uint64", u, uw, e, ew)
		var i, iw *int64
		e, ew = decodeValue(raw, &i), json.Unmarshal(raw, &iw)
		check("int64", i, iw, e, ew)
		var b, bw *bool
		e, ew = decodeValue(raw, &b), json.Unmarshal(raw, &bw)
		check("bool", b, bw, e, ew)
		var s, sw *string
		e, ew = decodeValue(raw, &s), json.Unmarshal(raw, &sw)
		check("string", s, sw, e, ew)
	}
}

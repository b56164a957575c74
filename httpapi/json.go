package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/holiman/uint256"

	"github.com/stowage/stowage/reservations"
)

// availabilityJSON is an Availability as the API shows it.
type availabilityJSON struct {
	ID                       string `json:"id"`
	TotalSize                uint64 `json:"totalSize"`
	FreeSize                 uint64 `json:"freeSize"`
	Duration                 uint64 `json:"duration"`
	MinPrice                 string `json:"minPrice"`
	MaxCollateral            string `json:"maxCollateral"`
	TotalCollateral          string `json:"totalCollateral"`
	TotalRemainingCollateral string `json:"totalRemainingCollateral"`
	Enabled                  bool   `json:"enabled"`
	Until                    int64  `json:"until"`
}

func toAvailabilityJSON(a *reservations.Availability) availabilityJSON {
	return availabilityJSON{
		ID:                       a.ID.String(),
		TotalSize:                a.TotalSize,
		FreeSize:                 a.Size,
		Duration:                 a.Duration,
		MinPrice:                 a.MinPrice.Dec(),
		MaxCollateral:            a.MaxCollateral.Dec(),
		TotalCollateral:          a.TotalCollateral.Dec(),
		TotalRemainingCollateral: a.FreeCollateral.Dec(),
		Enabled:                  !a.Disabled,
		Until:                    unixOrZero(a.Until),
	}
}

// reservationJSON is a Reservation as the API shows it.
type reservationJSON struct {
	ID             string `json:"id"`
	AvailabilityID string `json:"availabilityId"`
	Size           uint64 `json:"size"`
	Used           uint64 `json:"used"`
	SlotSize       uint64 `json:"slotSize"`
	RequestID      string `json:"requestId"`
	SlotIndex      uint64 `json:"slotIndex"`
	Collateral     string `json:"collateral"`
	ValidUntil     int64  `json:"validUntil"`
}

func toReservationJSON(r *reservations.Reservation) reservationJSON {
	return reservationJSON{
		ID:             r.ID.String(),
		AvailabilityID: r.AvailabilityID.String(),
		Size:           r.Size,
		Used:           r.Used,
		SlotSize:       r.SlotSize,
		RequestID:      r.RequestID.String(),
		SlotIndex:      r.SlotIndex,
		Collateral:     r.Collateral.Dec(),
		ValidUntil:     unixOrZero(r.ValidUntil),
	}
}

// spaceJSON is the repo's quota.
type spaceJSON struct {
	QuotaMaxBytes       uint64 `json:"quotaMaxBytes"`
	QuotaUsedBytes      uint64 `json:"quotaUsedBytes"`
	QuotaReservedBytes  uint64 `json:"quotaReservedBytes"`
	QuotaAvailableBytes uint64 `json:"quotaAvailableBytes"`
	TotalBlocks         uint64 `json:"totalBlocks"`
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// availabilityBody is a POST or PATCH body. A nil field is absent.
type availabilityBody struct {
	TotalSize       *uint64
	Duration        *uint64
	MinPrice        *string
	MaxCollateral   *string
	TotalCollateral *string
	Enabled         *bool
	Until           *int64
}

// field is where the body's field name goes (nil: no such field). Names
// are matched exactly: encoding/json alone would take "totalsize" for
// "totalSize".
func (b *availabilityBody) field(name string) any {
	switch name {
	case "totalSize":
		return &b.TotalSize
	case "duration":
		return &b.Duration
	case "minPrice":
		return &b.MinPrice
	case "maxCollateral":
		return &b.MaxCollateral
	case "totalCollateral":
		return &b.TotalCollateral
	case "enabled":
		return &b.Enabled
	case "until":
		return &b.Until
	}
	return nil
}

// apiError is an answer with a status and a message for the caller.
type apiError struct {
	code int
	msg  string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

func unprocessable(format string, args ...any) error {
	return &apiError{http.StatusUnprocessableEntity, fmt.Sprintf(format, args...)}
}

// decodeBody reads r's body, at most maxBody bytes, as one JSON object of
// availabilityBody's fields.
func decodeBody(w http.ResponseWriter, r *http.Request) (availabilityBody, error) {
	var b availabilityBody
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return b, &apiError{http.StatusRequestEntityTooLarge, fmt.Sprintf("body: larger than %d bytes", maxBody)}
		}
		return b, badRequest("body: %v", err)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return b, badRequest("body: want a JSON object")
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&fields); err != nil {
		return b, badRequest("%s", jsonError(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return b, badRequest("body: data after the JSON object")
	}
	names := slices.Sorted(maps.Keys(fields))
	for _, name := range names {
		if name != "freeSize" && b.field(name) == nil {
			return b, badRequest("body: unknown field %q", name)
		}
	}
	if _, ok := fields["freeSize"]; ok {
		return b, unprocessable("freeSize: cannot be set; it is totalSize less what reservations hold")
	}
	for _, name := range names {
		raw := fields[name]
		if string(raw) == "null" {
			return b, badRequest("%s: null is not a value; leave the field out", name)
		}
		if err := decodeValue(raw, b.field(name)); err != nil {
			if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
				return b, badRequest("%s: want %s, got %s", name, jsonType(e.Type.String()), e.Value)
			}
			return b, badRequest("%s: %v", name, err)
		}
	}
	return b, nil
}

// decodeValue decodes one field's JSON value into dst, a **uint64, **int64,
// **bool or **string. The plain forms (digits, true, a string without
// escapes) are read directly; anything else goes to encoding/json, whose
// errors are the ones callers see.
func decodeValue(raw json.RawMessage, dst any) error {
	switch p := dst.(type) {
	case **uint64:
		if plainDigits(raw) {
			if n, err := strconv.ParseUint(string(raw), 10, 64); err == nil {
				*p = &n
				return nil
			}
		}
	case **int64:
		if plainDigits(bytes.TrimPrefix(raw, []byte("-"))) {
			if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
				*p = &n
				return nil
			}
		}
	case **bool:
		if v := string(raw); v == "true" || v == "false" {
			t := v == "true"
			*p = &t
			return nil
		}
	case **string:
		if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' && plainString(raw[1:len(raw)-1]) {
			v := string(raw[1 : len(raw)-1])
			*p = &v
			return nil
		}
	}
	return json.Unmarshal(raw, dst)
}

func plainDigits(b []byte) bool {
	if len(b) == 0 || len(b) > 1 && b[0] == '0' {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// plainString reports whether the inside of a JSON string has no escape,
// quote, control character or non-ASCII byte, so it is its own value.
func plainString(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			return false
		}
	}
	return true
}

// jsonError names the field (or the place) a decoding error is about.
func jsonError(err error) string {
	if e, ok := errors.AsType[*json.UnmarshalTypeError](err); ok {
		return fmt.Sprintf("body: want a JSON object, got %s", e.Value)
	}
	if e, ok := errors.AsType[*json.SyntaxError](err); ok {
		return fmt.Sprintf("body: invalid JSON at byte %d: %v", e.Offset, e)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return "body: JSON ends too early"
	}
	// "json: unknown field \"x\"" and the like.
	return "body: " + err.Error()
}

func jsonType(goType string) string {
	switch goType {
	case "uint64":
		return "a whole number of 0 or more"
	case "int64":
		return "a whole number"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	}
	return goType
}

// amount parses a decimal amount given for field.
func amount(field string, s string) (uint256.Int, error) {
	var z uint256.Int
	if s == "" || s[0] == '+' || s[0] == '-' {
		return z, badRequest("%s: want a decimal amount such as \"1000\", got %q", field, s)
	}
	if err := z.SetFromDecimal(s); err != nil {
		return z, badRequest("%s: want a decimal amount below 2^256, got %q", field, s)
	}
	return z, nil
}

// apply sets on a the fields present in b; PATCH and POST share it.
func (b *availabilityBody) apply(a *reservations.Availability) error {
	if b.TotalSize != nil {
		a.TotalSize = *b.TotalSize
	}
	if b.Duration != nil {
		if *b.Duration == 0 {
			return unprocessable("duration: must be greater than zero")
		}
		a.Duration = *b.Duration
	}
	for _, f := range []struct {
		name string
		s    *string
		dst  *uint256.Int
	}{
		{"minPrice", b.MinPrice, &a.MinPrice},
		{"maxCollateral", b.MaxCollateral, &a.MaxCollateral},
		{"totalCollateral", b.TotalCollateral, &a.TotalCollateral},
	} {
		if f.s == nil {
			continue
		}
		z, err := amount(f.name, *f.s)
		if err != nil {
			return err
		}
		*f.dst = z
	}
	if b.Enabled != nil {
		a.Disabled = !*b.Enabled
	}
	if b.Until != nil {
		switch u := *b.Until; {
		case u < 0:
			return unprocessable("until: must be Unix seconds, 0 for no limit, got %d", u)
		case u == 0:
			a.Until = time.Time{}
		default:
			a.Until = time.Unix(u, 0).UTC()
		}
	}
	return nil
}

// writeJSON answers code with v in JSON.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // not for the types above; keep the answer JSON anyway
		code, b = http.StatusInternalServerError, []byte(`{"error":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers code with {"error": msg}.
func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, struct {
		Error string `json:"error"`
	}{msg})
}

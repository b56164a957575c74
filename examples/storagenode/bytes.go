package main

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// bytesHelp ends the help of every flag that takes bytes.
const bytesHelp = " (units: B; KiB, MiB, GiB, TiB = 1024^n, also K, M, G, T; KB, MB, GB, TB = 1000^n; any case)"

// byteSize is a flag.Value for a byte count, as parseBytes reads it: 4096,
// 64KiB, 32MiB, 1.5GiB, 64MB, 64mb. Every flag that takes bytes uses it.
type byteSize uint64

// String implements flag.Value: the largest binary unit that divides n.
func (b *byteSize) String() string {
	n := uint64(*b)
	for i, unit := range []string{"TiB", "GiB", "MiB", "KiB"} {
		if shift := 10 * (4 - i); n != 0 && n%(1<<shift) == 0 {
			return fmt.Sprintf("%d%s", n>>shift, unit)
		}
	}
	return strconv.FormatUint(n, 10)
}

// Set implements flag.Value.
func (b *byteSize) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

// byteUnits are the units parseBytes knows, in lower case.
var byteUnits = map[string]uint64{
	"": 1, "b": 1,
	"k": 1 << 10, "ki": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mi": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gi": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "ti": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// parseBytes reads a byte count: a decimal number (a fraction is allowed if
// the count comes out whole) and an optional unit, binary (KiB, MiB, GiB,
// TiB, or K, M, G, T alone) or decimal (KB, MB, GB, TB), in any case, with
// or without a space between.
func parseBytes(s string) (uint64, error) {
	bad := func(why string) (uint64, error) {
		return 0, fmt.Errorf("bad size %q: %s; want bytes such as 4096, 64KiB, 1.5GiB or 64MB", s, why)
	}
	t := strings.TrimSpace(s)
	end := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if end < 0 {
		end = len(t)
	}
	num, unit := t[:end], strings.ToLower(strings.TrimSpace(t[end:]))
	if num == "" || num == "." || strings.Count(num, ".") > 1 {
		return bad("no number")
	}
	mult, ok := byteUnits[unit]
	if !ok {
		return bad(fmt.Sprintf("unknown unit %q", t[end:]))
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return bad("no number")
	}
	r.Mul(r, new(big.Rat).SetUint64(mult))
	switch {
	case !r.IsInt():
		return bad("not a whole number of bytes")
	case !r.Num().IsUint64():
		return bad("more than 2^64-1 bytes")
	}
	return r.Num().Uint64(), nil
}

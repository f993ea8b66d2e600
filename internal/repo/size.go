package repo

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// sizeText is a decimal number and an optional unit. Written out, so that
// what strconv.ParseFloat also reads ("NaN", "Inf", "-1", "0x1p4") is no size.
var sizeText = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*(?:([KMGT])(?:I?B)?|B)?$`)

// ParseSize reads a byte count with an optional unit: K, M, G, T (powers
// of 1024; "KiB", "MB" and "k" are read the same way). It refuses negative
// and non-finite numbers and sizes of 8 EiB or more.
func ParseSize(s string) (int64, error) {
	m := sizeText.FindStringSubmatch(strings.ToUpper(strings.TrimSpace(s)))
	if m == nil {
		return 0, fmt.Errorf("size %q: want a number of 0 or more with an optional unit (K, M, G, T), e.g. 500M or 1.5G", s)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	if m[2] != "" {
		v *= math.Exp2(10 * float64(1+strings.Index("KMGT", m[2])))
	}
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: too large (the most is below 8 EiB)", s)
	}
	return int64(v), nil
}

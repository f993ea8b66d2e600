package retention

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a span of calendar time, as restic's --keep-within takes it:
// years, months, days and hours ("1y2m3d4h"). It is applied with
// time.AddDate and then hours, so a month is a calendar month.
type Duration struct {
	Years, Months, Days, Hours int
}

// IsZero tells whether d is no time at all (the rule is off).
func (d Duration) IsZero() bool {
	return d.Years == 0 && d.Months == 0 && d.Days == 0 && d.Hours == 0
}

// String writes d as ParseDuration reads it, e.g. "1y2m3d4h".
func (d Duration) String() string {
	var b strings.Builder
	for _, u := range []struct {
		n    int
		unit byte
	}{{d.Years, 'y'}, {d.Months, 'm'}, {d.Days, 'd'}, {d.Hours, 'h'}} {
		if u.n != 0 {
			b.WriteString(strconv.Itoa(u.n))
			b.WriteByte(u.unit)
		}
	}
	return b.String()
}

// before returns the moment d before t, calendar-wise in t's zone.
func (d Duration) before(t time.Time) time.Time {
	return t.AddDate(-d.Years, -d.Months, -d.Days).Add(-time.Duration(d.Hours) * time.Hour)
}

// ParseDuration reads restic's duration syntax: numbers, each followed by
// one of the units y (years), m (months), d (days), h (hours), in any order
// ("1y2m3d4h", "36h", "2d12h"); surrounding spaces are ignored, "" is no
// time. A unit given twice takes its last number, as in restic. Negative
// numbers parse (restic's parser takes them) but Policy.Validate refuses
// them.
func ParseDuration(s string) (Duration, error) {
	var d Duration
	rest := strings.TrimSpace(s)
	for rest != "" {
		i := 0
		if rest[0] == '-' {
			i = 1
		}
		j := i
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == i {
			return Duration{}, fmt.Errorf("duration %q: no number at %q (write e.g. 1y2m3d4h: years, months, days, hours)", s, rest)
		}
		n, err := strconv.Atoi(rest[:j])
		if err != nil {
			return Duration{}, fmt.Errorf("duration %q: %s is too large", s, rest[:j])
		}
		if j == len(rest) {
			return Duration{}, fmt.Errorf("duration %q: no unit after %d (use y, m, d or h)", s, n)
		}
		switch rest[j] {
		case 'y':
			d.Years = n
		case 'm':
			d.Months = n
		case 'd':
			d.Days = n
		case 'h':
			d.Hours = n
		default:
			return Duration{}, fmt.Errorf("duration %q: unknown unit %q after %d (use y, m, d or h)", s, rest[j], n)
		}
		rest = rest[j+1:]
	}
	return d, nil
}

// Unlimited is the count of a rule that keeps one snapshot of every period
// ("unlimited" on the command line).
const Unlimited = -1

// ErrNegativeCount is the error for a count below zero other than
// "unlimited".
var ErrNegativeCount = errors.New("negative values are not allowed, use 'unlimited' instead")

// ParseCount reads a --keep-* count: a whole number from 0, or "unlimited"
// (Unlimited).
func ParseCount(s string) (int, error) {
	if s == "unlimited" {
		return Unlimited, nil
	}
	n, err := strconv.ParseInt(s, 10, 0)
	if err != nil {
		return 0, fmt.Errorf("%q is not a count: give a whole number or 'unlimited'", s)
	}
	if n < 0 {
		return 0, ErrNegativeCount
	}
	return int(n), nil
}

// FormatCount writes a count as ParseCount reads it.
func FormatCount(n int) string {
	if n == Unlimited {
		return "unlimited"
	}
	return strconv.Itoa(n)
}

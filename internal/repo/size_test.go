package repo

import (
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for text, want := range map[string]int64{
		"0": 0, "1": 1, "512B": 512, "1k": 1 << 10, "1K": 1 << 10, "2KiB": 2 << 10, "2kb": 2 << 10,
		"500M": 500 << 20, "1.5G": 3 << 29, " 2 GiB ": 2 << 30, "1T": 1 << 40, ".5K": 512,
	} {
		got, err := ParseSize(text)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", text, got, err, want)
		}
	}
	// what strconv.ParseFloat reads but is no size, and sizes int64 cannot hold
	for _, text := range []string{"", "NaN", "nan", "Inf", "+Inf", "-Inf", "infinity", "-1", "-0.5G", "1e3",
		"0x10", "1_000", "M", "5X", "1.G", "8E", "8388608T", "1e400", "99999999999999999999"} {
		n, err := ParseSize(text)
		if err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", text, n)
			continue
		}
		if !strings.Contains(err.Error(), "size") || !strings.Contains(err.Error(), text) {
			t.Errorf("ParseSize(%q): %v does not say which size is wrong", text, err)
		}
	}
	// just below 8 EiB is the largest
	if n, err := ParseSize("8388607T"); err != nil || n != 8388607<<40 {
		t.Errorf("ParseSize(8388607T) = %d, %v", n, err)
	}
}

func TestParseMaxUnused(t *testing.T) {
	for text, want := range map[string]MaxUnused{
		"5%": {Percent: 5}, "0%": {}, "100%": {Percent: 100}, "2.5%": {Percent: 2.5},
		"unlimited": {Unlimited: true}, "500M": {Bytes: 500 << 20}, "0": {},
	} {
		got, err := ParseMaxUnused(text)
		if err != nil || got != want {
			t.Errorf("ParseMaxUnused(%q) = %+v, %v; want %+v", text, got, err, want)
		}
	}
	for _, text := range []string{"NaN%", "nan%", "Inf%", "-1%", "101%", "-5M", "NaN", "Inf", "5%%", ""} {
		if got, err := ParseMaxUnused(text); err == nil {
			t.Errorf("ParseMaxUnused(%q) = %+v, want an error", text, got)
		}
	}
}

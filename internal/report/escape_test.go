package report

import "testing"

func TestEscapeName(t *testing.T) {
	for _, c := range []struct {
		in        string
		backslash bool
		want      string
	}{
		{"plain name.txt", true, "plain name.txt"},
		{"línea", true, "línea"},
		{"two\nlines\tand tab", false, `two\nlines\tand tab`},
		{"bell\x07 del\x7f", false, `bell\x07 del\x7f`},
		{"bad\xffbyte", false, `bad\xffbyte`},
		{`C:\data`, false, `C:\data`},
		{`a\b`, true, `a\\b`},
		{"a\\b\n", true, `a\\b\n`},
	} {
		if got := EscapeName(c.in, c.backslash); got != c.want {
			t.Errorf("EscapeName(%q, %v) = %q, want %q", c.in, c.backslash, got, c.want)
		}
	}
}

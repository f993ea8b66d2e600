package report

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// EscapeName makes a name readable on one line, as ls and the status page
// show it: control characters and invalid UTF-8 bytes are escaped (\n, \t,
// \xNN), and with backslash also backslashes (\\), so that what is shown can
// be read back; other names come back as they are.
func EscapeName(p string, backslash bool) string {
	clean := utf8.ValidString(p)
	for i := 0; clean && i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f || backslash && p[i] == '\\' {
			clean = false
		}
	}
	if clean {
		return p
	}
	var b strings.Builder
	for i := 0; i < len(p); {
		r, size := utf8.DecodeRuneInString(p[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, p[i])
		case r == '\\' && backslash:
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteString(p[i : i+size])
		}
		i += size
	}
	return b.String()
}

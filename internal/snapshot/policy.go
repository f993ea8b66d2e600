package snapshot

import (
	"fmt"
	"strings"
)

// Policy says, per source, how hard to try for a snapshot.
type Policy string

// Policies.
const (
	// Off reads the source live.
	Off Policy = "off"
	// Auto snaps when a provider fits, else reads live and notes it.
	Auto Policy = "auto"
	// On snaps when a provider fits, else reads live with a warning.
	On Policy = "on"
	// Required fails the run before anything is created when no provider fits.
	Required Policy = "required"
)

// ParsePolicy parses off, auto, on or required ("" means auto).
func ParsePolicy(s string) (Policy, error) {
	switch p := Policy(strings.ToLower(strings.TrimSpace(s))); p {
	case "":
		return Auto, nil
	case Off, Auto, On, Required:
		return p, nil
	}
	return "", fmt.Errorf("snapshot policy %q: must be off, auto, on or required", s)
}

// String implements fmt.Stringer.
func (p Policy) String() string { return string(p) }

// Package outcome names what happened to each file of a backup. Outcomes are
// stored in the snapshot with every file, counted in its manifest and
// reported to the user.
package outcome

import "fmt"

// Outcome is the class of one file's result.
type Outcome uint8

// The outcomes, in order of increasing trouble.
const (
	OK          Outcome = iota // unchanged since the parent, or read whole
	OKSnapshot                 // read from a snapshot or clone
	Changed                    // read live and it changed while read: stored, with potential integrity problems
	SkippedOpen                // open for writing or locked and the policy said skip: previous version kept if any
	Failed                     // could not be read: previous version kept if any, marked stale
	Stale                      // not read this run; the stored content is the parent's
	numOutcomes
)

var names = [...]string{"ok", "ok-snapshot", "changed", "skipped-open", "failed", "stale"}

// Letters are the first column of the run's file log.
var letters = [...]byte{'.', 'S', 'C', 'O', 'F', 'T'}

// All lists every outcome in order.
func All() []Outcome {
	out := make([]Outcome, numOutcomes)
	for i := range out {
		out[i] = Outcome(i)
	}
	return out
}

func (o Outcome) String() string {
	if o < numOutcomes {
		return names[o]
	}
	return fmt.Sprintf("outcome(%d)", uint8(o))
}

// Letter is the one-letter code used in the file log.
func (o Outcome) Letter() byte {
	if o < numOutcomes {
		return letters[o]
	}
	return '?'
}

// Whole tells whether the stored content is a state the file really had.
func (o Outcome) Whole() bool { return o == OK || o == OKSnapshot }

// Parse turns a name back into an outcome.
func Parse(s string) (Outcome, error) {
	for i, n := range names {
		if n == s {
			return Outcome(i), nil
		}
	}
	return 0, fmt.Errorf("unknown outcome %q (want one of ok, ok-snapshot, changed, skipped-open, failed, stale)", s)
}

// MarshalText implements encoding.TextMarshaler.
func (o Outcome) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (o *Outcome) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*o = v
	return nil
}

// Reasons for a failed or skipped file.
const (
	ReasonLocked     = "locked"
	ReasonOpen       = "open-for-writing"
	ReasonPermission = "permission"
	ReasonMissing    = "missing"    // a path to back up did not exist when the run looked
	ReasonNotFrozen  = "not-frozen" // its writer did not freeze it in time and no snapshot holds it whole
	ReasonVanished   = "vanished"   // listed, then gone before it was read
	ReasonIO         = "io"
)

// Counts holds the number of files per outcome.
type Counts map[Outcome]int64

// Add counts one file.
func (c Counts) Add(o Outcome) { c[o]++ }

// NotWhole is the number of files whose stored state is not a state they
// really had, or that were not read.
func (c Counts) NotWhole() int64 {
	var n int64
	for o, v := range c {
		if !o.Whole() {
			n += v
		}
	}
	return n
}

//go:build !unix

package livefile

import "os"

// processAlive tells whether a process with this pid exists; where that
// cannot be told for sure, it says yes, so leftovers are kept rather than a
// live run's work removed.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	p.Release()
	return true
}

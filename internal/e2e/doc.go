// Package e2e holds end-to-end tests that build the stillpoint binary and
// run it against real directories, killed processes, damaged repositories
// and full disks. It has no non-test code.
package e2e

// Package ci holds the skip rule of tests that need root or a server: they
// skip on a developer's machine and must run (so fail) in CI.
package ci

import (
	"os"
	"testing"
)

// Enabled tells whether the tests run in CI (CI=true).
func Enabled() bool { return os.Getenv("CI") == "true" }

// NeedRoot skips the test unless it runs as root; in CI it fails instead.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if Enabled() {
		t.Fatal("this test needs root, and CI runs as root")
	}
	t.Skip("needs root")
}

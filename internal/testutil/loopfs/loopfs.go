// Package loopfs creates real filesystems on loop devices for tests that
// need btrfs, XFS or ext4. Every mount and loop device it creates is undone
// by t.Cleanup, also when the test fails.
//
// Tests that need it are skipped when not root or a mkfs tool is missing,
// except in CI (env CI=true), where they fail: a test that proves the
// product must not vanish silently from the CI run.
package loopfs

import (
	"os"
	"testing"
)

// skipOrFail skips the test locally and fails it in CI.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("loopfs: "+format+" (CI=true, so this is a failure, not a skip)", args...)
	}
	t.Skipf("loopfs: "+format, args...)
}

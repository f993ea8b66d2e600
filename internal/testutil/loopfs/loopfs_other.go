//go:build !linux

package loopfs

import (
	"runtime"
	"testing"
)

// Btrfs needs Linux.
func Btrfs(t testing.TB, sizeMiB int) string { return unsupported(t, "btrfs") }

// XFS needs Linux.
func XFS(t testing.TB, sizeMiB int) string { return unsupported(t, "xfs") }

// Ext4 needs Linux.
func Ext4(t testing.TB, sizeMiB int) string { return unsupported(t, "ext4") }

// Tmpfs needs Linux.
func Tmpfs(t testing.TB, sizeMiB int) string { return unsupported(t, "tmpfs") }

func unsupported(t testing.TB, fs string) string {
	t.Helper()
	skipOrFail(t, "loopback %s needs Linux, this is %s", fs, runtime.GOOS)
	return ""
}

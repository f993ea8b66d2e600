//go:build !linux

// The torture benchmark needs Linux: loop btrfs/XFS mounts, fanotify and a
// PostgreSQL server run as another user.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "torture: linux only")
	os.Exit(1)
}

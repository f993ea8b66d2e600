//go:build !windows

package pathmap

import "path/filepath"

// Native is the rules of the platform the program runs on.
var Native = Unix

// Abs returns the clean absolute OS path of p, resolving a relative path
// against the current directory.
func Abs(p string) (string, error) { return filepath.Abs(p) }

package snapshot

import "path/filepath"

// evalSymlinks resolves the symlinks of a source (/tmp is /private/tmp).
func evalSymlinks(p string) (string, error) { return filepath.EvalSymlinks(p) }

// macPath is p as the APFS code takes it: a slash path, as on macOS.
func macPath(p string) string { return p }

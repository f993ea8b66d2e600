//go:build !linux

package backend

// loadDirect reads through the page cache everywhere but on Linux.
func (l *Local) loadDirect(string, int64, []byte) (bool, error) { return false, nil }

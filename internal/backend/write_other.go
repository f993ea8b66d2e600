//go:build !linux

package backend

import "os"

// writeSynced writes data to the new, empty file f and fsyncs it.
func (l *Local) writeSynced(f *os.File, data []byte) error {
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Sync()
}

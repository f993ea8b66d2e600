//go:build !linux

package backend

import "os"

func (directState) readPack(f *os.File, h Handle, offset int64, buf []byte) error {
	return readFull(f, h, offset, buf)
}

package backend

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// readPack reads len(buf) bytes of the pack f at offset. When buf lies at
// offset's place within its block (see ReadAlign), the aligned middle of a
// long read goes past the page cache, like a pack's write: it saves the
// kernel's copy out of the cache and the new pages it would fill first,
// and the disk gets the read as a few large requests at once instead of
// readahead's window at a time. The edges, and any read a file system
// refuses direct I/O for, go through the cache and are dropped from it.
func (d *directState) readPack(f *os.File, h Handle, offset int64, buf []byte) error {
	head := int((ReadAlign - offset%ReadAlign) % ReadAlign)
	if head > len(buf) || d.noDirectRead.Load() || !sameBlockPlace(buf, offset) {
		return readDropped(f, h, offset, buf)
	}
	bulk := (len(buf) - head) &^ (ReadAlign - 1)
	if bulk < directMin {
		return readDropped(f, h, offset, buf)
	}
	// the edges are a block each: readahead would only fill the cache
	// around them
	_ = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_RANDOM)
	// the tail first: a file too short fails there, before any direct read
	if err := readDropped(f, h, offset+int64(head+bulk), buf[head+bulk:]); err != nil {
		return err
	}
	if err := readDropped(f, h, offset, buf[:head]); err != nil {
		return err
	}
	mid := buf[head : head+bulk]
	at := offset + int64(head)
	err := directReader(f, mid, at)
	if errors.Is(err, unix.EINVAL) {
		d.noDirectRead.Store(true)
		return readDropped(f, h, at, mid)
	}
	if err != nil {
		return fmt.Errorf("load %s: %w", h, err)
	}
	return nil
}

// readDropped reads buf at offset through the page cache and drops the
// pages of a long read again.
func readDropped(f *os.File, h Handle, offset int64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	if err := readFull(f, h, offset, buf); err != nil {
		return err
	}
	dropRead(f, offset, len(buf))
	return nil
}

// sameBlockPlace says whether buf's address and offset agree modulo ReadAlign.
func sameBlockPlace(buf []byte, offset int64) bool {
	return len(buf) > 0 && addrOf(buf)%ReadAlign == uintptr(offset%ReadAlign)
}

// directReader is readDirect; tests replace it to see a refusal.
var directReader = readDirect

// readDirect fills the aligned buf from f's aligned offset with O_DIRECT set
// on f (whose descriptor is this read's own). EINVAL means the file system
// refused direct I/O; nothing is to be trusted of buf then.
func readDirect(f *os.File, buf []byte, offset int64) error {
	fd := int(f.Fd())
	flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags|unix.O_DIRECT); err != nil {
		return err
	}
	n := 0
	for n < len(buf) {
		r, err := unix.Pread(fd, buf[n:], offset+int64(n))
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return err
		case r == 0:
			return io.ErrUnexpectedEOF
		}
		n += r
	}
	return nil
}

package restore

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A run of a file's content with at least directMin aligned bytes (the
// blobs of a big file that follow each other in a pack) is written past
// the page cache. The kernel would otherwise copy each byte into newly
// allocated cache pages (on a virtual machine that gives free memory back
// to its host, a fault in the host for each: 40% of a 4 GiB restore's CPU
// in perf), and hold gigabytes the machine's applications need until the
// disk has them. Blobs are cut by content, so neither their offsets in
// the file nor their addresses are aligned: the bulk is copied into an
// aligned buffer that stays hot in the CPU's caches, in pieces of
// directStage, and the unaligned edges go through the cache.
const (
	directMin   = 256 << 10
	directAlign = 4096
	directStage = 4 << 20
)

// directBuf is a writer's aligned buffer that the bulk of a run is copied
// into, and whether the target's file system refused direct I/O to it.
type directBuf struct {
	stage   []byte
	refused bool
}

// writeRun writes the run of n bytes in bs to o at off.
func (d *directBuf) writeRun(o *outFile, bs [][]byte, off, n int64) error {
	end := off + n
	from, to := alignUp(off), end&^(directAlign-1)
	if to-from < directMin || d.refused {
		return o.writeAt(bs, off)
	}
	if err := o.writeAt(byteRange(bs, 0, from-off), off); err != nil {
		return err
	}
	err := d.writeDirect(o, bs, from-off, from, to)
	if errors.Is(err, unix.EINVAL) {
		// the file system takes no direct I/O, or not at this alignment
		d.refused = true
		err = o.writeAt(byteRange(bs, from-off, to-from), from)
	}
	if err != nil {
		return err
	}
	return o.writeAt(byteRange(bs, to-off, end-to), to)
}

// writeDirect writes file offsets [from, to), both aligned, from bs (whose
// byte skip is at from) with O_DIRECT set on o for as long.
func (d *directBuf) writeDirect(o *outFile, bs [][]byte, skip, from, to int64) error {
	if d.stage == nil {
		buf := make([]byte, directStage+directAlign)
		pad := int(alignUp(int64(addr(buf))) - int64(addr(buf)))
		d.stage = buf[pad : pad+directStage]
	}
	flags, err := unix.FcntlInt(uintptr(o.fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if err := setFlags(o.fd, flags|unix.O_DIRECT); err != nil {
		return err
	}
	for pos := from; pos < to && err == nil; {
		n := min(int64(directStage), to-pos)
		copyRange(d.stage[:n], bs, skip+pos-from)
		err = o.writeAt([][]byte{d.stage[:n]}, pos)
		pos += n
	}
	if cerr := setFlags(o.fd, flags); err == nil {
		err = cerr
	}
	return err
}

// setFlags sets the file status flags of fd; tests replace it to see a
// file system refuse O_DIRECT.
var setFlags = func(fd, flags int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags)
	return err
}

func alignUp(n int64) int64 { return (n + directAlign - 1) &^ (directAlign - 1) }

// byteRange is the slices of bs that hold bytes [from, from+n) of their
// concatenation.
func byteRange(bs [][]byte, from, n int64) [][]byte {
	var out [][]byte
	for _, b := range bs {
		if n <= 0 {
			break
		}
		if from >= int64(len(b)) {
			from -= int64(len(b))
			continue
		}
		part := b[from:min(int64(len(b)), from+n)]
		out = append(out, part)
		n -= int64(len(part))
		from = 0
	}
	return out
}

// copyRange fills dst with the bytes of bs's concatenation from offset from on.
func copyRange(dst []byte, bs [][]byte, from int64) {
	for _, b := range byteRange(bs, from, int64(len(dst))) {
		dst = dst[copy(dst, b):]
	}
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

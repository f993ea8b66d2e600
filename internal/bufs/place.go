package bufs

import "unsafe"

// PadTo is how many bytes to skip from position pos so that it agrees with
// offset modulo align (a power of two): the position at offset's place
// within a block.
func PadTo(pos, offset int64, align int) int {
	a := int64(align)
	return int((offset%a - pos%a + a) % a)
}

// Placed returns n bytes of buf, grown when it is too small, that start at
// offset's place within a block of align bytes of memory, and the buffer to
// keep for the next call. Reading offset into such bytes lets an aligned
// reader take the middle of the range straight into them.
func Placed(buf []byte, offset int64, n, align int) (b, keep []byte) {
	keep = Grow(buf, n+align)
	at := PadTo(int64(uintptr(unsafe.Pointer(unsafe.SliceData(keep)))), offset, align)
	return keep[at : at+n], keep
}

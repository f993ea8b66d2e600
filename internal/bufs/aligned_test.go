package bufs

import (
	"testing"
	"unsafe"
)

func TestAlignedFor(t *testing.T) {
	var a Aligned
	for _, off := range []int64{0, 1, 4095, 4096, 1<<20 + 17} {
		for _, n := range []int{1, 4096, 3<<20 + 5} {
			b := a.For(n, off)
			if len(b) != n {
				t.Fatalf("For(%d, %d): %d bytes", n, off, len(b))
			}
			if got := int64(uintptr(unsafeAddr(b)) % IOAlign); got != off%IOAlign {
				t.Fatalf("For(%d, %d): at %d within a page, want %d", n, off, got, off%IOAlign)
			}
		}
	}
}

func unsafeAddr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

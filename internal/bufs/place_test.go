package bufs

import (
	"testing"
	"unsafe"
)

func TestPadTo(t *testing.T) {
	for _, c := range []struct {
		pos, off int64
		want     int
	}{{0, 0, 0}, {0, 1, 1}, {1, 0, 4095}, {4095, 4095, 0}, {100, 8292, 0}, {5000, 3, 3 + 4096 - 904}, {4096, 12345, 12345 % 4096}} {
		got := PadTo(c.pos, c.off, 4096)
		if got != c.want || (c.pos+int64(got))%4096 != c.off%4096 {
			t.Errorf("PadTo(%d, %d) = %d, want %d", c.pos, c.off, got, c.want)
		}
	}
}

// TestPlaced: the bytes lie at their offset's place within a block, in one
// reused buffer; a smaller request after a larger one reuses it.
func TestPlaced(t *testing.T) {
	var keep []byte
	for _, c := range []struct {
		off int64
		n   int
	}{{0, 8 << 20}, {1, 100}, {4095, 3 << 20}, {4096, 5 << 20}, {12345, 8<<20 + 1}, {77, 1 << 20}} {
		before := cap(keep)
		var b []byte
		b, keep = Placed(keep, c.off, c.n, 4096)
		if len(b) != c.n {
			t.Fatalf("at %d: %d bytes, want %d", c.off, len(b), c.n)
		}
		if got := int64(uintptr(unsafe.Pointer(unsafe.SliceData(b))) % 4096); got != c.off%4096 {
			t.Errorf("at %d: the bytes lie at %d within their block, want %d", c.off, got, c.off%4096)
		}
		if c.n+4096 <= before && cap(keep) != before {
			t.Errorf("at %d, %d bytes: the buffer of %d was not reused", c.off, c.n, before)
		}
	}
}

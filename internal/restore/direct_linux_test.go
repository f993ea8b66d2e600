package restore

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// byteRange and copyRange see the concatenation of the slices, whatever the
// range and however the slices cut it.
func TestByteRange(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 500 {
		var bs [][]byte
		var all []byte
		for range r.IntN(6) + 1 {
			b := make([]byte, r.IntN(40))
			for i := range b {
				b[i] = byte(r.Uint32())
			}
			bs, all = append(bs, b), append(all, b...)
		}
		from := r.Int64N(int64(len(all)) + 1)
		n := r.Int64N(int64(len(all)) - from + 1)
		if got := bytes.Join(byteRange(bs, from, n), nil); !bytes.Equal(got, all[from:from+n]) {
			t.Fatalf("byteRange(%d, %d) of %d bytes: %x, want %x", from, n, len(all), got, all[from:from+n])
		}
		dst := make([]byte, n)
		copyRange(dst, bs, from)
		if !bytes.Equal(dst, all[from:from+n]) {
			t.Fatalf("copyRange(%d, %d) of %d bytes: %x, want %x", from, n, len(all), dst, all[from:from+n])
		}
	}
}

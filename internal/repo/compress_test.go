package repo

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestCompressSkipsIncompressibleChunks(t *testing.T) {
	c, err := newCompressor("fastest")
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.NewChaCha8([32]byte{7})
	random := make([]byte, 1<<20)
	rng.Read(random)
	text := bytes.Repeat([]byte("level=info msg=\"request served\" path=/api/items status=200\n"), (1<<20)/58)

	// text in the middle of random data: the middle sample finds it
	mixed := bytes.Clone(random)
	copy(mixed[len(mixed)/2-64<<10:], text[:128<<10])

	// a small chunk is always compressed in full, whatever its samples say
	smallMixed := bytes.Clone(random[:64<<10])
	copy(smallMixed[20<<10:], text[:40<<10])

	for _, tc := range []struct {
		name       string
		data       []byte
		compressed bool
	}{
		{"random", random, false},
		{"text", text, true},
		{"text in the middle", mixed, true},
		{"small chunk, text between the sample points", smallMixed, true},
	} {
		dst := make([]byte, 0, compressBound(len(tc.data)))
		out := c.compress(dst, tc.data)
		if (out != nil) != tc.compressed {
			t.Errorf("%s: compressed=%v, want %v", tc.name, out != nil, tc.compressed)
			continue
		}
		if out != nil {
			back, err := c.decompress(out, len(tc.data), nil)
			if err != nil || !bytes.Equal(back, tc.data) {
				t.Errorf("%s: round trip failed: %v", tc.name, err)
			}
		}
	}
}

func TestWorthTryingSamplesWithASmallScratch(t *testing.T) {
	c, err := newCompressor("fastest")
	if err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 2<<20)
	rand.NewChaCha8([32]byte{9}).Read(random)
	text := bytes.Repeat([]byte("ts=2026-12-01 level=debug msg=\"cache hit\" key=items/42\n"), (2<<20)/55)
	scratch := make([]byte, 0, compressBound(sampleLen))
	if c.worthTrying(scratch, random) {
		t.Error("a random chunk is worth trying")
	}
	if !c.worthTrying(scratch, text) {
		t.Fatal("a text chunk is not worth trying")
	}
	if !c.worthTrying(nil, text[:sampleMin-1]) {
		t.Error("a chunk below sampleMin is not tried (no scratch needed)")
	}
	out := c.compressAll(make([]byte, 0, compressBound(len(text))), text)
	if out == nil {
		t.Fatal("compressAll stored text uncompressed")
	}
	back, err := c.decompress(out, len(text), nil)
	if err != nil || !bytes.Equal(back, text) {
		t.Fatalf("round trip: %v", err)
	}
	off, err := newCompressor("off")
	if err != nil {
		t.Fatal(err)
	}
	if off.worthTrying(scratch, text) {
		t.Error("compression off, yet worth trying")
	}
}

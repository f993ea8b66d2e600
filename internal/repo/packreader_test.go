package repo

import (
	"bytes"
	"crypto/rand"
	"testing"
	"unsafe"

	"github.com/stillpoint-backup/stillpoint/internal/bufs"
)

// A reader of many blobs reuses its buffers: the pack span and the
// decompression buffer. Each blob must still come out whole, and a
// compressed blob must land in the buffer it was given when that fits.
func TestBlobIntoReusesBuffers(t *testing.T) {
	r, _ := newTestRepo(t)
	text := bytes.Repeat([]byte("a line of log text that compresses well\n"), 2000)
	random := make([]byte, 50_000)
	_, _ = rand.Read(random)
	var ids []ID
	for _, data := range [][]byte{text, random, text[:1000]} {
		id := r.Hash(data)
		if _, err := r.SaveBlob(bg, DataBlob, id, data); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := r.Flush(bg); err != nil {
		t.Fatal(err)
	}
	var span, plain []byte
	for round := 0; round < 2; round++ {
		for i, want := range [][]byte{text, random, text[:1000]} {
			bi, ok := r.LookupBlob(ids[i])
			if !ok {
				t.Fatalf("blob %d not indexed", i)
			}
			if compressed := bi.Flags&flagCompressed != 0; compressed != (i != 1) {
				t.Fatalf("blob %d: compressed %v, the test needs text compressed and random data stored", i, compressed)
			}
			pr := r.OpenPack(bi.Pack)
			span = bufs.Grow(span, int(bi.Length))
			if err := pr.ReadRangeInto(bg, int64(bi.Offset), span); err != nil {
				t.Fatal(err)
			}
			plain = bufs.Grow(plain, DecompressBuf(int(bi.RawLen)))
			got, err := pr.BlobInto(bi, span, plain)
			if err != nil {
				t.Fatalf("round %d blob %d: %v", round, i, err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("round %d blob %d: plaintext differs", round, i)
			}
			if bi.Flags&flagCompressed != 0 && unsafe.SliceData(got) != unsafe.SliceData(plain) {
				t.Errorf("round %d blob %d: compressed blob was not decompressed into the given buffer", round, i)
			}
		}
	}
	// a buffer too small is not an error: the blob gets one of its own
	bi, _ := r.LookupBlob(ids[0])
	sealed, err := r.OpenPack(bi.Pack).ReadRange(bg, int64(bi.Offset), int64(bi.Length))
	if err != nil {
		t.Fatal(err)
	}
	got, err := r.OpenPack(bi.Pack).BlobInto(bi, sealed, make([]byte, 10))
	if err != nil || !bytes.Equal(got, text) {
		t.Fatalf("small buffer: %v", err)
	}
}

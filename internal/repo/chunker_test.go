package repo

import (
	"context"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

func chunkIDs(t *testing.T, r *Repository, data []byte) map[ID]bool {
	c, err := r.NewChunker()
	if err != nil {
		t.Fatal(err)
	}
	ids := map[ID]bool{}
	total := 0
	chunkAll(t, c, data, func(chunk []byte) {
		p := r.cfg.Chunker
		if len(chunk) > p.Max || (len(chunk) < p.Min && total+len(chunk) != len(data)) {
			t.Fatalf("chunk of %d bytes outside [%d, %d]", len(chunk), p.Min, p.Max)
		}
		total += len(chunk)
		ids[r.Hash(chunk)] = true
	})
	if total != len(data) {
		t.Fatalf("chunks add up to %d of %d bytes", total, len(data))
	}
	return ids
}

// Content-defined chunking resynchronises after an insertion: only the
// chunks around the edit change, so an edited file dedups against its past.
func TestChunkerResynchronises(t *testing.T) {
	r, err := Init(context.Background(), backend.NewMem(), Credential{KeyFile: NewKeyFileSecret()}, DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	data := benchData("random", 64<<20)
	edited := append(append(append([]byte(nil), data[:20<<20]...), []byte("an insertion of some bytes")...), data[20<<20:]...)
	a, b := chunkIDs(t, r, data), chunkIDs(t, r, edited)
	shared := 0
	for id := range b {
		if a[id] {
			shared++
		}
	}
	if len(a) < 30 || len(a) > 200 {
		t.Fatalf("%d chunks for 64 MiB: average size far from 1 MiB", len(a))
	}
	if changed := len(b) - shared; changed > 3 {
		t.Fatalf("an insertion changed %d of %d chunks", changed, len(b))
	}
	// a different key cuts elsewhere: chunk sizes do not reveal content
	r2, _ := Init(context.Background(), backend.NewMem(), Credential{KeyFile: NewKeyFileSecret()}, DefaultConfig)
	r2.hasher = r.hasher
	c := chunkIDs(t, r2, data)
	same := 0
	for id := range c {
		if a[id] {
			same++
		}
	}
	if same > len(a)/4 {
		t.Fatalf("two keys cut %d of %d chunks at the same places", same, len(a))
	}
}

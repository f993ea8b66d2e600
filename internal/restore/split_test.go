package restore

import (
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// TestSplitPack: a pack of many small files is cut into parts that cover
// its uses in order, each cut between two files and two blobs; a pack of
// few files, or with a large blob, is one part.
func TestSplitPack(t *testing.T) {
	mk := func(files, blobsPerFile int, raw uint32, shareEvery int) []blobUse {
		var uses []blobUse
		var last repo.ID
		for i := range files {
			f := &fileState{path: string(rune('a' + i%26))}
			for j := range blobsPerFile {
				id := repo.ID{byte(i), byte(i >> 8), byte(j)}
				if shareEvery > 0 && i%shareEvery == 1 && j == 0 {
					id = last // the same blob as the file before: a cut must not fall here
				}
				last = id
				uses = append(uses, blobUse{bi: repo.BlobInfo{ID: id, RawLen: raw}, f: f})
			}
		}
		return uses
	}
	for _, tc := range []struct {
		name      string
		uses      []blobUse
		wantParts int
	}{
		{"many small files", mk(400, 1, 4<<10, 0), packParts},
		{"shared blobs", mk(400, 2, 4<<10, 3), packParts},
		{"few files", mk(2*partMinFiles-1, 3, 4<<10, 0), 1},
		{"a large blob", mk(400, 1, partMaxRawLen+1, 0), 1},
		{"one file", mk(1, 300, 4<<10, 0), 1},
	} {
		parts := splitPack(tc.uses)
		if len(parts) != tc.wantParts {
			t.Errorf("%s: %d parts, want %d", tc.name, len(parts), tc.wantParts)
		}
		n := 0
		for k, p := range parts {
			if len(p) == 0 {
				t.Fatalf("%s: part %d is empty", tc.name, k)
			}
			if &p[0] != &tc.uses[n] {
				t.Fatalf("%s: part %d does not start where part %d ended", tc.name, k, k-1)
			}
			if n > 0 && (tc.uses[n].f == tc.uses[n-1].f || tc.uses[n].bi.ID == tc.uses[n-1].bi.ID) {
				t.Errorf("%s: cut %d falls inside a file or a blob", tc.name, k)
			}
			n += len(p)
		}
		if n != len(tc.uses) {
			t.Errorf("%s: parts hold %d uses of %d", tc.name, n, len(tc.uses))
		}
	}
}

package run

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/metered"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
)

// maxUnchangedRequests bounds what an unchanged backup asks of the store
// beyond the files a cache answers (keys, index, snapshots, tree packs):
// fewer than restic 0.19's 12 (docs/benchmarks.md, S3).
const maxUnchangedRequests = 11

// An unchanged backup asks the store for the config once, lists keys,
// the locks (before and after writing its own, without reading its own),
// the marks, the index and the snapshots once each, and writes its lock
// and snapshot and removes the lock: 10 requests on top of the loads that
// the cache of a remote repository answers.
func TestUnchangedBackupRequests(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for i := range 5 {
		mkfile(t, filepath.Join(src, fmt.Sprintf("d%d", i), "f.txt"), strings.Repeat("data ", 100*i+1))
	}
	pw := filepath.Join(dir, "password")
	mkfile(t, pw, "secret\n")
	// a file written just before a backup may be taken for one being
	// written during it, and read again by the next backup
	time.Sleep(2 * time.Second)
	backup := func() metered.Counts {
		t.Helper()
		a := Access{Repository: filepath.Join(dir, "repo"), PasswordFile: pw, Meter: NewMeter()}
		r, _, err := OpenOrCreate(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		o := BackupOptions{Sources: []Source{{Path: src, Snapshot: snapshot.Off, OpenFiles: livefile.DefaultConfig()}}, Host: "h"}
		if _, err := Backup(ctx, r, o); err != nil {
			t.Fatal(err)
		}
		return a.Meter.Counts()
	}
	backup()
	c := backup()
	t.Logf("unchanged backup: %s", countsString(c))

	want := map[backend.Kind]map[string]int64{
		backend.Config:    {metered.OpLoad: 1},
		backend.Keys:      {metered.OpList: 1},
		backend.Locks:     {metered.OpList: 2, metered.OpSave: 1, metered.OpRemove: 1},
		backend.Marks:     {metered.OpList: 1},
		backend.Indexes:   {metered.OpList: 1},
		backend.Snapshots: {metered.OpList: 1, metered.OpSave: 1},
	}
	cached := map[backend.Kind]bool{backend.Keys: true, backend.Indexes: true, backend.Snapshots: true, backend.Packs: true}
	// a directory above the source (the temporary directory) may have
	// changed: then the root tree is stored again, one pack and one index file
	written := c.Of(backend.Packs, metered.OpSave) + c.Of(backend.Indexes, metered.OpSave)
	if c.Of(backend.Packs, metered.OpSave) > 1 || written > 2 {
		t.Errorf("an unchanged backup wrote %d packs and index files", written)
	}
	var rest int64
	for _, k := range backend.Kinds {
		for _, op := range metered.Ops {
			n := c.Of(k, op)
			if op == metered.OpLoad && cached[k] || op == metered.OpSave && (k == backend.Packs || k == backend.Indexes) {
				continue
			}
			rest += n
			if n != want[k][op] {
				t.Errorf("%s %s: %d requests, want %d", k, op, n, want[k][op])
			}
		}
	}
	if rest > maxUnchangedRequests {
		t.Errorf("an unchanged backup made %d requests that no cache answers, want at most %d: %s", rest, maxUnchangedRequests, countsString(c))
	}
}

func mkfile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func countsString(c metered.Counts) string {
	var parts []string
	for _, k := range c.Kinds() {
		var ops []string
		for op, n := range c.ByKind[k] {
			ops = append(ops, fmt.Sprintf("%s %d", op, n))
		}
		sort.Strings(ops)
		parts = append(parts, k+": "+strings.Join(ops, ", "))
	}
	return fmt.Sprintf("%d requests; %s", c.Total, strings.Join(parts, "; "))
}

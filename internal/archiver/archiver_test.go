package archiver_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

func newRepo(t *testing.T) *repo.Repository {
	t.Helper()
	cfg := repo.DefaultConfig
	cfg.Chunker = repo.ChunkerParams{Algorithm: "jc-v1.0.0", Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}
	cfg.PackSize = 1 << 20
	r, err := repo.Init(context.Background(), backend.NewMem(), repo.Credential{Password: "pw"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func backup(t *testing.T, r *repo.Repository, parent repo.ID, paths ...string) *archiver.Result {
	t.Helper()
	a := archiver.New(r, &view.Live{}, archiver.Options{Parent: parent})
	res, err := a.Run(context.Background(), paths)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	return res
}

func TestRoundTripAndIncremental(t *testing.T) {
	src := t.TempDir()
	big := make([]byte, 3<<20)
	rand.Read(big)
	must(t, os.WriteFile(filepath.Join(src, "big"), big, 0o644))
	must(t, os.MkdirAll(filepath.Join(src, "d/e"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "d/e/small"), []byte("hello"), 0o600))
	must(t, os.WriteFile(filepath.Join(src, "empty"), nil, 0o600))
	must(t, os.Symlink("d/e/small", filepath.Join(src, "link")))

	r := newRepo(t)
	res := backup(t, r, repo.ID{}, src)
	if res.Stats.Files != 3 || res.Stats.BytesRead != int64(len(big)+5) {
		t.Fatalf("stats %+v", res.Stats)
	}
	res2 := backup(t, r, res.Tree, src)
	if res2.Stats.BytesRead != 0 || res2.Stats.FilesRead != 0 {
		t.Fatalf("incremental read content: %+v", res2.Stats)
	}
	if subtreeAt(t, r, res2.Tree, src) != subtreeAt(t, r, res.Tree, src) {
		t.Fatalf("unchanged tree got a new id")
	}
	dst := t.TempDir()
	rr, err := restore.Run(context.Background(), r, res2.Tree, restore.Options{Target: dst})
	if err != nil || rr.Errors != 0 {
		t.Fatalf("restore: %v %+v", err, rr)
	}
	got, err := os.ReadFile(below(dst, src, "big"))
	must(t, err)
	if !bytes.Equal(got, big) {
		t.Fatal("big differs")
	}
	if _, err := os.Lstat(filepath.Join(src, "link")); err != nil {
		return // Wine's CreateSymbolicLink reports success and makes nothing
	}
	l, err := os.Readlink(below(dst, src, "link"))
	if err != nil || l != "d/e/small" {
		t.Fatalf("link %q %v", l, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A second backup of an unchanged tree of 100,000 files reads no content.
func TestIncrementalManyFilesReadsNothing(t *testing.T) {
	if testing.Short() && !ci.Enabled() {
		t.Skip("creates 100,000 files")
	}
	src := t.TempDir()
	const dirs, perDir = 200, 500
	for d := range dirs {
		dir := filepath.Join(src, fmt.Sprintf("d%03d", d))
		must(t, os.Mkdir(dir, 0o755))
		for f := range perDir {
			must(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), []byte(fmt.Sprintf("%d/%d", d, f)), 0o644))
		}
	}
	r := newRepo(t)
	first := backup(t, r, repo.ID{}, src)
	if first.Stats.Files != dirs*perDir || first.Stats.FilesRead != dirs*perDir {
		t.Fatalf("first backup: %+v", first.Stats)
	}
	second := backup(t, r, first.Tree, src)
	if second.Stats.BytesRead != 0 || second.Stats.FilesRead != 0 {
		t.Fatalf("unchanged incremental read %d bytes of %d files", second.Stats.BytesRead, second.Stats.FilesRead)
	}
	if subtreeAt(t, r, second.Tree, src) != subtreeAt(t, r, first.Tree, src) {
		t.Fatal("unchanged tree stored anew")
	}
	// one changed file is read, and only it
	must(t, os.WriteFile(filepath.Join(src, "d007", "f123"), []byte("changed!"), 0o644))
	third := backup(t, r, second.Tree, src)
	if third.Stats.FilesRead != 1 || third.Stats.BytesRead != int64(len("changed!")) {
		t.Fatalf("after one change: read %d files, %d bytes", third.Stats.FilesRead, third.Stats.BytesRead)
	}
}

// below is where a restore to target writes the file name in the backed-up
// directory src: target/src/name, on Windows target\C\...\name for C:\....
func below(target, src, name string) string {
	if rp, err := pathmap.Native.ToRepo(src); err == nil {
		src = filepath.FromSlash(rp)
	}
	return filepath.Join(target, src, name)
}

// subtreeAt returns the tree id of the directory at an absolute path.
func subtreeAt(t *testing.T, r *repo.Repository, root repo.ID, p string) repo.ID {
	t.Helper()
	if rp, err := pathmap.Native.ToRepo(p); err == nil {
		p = rp // C:\Temp\x is /C/Temp/x in the tree
	}
	id := root
	for _, name := range strings.Split(strings.Trim(p, "/"), "/") {
		tree, err := r.LoadTree(context.Background(), id)
		must(t, err)
		n := tree.Find(name)
		if n == nil {
			t.Fatalf("%s: %q not in snapshot", p, name)
		}
		id = n.Subtree
	}
	return id
}

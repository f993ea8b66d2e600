package restore_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/filter"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
)

// windowsTree stores, as a Windows backup does (docs/format.md, Trees),
// C:\data\File.txt, C:\data\Sub\x.bin and \\srv\share\y.txt.
func windowsTree(t *testing.T, r *repo.Repository) repo.ID {
	t.Helper()
	ctx := context.Background()
	file := func(name, data string) *repo.Node {
		id := r.Hash([]byte(data))
		if _, err := r.SaveBlob(ctx, repo.DataBlob, id, []byte(data)); err != nil {
			t.Fatal(err)
		}
		// what Go reports on Windows: no owner, 0666, one link
		return &repo.Node{Name: name, Type: repo.NodeFile, Mode: 0o666, Size: uint64(len(data)), Mtime: 1.7e18, Ctime: 1.7e18, Links: 1, Content: []repo.ID{id}}
	}
	dir := func(name string, nodes ...*repo.Node) *repo.Node {
		tree := &repo.Tree{Nodes: nodes}
		tree.Sort()
		id, err := r.SaveTree(ctx, tree)
		if err != nil {
			t.Fatal(err)
		}
		return &repo.Node{Name: name, Type: repo.NodeDir, Mode: 0o777, Mtime: 1.7e18, Ctime: 1.7e18, Links: 1, Subtree: id}
	}
	root := dir("",
		dir("C", dir("data", file("File.txt", "hello"), dir("Sub", file("x.bin", "binary")))),
		dir("UNC", dir("srv", dir("share", file("y.txt", "on a share")))),
	)
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return root.Subtree
}

// A Windows snapshot restores below the target (on Linux too), a drive and a
// share as directories (DIR/C/data, DIR/UNC/srv/share), with patterns
// written the Windows way and matched without case.
func TestRestoreWindowsTreeBelowTarget(t *testing.T) {
	ctx := context.Background()
	r, err := repo.Init(ctx, backend.NewMem(), repo.Credential{Password: "x"}, repo.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	root := windowsTree(t, r)
	rules := pathmap.ForPaths([]string{`C:\data`, `\\srv\share`})
	if !rules.IsWindows() {
		t.Fatal("the manifest's paths are Windows paths")
	}

	all := t.TempDir()
	res, err := restore.Run(ctx, r, root, restore.Options{Target: all})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Files != 3 {
		t.Fatalf("restore: %+v", res)
	}
	for p, want := range map[string]string{"C/data/File.txt": "hello", "C/data/Sub/x.bin": "binary", "UNC/srv/share/y.txt": "on a share"} {
		got, err := os.ReadFile(filepath.Join(all, p))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q, %v", p, got, err)
		}
	}

	inc, err := filter.CompileAllFor(rules, []string{`c:\DATA`})
	if err != nil {
		t.Fatal(err)
	}
	exc, err := filter.CompileAllFor(rules, []string{`*.BIN`})
	if err != nil {
		t.Fatal(err)
	}
	some := t.TempDir()
	res, err = restore.Run(ctx, r, root, restore.Options{Target: some, Select: filter.Selector{Include: inc, Exclude: exc}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Files != 1 {
		t.Fatalf("restore with patterns: %+v", res)
	}
	if _, err := os.Stat(filepath.Join(some, "C/data/File.txt")); err != nil {
		t.Error(err)
	}
	for _, p := range []string{"C/data/Sub/x.bin", "UNC"} {
		if _, err := os.Stat(filepath.Join(some, p)); !os.IsNotExist(err) {
			t.Errorf("%s restored: %v", p, err)
		}
	}
}

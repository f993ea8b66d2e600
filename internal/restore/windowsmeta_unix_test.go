//go:build unix

package restore_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
	"github.com/stillpoint-backup/stillpoint/internal/winmeta"
)

// A Windows snapshot restored on Unix: content and mtimes as always, modes
// from the read-only attribute (never Go's world-writable 0666), the
// restoring user as owner, and one note for what Unix cannot hold.
func TestRestoreWindowsMetadataOnUnix(t *testing.T) {
	ctx := context.Background()
	r, err := repo.Init(ctx, backend.NewMem(), repo.Credential{Password: "x"}, repo.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	blob := func(data string) repo.ID {
		id := r.Hash([]byte(data))
		if _, err := r.SaveBlob(ctx, repo.DataBlob, id, []byte(data)); err != nil {
			t.Fatal(err)
		}
		return id
	}
	sd := []byte{1, 0, 4, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 2, 0, 8, 0, 0, 0, 0, 0}
	zone := "[ZoneTransfer]\r\nZoneId=3\r\n"
	file := func(name, data string, attrs uint32) *repo.Node {
		return &repo.Node{Name: name, Type: repo.NodeFile, Mode: 0o666, Size: uint64(len(data)), Mtime: 1.7e18, Ctime: 1.7e18,
			Links: 1, Content: []repo.ID{blob(data)}, Attrs: attrs, Created: 1.6e18, SD: sd, SDParts: repo.SDOwner | repo.SDDACL}
	}
	ro := file("ro.txt", "read-only", winmeta.AttrReadOnly|winmeta.AttrArchive)
	hidden := file("hidden.exe", "MZ", winmeta.AttrHidden|winmeta.AttrSystem|winmeta.AttrArchive)
	hidden.Streams = []repo.Stream{{Name: "Zone.Identifier", Size: uint64(len(zone)), Content: []repo.ID{blob(zone)}}}
	plain := file("plain.txt", "plain", winmeta.AttrArchive)
	tree := &repo.Tree{Nodes: []*repo.Node{ro, hidden, plain}}
	tree.Sort()
	sub, err := r.SaveTree(ctx, tree)
	if err != nil {
		t.Fatal(err)
	}
	root, err := r.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: "data", Type: repo.NodeDir, Mode: 0o777, Mtime: 1.7e18,
		Links: 1, Subtree: sub, Attrs: winmeta.AttrDirectory}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	target := t.TempDir()
	var events []restore.Event
	res, err := restore.Run(ctx, r, root, restore.Options{Target: target, OnEvent: func(e restore.Event) { events = append(events, e) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 0 || res.Files != 3 {
		t.Fatalf("restore: %+v %+v", res, events)
	}
	for name, mode := range map[string]os.FileMode{"data": 0o755, "data/ro.txt": 0o444, "data/hidden.exe": 0o644, "data/plain.txt": 0o644} {
		fi, err := os.Stat(filepath.Join(target, name))
		if err != nil || fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %v, %v; want %v", name, fi.Mode().Perm(), err, mode)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(target, "data/hidden.exe")); string(b) != "MZ" {
		t.Errorf("content %q", b)
	}
	if entries, _ := os.ReadDir(filepath.Join(target, "data")); len(entries) != 3 {
		t.Errorf("streams became files: %v", entries)
	}
	if len(events) != 1 || events[0].Kind != "warning" {
		t.Fatalf("events %+v, want one note", events)
	}
	msg := events[0].Message
	for _, want := range []string{"security descriptor of 3 entries", "alternate data streams of 1 entries (first /data/hidden.exe): Zone.Identifier",
		"attributes HS of 1 entries", "creation time of 3 entries"} {
		if !strings.Contains(msg, want) {
			t.Errorf("note %q lacks %q", msg, want)
		}
	}
}

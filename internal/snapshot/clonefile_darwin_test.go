package snapshot

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func readFile(t *testing.T, s Snapshot, p string) (string, Consistency) {
	t.Helper()
	f, err := s.View().Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), OriginOf(f)
}

// TestClonefile: on APFS (the temporary directory of a Mac) a file opened
// through the view is its state when opened, whatever is written after;
// Clone keeps a named clone that the view serves; Release leaves nothing.
func TestClonefile(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	staging := filepath.Join(base, "staging")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(src, "Photos.sqlite")
	if err := os.WriteFile(file, []byte("one"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Clonefile{CloneOnOpen: true, Dir: staging}
	fit, err := c.Detect(src)
	if err != nil || !fit.OK || fit.Consistency != File {
		t.Fatalf("Detect: %+v %v (the temporary directory should be on APFS)", fit, err)
	}
	snap, err := c.Create(context.Background(), []string{src}, NewLabel("clonefile-test"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := snap.View().Open(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(f)
	if string(b) != "one" || OriginOf(f) != File {
		t.Fatalf("read %q (origin %s) after a write: want the clone's %q", b, OriginOf(f), "one")
	}
	f.Close()
	if err := snap.(Cloner).Clone(file); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte("three"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, origin := readFile(t, snap, file); got != "two" || origin != File {
		t.Fatalf("named clone read %q (%s), want %q", got, origin, "two")
	}
	if err := snap.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(staging); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("staging directory left: %v", err)
	}
}

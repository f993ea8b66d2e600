//go:build linux

package restore_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/inspect"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
	"github.com/stillpoint-backup/stillpoint/internal/view"
	"golang.org/x/sys/unix"
)

// backup stores dir in a new repository (small chunks and packs, so
// files have several blobs and a tree spans packs) and returns its root tree.
func backup(t *testing.T, dir string) (*repo.Repository, backend.Backend, repo.ID) {
	t.Helper()
	ctx := context.Background()
	cfg := repo.DefaultConfig
	cfg.Chunker = repo.ChunkerParams{Algorithm: "jc-v1.0.0", Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}
	cfg.PackSize = 512 << 10
	be := backend.NewMem()
	r, err := repo.Init(ctx, be, repo.Credential{KeyFile: repo.NewKeyFileSecret()}, cfg)
	must(t, err)
	res, err := archiver.New(r, &view.Live{}, archiver.Options{}).Run(ctx, []string{dir})
	must(t, err)
	must(t, r.Flush(ctx))
	return r, be, res.Tree
}

func lookup(t *testing.T, r *repo.Repository, root repo.ID, p string) *repo.Node {
	t.Helper()
	n, err := inspect.Lookup(context.Background(), r, root, p)
	must(t, err)
	return n
}

type events []restore.Event

func (e *events) add(ev restore.Event) { *e = append(*e, ev) }

func (e events) about(p, kind string) bool {
	for _, ev := range e {
		if ev.Path == p && ev.Kind == kind {
			return true
		}
	}
	return false
}

// TestDumpTarKeepsMetadata dumps every kind of entry as a tar and compares
// each header and content with the source.
func TestDumpTarKeepsMetadata(t *testing.T) {
	ci.NeedRoot(t)
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.Mkdir(src, 0o755))
	makeTree(t, src)
	want := snapshotOf(t, src)
	r, _, root := backup(t, src)

	var out bytes.Buffer
	var evs events
	res, err := restore.DumpArchive(context.Background(), r, src, lookup(t, r, root, src), &out, restore.DumpOptions{OnEvent: evs.add})
	must(t, err)
	// the socket cannot be archived, and says so
	if res.Skipped != 1 || !evs.about(src+"/sock", "warning") || res.Errors != 0 || res.NotWhole != 0 {
		t.Fatalf("result %+v, events %+v", res, evs)
	}
	tr := tar.NewReader(&out)
	seen := map[string]bool{}
	firstOfInode := map[uint64]string{}
	prefix := strings.TrimPrefix(src, "/")
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		if h.Format != tar.FormatPAX {
			t.Errorf("%s: format %v, want pax", h.Name, h.Format)
		}
		name := strings.TrimSuffix(h.Name, "/")
		rel := strings.TrimPrefix(strings.TrimPrefix(name, prefix), "/")
		if rel == "" {
			rel = "."
		}
		if !strings.HasPrefix(name, prefix) {
			t.Fatalf("entry %q is not below %q", h.Name, prefix)
		}
		w, ok := want[rel]
		if !ok {
			t.Errorf("extra entry %q", h.Name)
			continue
		}
		seen[rel] = true
		data, err := io.ReadAll(tr)
		must(t, err)
		if h.Mode != int64(w.mode&0o7777) || h.Uid != int(w.uid) || h.Gid != int(w.gid) {
			t.Errorf("%s: mode %o uid %d gid %d, want %o %d %d", rel, h.Mode, h.Uid, h.Gid, w.mode&0o7777, w.uid, w.gid)
		}
		if h.ModTime.UnixNano() != w.mtime {
			t.Errorf("%s: mtime %d, want %d", rel, h.ModTime.UnixNano(), w.mtime)
		}
		if w.xattr != h.PAXRecords["SCHILY.xattr.user.stillpoint"] {
			t.Errorf("%s: xattr %q, want %q", rel, h.PAXRecords["SCHILY.xattr.user.stillpoint"], w.xattr)
		}
		switch w.mode & unix.S_IFMT {
		case unix.S_IFREG:
			if first, ok := firstOfInode[w.ino]; ok {
				if h.Typeflag != tar.TypeLink || h.Linkname != path.Join(prefix, first) {
					t.Errorf("%s: a hard link of %s, dumped as type %c link %q", rel, first, h.Typeflag, h.Linkname)
				}
				continue
			}
			firstOfInode[w.ino] = rel
			if h.Typeflag != tar.TypeReg || !bytes.Equal(data, w.data) {
				t.Errorf("%s: type %c, %d bytes; want a file of %d bytes with the source's content", rel, h.Typeflag, len(data), len(w.data))
			}
		case unix.S_IFDIR:
			if h.Typeflag != tar.TypeDir || !strings.HasSuffix(h.Name, "/") {
				t.Errorf("%s: type %c name %q, want a directory", rel, h.Typeflag, h.Name)
			}
		case unix.S_IFLNK:
			if h.Typeflag != tar.TypeSymlink || h.Linkname != w.link {
				t.Errorf("%s: type %c target %q, want symlink to %q", rel, h.Typeflag, h.Linkname, w.link)
			}
		case unix.S_IFCHR:
			if h.Typeflag != tar.TypeChar || h.Devmajor != int64(unix.Major(w.rdev)) || h.Devminor != int64(unix.Minor(w.rdev)) {
				t.Errorf("%s: type %c dev %d,%d; want char device %d,%d", rel, h.Typeflag, h.Devmajor, h.Devminor, unix.Major(w.rdev), unix.Minor(w.rdev))
			}
		case unix.S_IFIFO:
			if h.Typeflag != tar.TypeFifo {
				t.Errorf("%s: type %c, want fifo", rel, h.Typeflag)
			}
		}
	}
	for rel, w := range want {
		if !seen[rel] && w.mode&unix.S_IFMT != unix.S_IFSOCK {
			t.Errorf("%s not in the tar", rel)
		}
	}
}

func writeFile(t *testing.T, p string, data []byte) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, data, 0o644))
}

func pseudoRandom(n, seed int) []byte {
	b := make([]byte, n)
	x := uint32(seed*2654435761 + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// TestDumpAcrossBatches dumps files larger than a batch and many small
// files sharing blobs, with batches of a few blobs: every byte must come
// back in order.
func TestDumpAcrossBatches(t *testing.T) {
	defer restore.SetDumpBatchBytes(100 << 10)()
	src := filepath.Join(t.TempDir(), "src")
	big := pseudoRandom(3<<20+12345, 1)
	writeFile(t, filepath.Join(src, "big.bin"), big)
	shared := pseudoRandom(70<<10, 2)
	files := map[string][]byte{"big.bin": big}
	for i := range 60 {
		data := []byte(fmt.Sprintf("small %d\n", i))
		if i%4 == 0 {
			data = shared
		}
		name := fmt.Sprintf("d%d/f%02d", i%5, i)
		files[name] = data
		writeFile(t, filepath.Join(src, name), data)
	}
	r, _, root := backup(t, src)
	ctx := context.Background()

	var out bytes.Buffer
	res, err := restore.DumpFile(ctx, r, src+"/big.bin", lookup(t, r, root, src+"/big.bin"), &out, restore.DumpOptions{})
	must(t, err)
	if !bytes.Equal(out.Bytes(), big) || res.Files != 1 || res.Bytes != int64(len(big)) {
		t.Fatalf("big file: %d bytes dumped (equal %v), result %+v", out.Len(), bytes.Equal(out.Bytes(), big), res)
	}
	if n := lookup(t, r, root, src+"/big.bin"); len(n.Content) < 8 {
		t.Fatalf("the big file has %d blobs: not enough to cross batches", len(n.Content))
	}

	for _, format := range []string{"tar", "zip"} {
		out.Reset()
		res, err = restore.DumpArchive(ctx, r, src, lookup(t, r, root, src), &out, restore.DumpOptions{Archive: format})
		must(t, err)
		got := map[string][]byte{}
		if format == "tar" {
			tr := tar.NewReader(&out)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				must(t, err)
				if h.Typeflag == tar.TypeReg {
					got[h.Name], _ = io.ReadAll(tr)
				}
			}
		} else {
			zr, err := zip.NewReader(bytes.NewReader(out.Bytes()), int64(out.Len()))
			must(t, err)
			for _, f := range zr.File {
				if f.Mode().IsRegular() {
					rc, err := f.Open()
					must(t, err)
					got[f.Name], _ = io.ReadAll(rc)
					rc.Close()
				}
			}
		}
		if len(got) != len(files) || res.Files != int64(len(files)) {
			t.Fatalf("%s: %d files, result %+v; want %d", format, len(got), res, len(files))
		}
		for name, data := range files {
			if !bytes.Equal(got[strings.TrimPrefix(src, "/")+"/"+name], data) {
				t.Errorf("%s: %s differs", format, name)
			}
		}
	}
}

// rewrite stores a copy of the tree root in which fn changed the node at p.
func rewrite(t *testing.T, r *repo.Repository, root repo.ID, p string, fn func(*repo.Node)) repo.ID {
	t.Helper()
	ctx := context.Background()
	var walk func(id repo.ID, dir string) repo.ID
	walk = func(id repo.ID, dir string) repo.ID {
		tr, err := r.LoadTree(ctx, id)
		must(t, err)
		for _, n := range tr.Nodes {
			np := path.Join(dir, n.Name)
			switch {
			case np == p:
				fn(n)
			case strings.HasPrefix(p, np+"/"):
				n.Subtree = walk(n.Subtree, np)
			}
		}
		nid, err := r.SaveTree(ctx, tr)
		must(t, err)
		return nid
	}
	id := walk(root, "/")
	must(t, r.Flush(ctx))
	return id
}

func TestDumpOfFilesNotWhole(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "db"), []byte("changed while read"))
	writeFile(t, filepath.Join(src, "ok"), []byte("whole"))
	writeFile(t, filepath.Join(src, "gone"), nil)
	r, _, root := backup(t, src)
	root = rewrite(t, r, root, src+"/db", func(n *repo.Node) { n.Outcome = outcome.Changed })
	root = rewrite(t, r, root, src+"/gone", func(n *repo.Node) { n.Outcome, n.Reason = outcome.Failed, outcome.ReasonLocked })
	ctx := context.Background()
	db := lookup(t, r, root, src+"/db")

	var out bytes.Buffer
	_, err := restore.DumpFile(ctx, r, src+"/db", db, &out, restore.DumpOptions{})
	var nw *restore.NotWholeError
	if !errors.As(err, &nw) || nw.Outcome != outcome.Changed || out.Len() != 0 {
		t.Fatalf("a changed file was not refused: %v, %d bytes written", err, out.Len())
	}
	var evs events
	res, err := restore.DumpFile(ctx, r, src+"/db", db, &out, restore.DumpOptions{Force: true, OnEvent: evs.add})
	must(t, err)
	if out.String() != "changed while read" || res.NotWhole != 1 || !evs.about(src+"/db", "warning") {
		t.Fatalf("--force: %q, %+v, %+v", out.String(), res, evs)
	}
	if _, err := restore.DumpFile(ctx, r, src+"/gone", lookup(t, r, root, src+"/gone"), &out, restore.DumpOptions{Force: true}); err == nil {
		t.Fatal("a file with no stored content was dumped")
	}

	out.Reset()
	evs = nil
	res, err = restore.DumpArchive(ctx, r, src, lookup(t, r, root, src), &out, restore.DumpOptions{OnEvent: evs.add})
	must(t, err)
	if res.NotWhole != 1 || res.Skipped != 1 || res.Files != 2 || !evs.about(src+"/db", "warning") || !evs.about(src+"/gone", "warning") {
		t.Fatalf("archive: %+v, %+v", res, evs)
	}
}

// TestDumpOfDamagedContent: a pack that cannot be read ends a file's
// dump with an error; in an archive the file's damaged part is zeros, it
// is named, and the other files are intact.
func TestDumpOfDamagedContent(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "a"), []byte("first file"))
	writeFile(t, filepath.Join(src, "b"), pseudoRandom(1<<20, 3))
	r, be, root := backup(t, src)
	ctx := context.Background()
	b := lookup(t, r, root, src+"/b")
	bi, _ := r.LookupBlob(b.Content[1])
	// flip a byte of b's second blob in its pack
	h := backend.Handle{Kind: backend.Packs, Name: bi.Pack.String()}
	data, err := backend.ReadAll(ctx, be, h)
	must(t, err)
	data[bi.Offset+10] ^= 0xff
	must(t, be.Remove(ctx, h))
	must(t, be.Save(ctx, h, data))

	var out bytes.Buffer
	if _, err := restore.DumpFile(ctx, r, src+"/b", b, &out, restore.DumpOptions{}); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("a damaged file dumped without an error: %v", err)
	}
	out.Reset()
	var evs events
	res, err := restore.DumpArchive(ctx, r, src, lookup(t, r, root, src), &out, restore.DumpOptions{OnEvent: evs.add})
	must(t, err)
	if res.Errors != 1 || !evs.about(src+"/b", "error") {
		t.Fatalf("result %+v, events %+v", res, evs)
	}
	tr := tar.NewReader(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		got, _ := io.ReadAll(tr)
		switch path.Base(h.Name) {
		case "a":
			if string(got) != "first file" {
				t.Errorf("a: %q", got)
			}
		case "b":
			want := pseudoRandom(1<<20, 3)
			b0, _ := r.LookupBlob(b.Content[0])
			start, end := int(b0.RawLen), int(b0.RawLen+bi.RawLen)
			clear(want[start:end])
			if !bytes.Equal(got, want) {
				t.Errorf("b: the damaged blob is not zeros, or the rest differs")
			}
		}
	}
}

//go:build linux

package restore_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
	"github.com/stillpoint-backup/stillpoint/internal/view"
	"golang.org/x/sys/unix"
)

// backupSmallPacks backs src up into a repository of small chunks and
// packs, so that one file spans many packs.
func backupSmallPacks(t *testing.T, src string) (*repo.Repository, repo.ID) {
	t.Helper()
	ctx := context.Background()
	cfg := repo.DefaultConfig
	cfg.Chunker = repo.ChunkerParams{Algorithm: "jc-v1.0.0", Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}
	cfg.PackSize = 512 << 10
	r, err := repo.Init(ctx, backend.NewMem(), repo.Credential{KeyFile: repo.NewKeyFileSecret()}, cfg)
	must(t, err)
	res, err := archiver.New(r, &view.Live{}, archiver.Options{}).Run(ctx, []string{src})
	must(t, err)
	must(t, r.Flush(ctx))
	if len(res.Problems) != 0 {
		t.Fatalf("problems: %+v", res.Problems)
	}
	return r, res.Tree
}

// packOrder records the order packs are opened in.
type packOrder struct {
	*repo.Repository
	mu    sync.Mutex
	order []repo.ID
}

func (p *packOrder) OpenPack(id repo.ID) *repo.PackReader {
	p.mu.Lock()
	p.order = append(p.order, id)
	p.mu.Unlock()
	return p.Repository.OpenPack(id)
}

// A file whose blobs span many packs is written whole, and its packs are
// read in the order of its content (backups write a file front to back),
// so the file is written front to back too.
func TestFileAcrossPacksInOrder(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	data := pseudoRandom(6<<20, 1)
	must(t, os.MkdirAll(src, 0o755))
	must(t, os.WriteFile(filepath.Join(src, "big"), data, 0o644))
	r, tree := backupSmallPacks(t, src)

	po := &packOrder{Repository: r}
	dst := t.TempDir()
	rr, err := restore.Run(context.Background(), po, tree, restore.Options{Target: dst, Workers: 1})
	must(t, err)
	if rr.Errors != 0 || rr.Files != 1 {
		t.Fatalf("%d files, events %+v", rr.Files, rr.Events)
	}
	got, err := os.ReadFile(filepath.Join(dst, src, "big"))
	must(t, err)
	if !bytes.Equal(got, data) {
		t.Fatal("the file spanning packs did not restore byte-identical")
	}

	// the packs in the order the file's blobs are in them
	node := findNode(t, r, tree, filepath.Join(src, "big"))
	var want []repo.ID
	seen := map[repo.ID]bool{}
	for _, id := range node.Content {
		bi, _ := r.LookupBlob(id)
		if !seen[bi.Pack] {
			seen[bi.Pack] = true
			want = append(want, bi.Pack)
		}
	}
	if len(want) < 8 {
		t.Fatalf("the file is in %d packs; the test wants many", len(want))
	}
	if len(po.order) != len(want) {
		t.Fatalf("%d packs opened, the file is in %d", len(po.order), len(want))
	}
	for i := range want {
		if po.order[i] != want[i] {
			t.Fatalf("pack %d read out of the file's order", i)
		}
	}
}

// findNode looks p up in the tree root.
func findNode(t *testing.T, r *repo.Repository, root repo.ID, p string) *repo.Node {
	t.Helper()
	id := root
	parts := strings.Split(strings.Trim(p, "/"), "/")
	for i, name := range parts {
		tree, err := r.LoadTree(context.Background(), id)
		must(t, err)
		var found *repo.Node
		for _, n := range tree.Nodes {
			if n.Name == name {
				found = n
			}
		}
		if found == nil {
			t.Fatalf("%s not in the snapshot", p)
		}
		if i == len(parts)-1 {
			return found
		}
		id = found.Subtree
	}
	return nil
}

// Holes stay holes: in the middle, at the end (the file gets its size
// without a byte written there), and a file of nothing but a hole.
func TestSparseHolesKept(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(src, 0o755))
	mk := func(name string, size int64, at ...int64) {
		f, err := os.Create(filepath.Join(src, name))
		must(t, err)
		for _, off := range at {
			_, err := f.WriteAt(pseudoRandom(64<<10, int(off>>10)+1), off)
			must(t, err)
		}
		must(t, f.Truncate(size))
		must(t, f.Close())
	}
	mk("middle", 32<<20, 0, 32<<20-64<<10) // data at both ends
	mk("tail", 32<<20, 0)                  // ends in a 32 MiB hole
	mk("all-hole", 16<<20)
	r, tree := backupSmallPacks(t, src)
	dst := t.TempDir()
	rr, err := restore.Run(context.Background(), r, tree, restore.Options{Target: dst})
	must(t, err)
	if rr.Errors != 0 || rr.Files != 3 {
		t.Fatalf("%d files, events %+v", rr.Files, rr.Events)
	}
	for _, name := range []string{"middle", "tail", "all-hole"} {
		want, err := os.ReadFile(filepath.Join(src, name))
		must(t, err)
		p := filepath.Join(dst, src, name)
		got, err := os.ReadFile(p)
		must(t, err)
		if !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes restored, differing from the %d of the source", name, len(got), len(want))
		}
		var st unix.Stat_t
		must(t, unix.Stat(p, &st))
		if st.Blocks*512 > 1<<20 {
			t.Errorf("%s: %d bytes allocated for %d: the holes were filled", name, st.Blocks*512, st.Size)
		}
	}
}

// damagedBlob makes one blob unreadable: its index entry points one byte
// off, so it does not decrypt.
type damagedBlob struct {
	*repo.Repository
	bad repo.ID
}

func (d damagedBlob) LookupBlob(id repo.ID) (repo.BlobInfo, bool) {
	bi, ok := d.Repository.LookupBlob(id)
	if id == d.bad {
		bi.Offset++
	}
	return bi, ok
}

// A file whose content is damaged in the middle is reported, keeps what
// was intact at its offsets, and does not pass for whole: it has neither
// the snapshot's mode nor its time, so --overwrite if-changed replaces it.
// The files around it restore whole.
func TestDamagedFileNotClaimedWhole(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(src, 0o755))
	data := pseudoRandom(3<<20, 2)
	must(t, os.WriteFile(filepath.Join(src, "damaged"), data, 0o644))
	must(t, os.WriteFile(filepath.Join(src, "intact"), []byte("intact"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "empty"), nil, 0o640))
	r, tree := backupSmallPacks(t, src)
	node := findNode(t, r, tree, filepath.Join(src, "damaged"))
	if len(node.Content) < 3 {
		t.Fatalf("%d blobs; the test wants a blob in the middle", len(node.Content))
	}
	bad := node.Content[len(node.Content)/2]

	dst := t.TempDir()
	rr, err := restore.Run(context.Background(), damagedBlob{r, bad}, tree, restore.Options{Target: dst})
	must(t, err)
	if rr.Errors != 1 || rr.Files != 2 {
		t.Fatalf("%d errors, %d files restored; want 1 error and the 2 other files: %+v", rr.Errors, rr.Files, rr.Events)
	}
	if rr.Events[0].Path != filepath.Join(src, "damaged") || !strings.Contains(rr.Events[0].Message, "incomplete") {
		t.Errorf("event %+v", rr.Events[0])
	}
	p := filepath.Join(dst, src, "damaged")
	var st unix.Stat_t
	must(t, unix.Stat(p, &st))
	if st.Mode&0o7777 != 0o600 || st.Mtim.Nano() == node.Mtime || st.Size != int64(len(data)) {
		t.Errorf("damaged file: mode %o, mtime %d (snapshot %d), size %d: it passes for whole", st.Mode&0o7777, st.Mtim.Nano(), node.Mtime, st.Size)
	}
	got, err := os.ReadFile(p)
	must(t, err)
	var off int64
	for _, id := range node.Content {
		bi, _ := r.LookupBlob(id)
		part := got[off : off+int64(bi.RawLen)]
		if id != bad && !bytes.Equal(part, data[off:off+int64(bi.RawLen)]) {
			t.Errorf("intact blob at %d not restored", off)
		}
		off += int64(bi.RawLen)
	}
	for _, name := range []string{"intact", "empty"} {
		var st unix.Stat_t
		must(t, unix.Stat(filepath.Join(dst, src, name), &st))
		n := findNode(t, r, tree, filepath.Join(src, name))
		if st.Mtim.Nano() != n.Mtime || st.Mode&0o7777 != n.Mode&0o7777 {
			t.Errorf("%s: mode %o mtime %d, want %o %d", name, st.Mode&0o7777, st.Mtim.Nano(), n.Mode&0o7777, n.Mtime)
		}
	}

	// the same restore from the intact repository, if-changed, mends it
	rr, err = restore.Run(context.Background(), r, tree, restore.Options{Target: dst, Overwrite: restore.OverwriteIfChanged})
	must(t, err)
	if rr.Errors != 0 || rr.Files != 1 || rr.Skipped != 2 {
		t.Fatalf("if-changed: %d files, %d kept, events %+v; want the damaged one replaced", rr.Files, rr.Skipped, rr.Events)
	}
	got, err = os.ReadFile(p)
	must(t, err)
	if !bytes.Equal(got, data) {
		t.Error("if-changed did not replace the damaged file")
	}
}

// The overwrite policies on a target that holds the restore already, with
// one file changed and hard links (which are made after their first path
// is written).
func TestOverwritePolicies(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(filepath.Join(src, "d"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "d", "a"), []byte("a content"), 0o644))
	must(t, os.WriteFile(filepath.Join(src, "d", "b"), pseudoRandom(300<<10, 3), 0o644))
	must(t, os.Link(filepath.Join(src, "d", "a"), filepath.Join(src, "link-to-a")))
	r, tree := backupSmallPacks(t, src)
	ctx := context.Background()
	dst := t.TempDir()
	rr, err := restore.Run(ctx, r, tree, restore.Options{Target: dst})
	must(t, err)
	if rr.Errors != 0 || rr.Files != 3 {
		t.Fatalf("first restore: %d files, %+v", rr.Files, rr.Events)
	}
	sameInode := func() bool {
		var a, l unix.Stat_t
		must(t, unix.Stat(filepath.Join(dst, src, "d", "a"), &a))
		must(t, unix.Stat(filepath.Join(dst, src, "link-to-a"), &l))
		return a.Ino == l.Ino
	}
	if !sameInode() {
		t.Fatal("hard links restored apart")
	}
	b := filepath.Join(dst, src, "d", "b")
	changed := []byte("changed at the target")
	for _, tc := range []struct {
		ow             restore.Overwrite
		files, skipped int64
		replaced       bool
	}{
		{restore.OverwriteNever, 0, 3, false},
		{restore.OverwriteIfChanged, 1, 2, true},
		{restore.OverwriteAlways, 3, 0, true},
	} {
		must(t, os.WriteFile(b, changed, 0o644))
		rr, err := restore.Run(ctx, r, tree, restore.Options{Target: dst, Overwrite: tc.ow})
		must(t, err)
		if rr.Errors != 0 || rr.Files != tc.files || rr.Skipped != tc.skipped {
			t.Errorf("policy %d: %d restored, %d kept, events %+v; want %d and %d", tc.ow, rr.Files, rr.Skipped, rr.Events, tc.files, tc.skipped)
		}
		got, err := os.ReadFile(b)
		must(t, err)
		if replaced := !bytes.Equal(got, changed); replaced != tc.replaced {
			t.Errorf("policy %d: replaced %v, want %v", tc.ow, replaced, tc.replaced)
		}
		if !sameInode() {
			t.Errorf("policy %d: hard links apart", tc.ow)
		}
	}
}

// Modes come back whatever the umask takes away, also of a read-only file
// big enough to be opened again for each pack; and, as root, in a target
// whose set-group-id bit gives new files its group, the owners recorded
// (a file is created with the mode and owner it should have only where
// that is sure to hold).
func TestModesAndOwnersWhereCreationDiffers(t *testing.T) {
	old := unix.Umask(0o027)
	defer unix.Umask(old)
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(filepath.Join(src, "d"), 0o755))
	modes := map[string]os.FileMode{"d/0664": 0o664, "d/0444-big": 0o444, "d/0700": 0o700, "d/0777": 0o777, "0640": 0o640, "d/sticky": os.ModeSticky | 0o644, "d/setgid": os.ModeSetgid | 0o755}
	for name, mode := range modes {
		data := []byte(name)
		if strings.HasSuffix(name, "-big") {
			data = pseudoRandom(3<<20, 7)
		}
		p := filepath.Join(src, name)
		must(t, os.WriteFile(p, data, 0o600))
		must(t, os.Chmod(p, mode))
	}
	r, tree := backupSmallPacks(t, src)
	targets := []string{t.TempDir()}
	if os.Geteuid() == 0 {
		sgid := t.TempDir()
		must(t, os.Chown(sgid, 0, 5678))
		must(t, os.Chmod(sgid, os.ModeSetgid|0o755))
		targets = append(targets, sgid)
	}
	for _, dst := range targets {
		rr, err := restore.Run(context.Background(), r, tree, restore.Options{Target: dst})
		must(t, err)
		if rr.Errors != 0 || rr.Files != int64(len(modes)) {
			t.Fatalf("%d files, events %+v", rr.Files, rr.Events)
		}
		for name, mode := range modes {
			var st, want unix.Stat_t
			must(t, unix.Stat(filepath.Join(src, name), &want))
			must(t, unix.Stat(filepath.Join(dst, src, name), &st))
			if st.Mode != want.Mode || st.Uid != want.Uid || st.Gid != want.Gid {
				t.Errorf("%s (%v): mode %o uid %d gid %d, want %o %d %d", name, mode, st.Mode, st.Uid, st.Gid, want.Mode, want.Uid, want.Gid)
			}
		}
	}
}

// Blobs gathered into one write come back in order and whole: compressed
// ones (decompressed into a buffer the next one reuses), blobs stored as
// they were, and one blob used again and again in one file.
func TestGatheredWrites(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	must(t, os.MkdirAll(src, 0o755))
	var text bytes.Buffer
	for i := 0; text.Len() < 3<<20; i++ {
		text.WriteString(strings.Repeat("log line ", i%17+1) + string(rune('a'+i%26)) + "\n")
	}
	// far longer than the largest chunk, so that each copy has cuts of the
	// content's own (the chunker's table is the repository's) and is cut
	// alike after the first: at 300 KiB one repository in about 30 had
	// none and cut the copies apart
	block := pseudoRandom(1<<20, 9)
	var repeated, mixed []byte
	for i := range 12 {
		repeated = append(repeated, block...)
		mixed = append(mixed, text.Bytes()[i<<16:(i+1)<<16]...)
		mixed = append(mixed, pseudoRandom(200<<10, 20+i)...)
	}
	files := map[string][]byte{"text": text.Bytes(), "repeated": repeated, "mixed": mixed}
	for name, data := range files {
		must(t, os.WriteFile(filepath.Join(src, name), data, 0o644))
	}
	r, tree := backupSmallPacks(t, src)
	if n := findNode(t, r, tree, filepath.Join(src, "repeated")); len(n.Content) < 12 {
		t.Fatalf("repeated: %d blobs", len(n.Content))
	} else if uniq := map[repo.ID]bool{}; true {
		for _, id := range n.Content {
			uniq[id] = true
		}
		if len(uniq) > len(n.Content)/2 {
			t.Fatalf("repeated: %d distinct blobs of %d; the test wants blobs used again", len(uniq), len(n.Content))
		}
	}
	for _, workers := range []int{1, 4} {
		dst := t.TempDir()
		restoreAll(t, r, tree, restore.Options{Target: dst, Workers: workers}, len(files))
		sameFiles(t, filepath.Join(dst, src), files)
	}
}

package copier

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/retention"
)

var ctx = context.Background()

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newRepo makes a repository in memory with a key of its own.
func newRepo(t *testing.T, compression string) *repo.Repository {
	t.Helper()
	cfg := repo.DefaultConfig
	cfg.Compression = compression
	cfg.PackSize = 256 << 10 // many packs from little data
	r, err := repo.Init(ctx, backend.NewMem(), repo.Credential{KeyFile: repo.NewKeyFileSecret()}, cfg)
	must(t, err)
	return r
}

// files are a snapshot's files, by name, as the chunks they are stored in.
type files map[string][][]byte

func chunk(seed uint64, size int, text bool) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	b := make([]byte, size)
	for i := range b {
		if text {
			b[i] = "stillpoint copies snapshots "[r.IntN(28)]
		} else {
			b[i] = byte(r.Uint32())
		}
	}
	return b
}

// backup stores fs below /data in r and writes a snapshot of it.
func backup(t *testing.T, r *repo.Repository, when time.Time, host string, fs files, parent *repo.Snapshot) *repo.Snapshot {
	t.Helper()
	dir := &repo.Tree{}
	for name, chunks := range fs {
		n := &repo.Node{Name: name, Type: repo.NodeFile, Mode: 0o644, Mtime: when.UnixNano()}
		for _, c := range chunks {
			id := r.Hash(c)
			_, err := r.SaveBlob(ctx, repo.DataBlob, id, c)
			must(t, err)
			n.Content = append(n.Content, id)
			n.Size += uint64(len(c))
		}
		dir.Nodes = append(dir.Nodes, n)
	}
	dir.Sort()
	sub, err := r.SaveTree(ctx, dir)
	must(t, err)
	root, err := r.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: "data", Type: repo.NodeDir, Mode: 0o755, Subtree: sub}}})
	must(t, err)
	must(t, r.Flush(ctx))
	s := &repo.Snapshot{Time: when, Host: host, Paths: []string{"/data"}, Tags: []string{"t1"}, Tree: root,
		Program: "test", Outcomes: map[string]int64{"ok": int64(len(fs))}, Consistency: "live",
		Extra: map[string]string{"k": "v"}}
	if parent != nil {
		s.Parent = &parent.ID
	}
	_, err = r.SaveSnapshot(ctx, s)
	must(t, err)
	return s
}

// contents reads every file of a snapshot back.
func contents(t *testing.T, r *repo.Repository, tree repo.ID) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	var walk func(dir string, id repo.ID)
	walk = func(dir string, id repo.ID) {
		tr, err := r.LoadTree(ctx, id)
		must(t, err)
		for _, n := range tr.Nodes {
			p := dir + "/" + n.Name
			if n.Type == repo.NodeDir {
				walk(p, n.Subtree)
				continue
			}
			var b []byte
			for _, c := range n.Content {
				data, err := r.LoadBlob(ctx, c)
				must(t, err)
				b = append(b, data...)
			}
			out[p] = b
		}
	}
	walk("", tree)
	return out
}

// blobs collects the ids of every tree and data blob below tree.
func blobs(t *testing.T, r *repo.Repository, tree repo.ID, into map[repo.ID]bool) {
	t.Helper()
	into[tree] = true
	tr, err := r.LoadTree(ctx, tree)
	must(t, err)
	for _, n := range tr.Nodes {
		for _, c := range n.Content {
			into[c] = true
		}
		if !n.Subtree.IsNull() {
			blobs(t, r, n.Subtree, into)
		}
	}
}

func snapshots(t *testing.T, r *repo.Repository) []*repo.Snapshot {
	t.Helper()
	s, bad, err := r.Snapshots(ctx)
	must(t, err)
	if len(bad) > 0 {
		t.Fatalf("unreadable manifests: %v", bad)
	}
	return s
}

func checkClean(t *testing.T, r *repo.Repository) {
	t.Helper()
	res, err := r.Check(ctx, repo.CheckOptions{ReadData: true})
	must(t, err)
	if !res.OK() {
		t.Fatalf("check: %+v", res.Errors)
	}
}

// twoSnapshots gives src two snapshots that share a file and a chunk.
func twoSnapshots(t *testing.T, src *repo.Repository) (*repo.Snapshot, *repo.Snapshot) {
	t.Helper()
	t0 := time.Date(2026, 3, 29, 1, 30, 0, 0, time.FixedZone("CET", 3600))
	shared := chunk(1, 200<<10, false)
	s1 := backup(t, src, t0, "h1", files{
		"a.bin":  {shared, chunk(2, 300<<10, false)},
		"b.txt":  {chunk(3, 100<<10, true)},
		"empty":  nil,
		"same.1": {chunk(4, 50<<10, false)},
	}, nil)
	s2 := backup(t, src, t0.Add(time.Hour), "h1", files{
		"a.bin":  {shared, chunk(5, 300<<10, false)},
		"b.txt":  {chunk(3, 100<<10, true)},
		"c.bin":  {chunk(6, 400<<10, false), shared},
		"same.1": {chunk(4, 50<<10, false)},
	}, s1)
	return s1, s2
}

func TestCopyRoundTripOtherKeyAndCompression(t *testing.T) {
	src, dst := newRepo(t, "off"), newRepo(t, "better")
	s1, s2 := twoSnapshots(t, src)
	res, err := Run(ctx, src, dst, Options{})
	must(t, err)
	if res.Copied != 2 || res.Skipped != 0 {
		t.Fatalf("copied %d, skipped %d; want 2, 0", res.Copied, res.Skipped)
	}
	need := map[repo.ID]bool{}
	blobs(t, src, s1.Tree, need)
	blobs(t, src, s2.Tree, need)
	if res.BlobsSent != int64(len(need)) {
		t.Fatalf("sent %d blobs, the snapshots have %d distinct ones", res.BlobsSent, len(need))
	}
	if res.DataBlobsSent+res.TreeBlobsSent != res.BlobsSent || res.StoredSent <= 0 {
		t.Fatalf("counts do not add up: %+v", res)
	}
	got := snapshots(t, dst)
	if len(got) != 2 {
		t.Fatalf("target has %d snapshots", len(got))
	}
	for i, s := range []*repo.Snapshot{s1, s2} {
		c := got[i]
		if !c.Time.Equal(s.Time) || c.Time.Format(time.RFC3339) != s.Time.Format(time.RFC3339) || c.Host != s.Host ||
			strings.Join(c.Paths, ",") != strings.Join(s.Paths, ",") || strings.Join(c.Tags, ",") != "t1" ||
			c.Outcomes["ok"] != s.Outcomes["ok"] || c.Consistency != "live" || c.Extra["k"] != "v" {
			t.Fatalf("copy %d does not keep the manifest: %+v", i, c)
		}
		if c.Original == nil || *c.Original != s.ID || c.CopiedFrom == nil || c.CopiedFrom.Snapshot != s.ID ||
			c.CopiedFrom.Repository != src.Config().ID {
			t.Fatalf("copy %d does not name its source: original %v, copied_from %+v", i, c.Original, c.CopiedFrom)
		}
		if c.Tree == s.Tree {
			t.Fatal("the tree id is the source's: the target's key was not used")
		}
		want, have := contents(t, src, s.Tree), contents(t, dst, c.Tree)
		if len(want) != len(have) {
			t.Fatalf("copy %d has %d files, source %d", i, len(have), len(want))
		}
		for p, b := range want {
			if !bytes.Equal(have[p], b) {
				t.Fatalf("copy %d: %s differs", i, p)
			}
		}
	}
	if got[1].Parent == nil || *got[1].Parent != got[0].ID {
		t.Fatalf("the second copy's parent is %v, want the first copy %s", got[1].Parent, got[0].ID.Short())
	}
	if got[0].Parent != nil {
		t.Fatalf("the first copy has a parent: %v", got[0].Parent)
	}
	checkClean(t, dst)

	again, err := Run(ctx, src, dst, Options{})
	must(t, err)
	if again.Copied != 0 || again.Skipped != 2 || again.BlobsSent != 0 || again.BlobsRead != 0 {
		t.Fatalf("second copy: %+v", again)
	}
	if !strings.Contains(again.Snapshots[0].Reason, got[0].ID.Short()) {
		t.Fatalf("skip reason %q does not name the copy", again.Snapshots[0].Reason)
	}
	if n := len(snapshots(t, dst)); n != 2 {
		t.Fatalf("target has %d snapshots after the second copy", n)
	}
}

func TestDryRunCountsWhatACopySendsAndWritesNothing(t *testing.T) {
	src, dst := newRepo(t, "fastest"), newRepo(t, "fastest")
	twoSnapshots(t, src)
	files := func() int {
		n := 0
		for _, k := range []backend.Kind{backend.Packs, backend.Indexes, backend.Snapshots, backend.Locks} {
			must(t, dst.Backend().List(ctx, k, func(backend.FileInfo) error { n++; return nil }))
		}
		return n
	}
	before := files()
	dry, err := Run(ctx, src, dst, Options{DryRun: true})
	must(t, err)
	if files() != before {
		t.Fatal("a dry run wrote to the target")
	}
	real, err := Run(ctx, src, dst, Options{})
	must(t, err)
	if dry.BlobsSent != real.BlobsSent || dry.BytesSent != real.BytesSent || dry.Copied != real.Copied || dry.BlobsSent == 0 {
		t.Fatalf("dry run says %d blobs, %d bytes, %d snapshots; the copy sent %d, %d, %d",
			dry.BlobsSent, dry.BytesSent, dry.Copied, real.BlobsSent, real.BytesSent, real.Copied)
	}
	if dry.StoredSent != 0 {
		t.Fatalf("a dry run stored %d bytes", dry.StoredSent)
	}
}

func TestPartlySharedTargetGetsOnlyTheMissingBlobs(t *testing.T) {
	src, dst := newRepo(t, "fastest"), newRepo(t, "off")
	s1, s2 := twoSnapshots(t, src)
	first, err := Run(ctx, src, dst, Options{Refs: []string{s1.ID.String()[:8]}})
	must(t, err)
	if first.Copied != 1 {
		t.Fatalf("copied %d snapshots, want 1", first.Copied)
	}
	have, all := map[repo.ID]bool{}, map[repo.ID]bool{}
	blobs(t, src, s1.Tree, have)
	blobs(t, src, s2.Tree, all)
	missing := 0
	for id := range all {
		if !have[id] {
			missing++
		}
	}
	// the data blobs s2 shares with s1 are known from s1's copy: not read
	var shared, newData int64
	for id := range all {
		if bi, _ := src.LookupBlob(id); bi.Type == repo.DataBlob {
			if have[id] {
				shared++
			} else {
				newData++
			}
		}
	}
	res, err := Run(ctx, src, dst, Options{})
	must(t, err)
	if res.Copied != 1 || res.Skipped != 1 {
		t.Fatalf("copied %d, skipped %d; want 1, 1", res.Copied, res.Skipped)
	}
	if res.BlobsSent != int64(missing) {
		t.Fatalf("sent %d blobs, the target lacked %d", res.BlobsSent, missing)
	}
	if res.BlobsRead != newData || res.BlobsNotRead != shared || shared == 0 {
		t.Fatalf("read %d data blobs and found %d through the parent's copy; want %d and %d", res.BlobsRead, res.BlobsNotRead, newData, shared)
	}
	checkClean(t, dst)
	c := snapshots(t, dst)
	want, got := contents(t, src, s2.Tree), contents(t, dst, c[len(c)-1].Tree)
	for p, b := range want {
		if !bytes.Equal(got[p], b) {
			t.Fatalf("%s differs", p)
		}
	}
	checkClean(t, dst)
}

func TestSelection(t *testing.T) {
	src := newRepo(t, "off")
	t0 := time.Now()
	a := backup(t, src, t0, "h1", files{"x": {chunk(1, 10, false)}}, nil)
	b := backup(t, src, t0.Add(time.Minute), "h2", files{"x": {chunk(2, 10, false)}}, nil)
	snaps := snapshots(t, src)
	for _, c := range []struct {
		refs []string
		f    retention.Filter
		want []*repo.Snapshot
		err  string
	}{
		{nil, retention.Filter{}, []*repo.Snapshot{a, b}, ""},
		{[]string{"latest"}, retention.Filter{}, []*repo.Snapshot{b}, ""},
		{[]string{"latest"}, retention.Filter{Hosts: []string{"h1"}}, []*repo.Snapshot{a}, ""},
		{[]string{b.ID.String()[:10], a.ID.String()}, retention.Filter{}, []*repo.Snapshot{a, b}, ""},
		{nil, retention.Filter{Hosts: []string{"h3"}}, nil, "no snapshot of the source repository matches --host h3"},
		{[]string{"ffffffffff"}, retention.Filter{}, nil, `no snapshot "ffffffffff"`},
	} {
		got, err := selectSnapshots(snaps, c.refs, c.f)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("%v %v: error %v, want %q", c.refs, c.f, err, c.err)
			}
			continue
		}
		must(t, err)
		if len(got) != len(c.want) {
			t.Fatalf("%v %v: got %d snapshots, want %d", c.refs, c.f, len(got), len(c.want))
		}
		for i := range got {
			if got[i].ID != c.want[i].ID {
				t.Fatalf("%v %v: got %s at %d, want %s", c.refs, c.f, got[i].ID.Short(), i, c.want[i].ID.Short())
			}
		}
	}
}

func TestSameContentIsNotCopiedTwice(t *testing.T) {
	src, dst := newRepo(t, "off"), newRepo(t, "off")
	s1, _ := twoSnapshots(t, src)
	_, err := Run(ctx, src, dst, Options{Refs: []string{s1.ID.String()}})
	must(t, err)
	// a manifest that does not say where it came from, with the same content
	c := snapshots(t, dst)[0]
	copied := c.ID
	c.Original, c.CopiedFrom = nil, nil
	_, err = dst.SaveSnapshot(ctx, c)
	must(t, err)
	_, err = dst.ForgetSnapshots(ctx, []repo.ID{copied})
	must(t, err)
	if n := len(snapshots(t, dst)); n != 1 {
		t.Fatalf("test setup: %d snapshots", n)
	}
	res, err := Run(ctx, src, dst, Options{Refs: []string{s1.ID.String()}})
	must(t, err)
	if res.Skipped != 1 || !strings.Contains(res.Snapshots[0].Reason, "same files") {
		t.Fatalf("identical snapshot copied again: %+v", res.Snapshots)
	}
}

func TestCopyBackIsSkipped(t *testing.T) {
	a, b := newRepo(t, "off"), newRepo(t, "off")
	twoSnapshots(t, a)
	_, err := Run(ctx, a, b, Options{})
	must(t, err)
	res, err := Run(ctx, b, a, Options{})
	must(t, err)
	if res.Skipped != 2 || res.BlobsRead != 0 {
		t.Fatalf("copying back: %+v", res)
	}
	// a third repository gets each snapshot once, from either side
	c := newRepo(t, "off")
	_, err = Run(ctx, a, c, Options{Refs: []string{"latest"}})
	must(t, err)
	res, err = Run(ctx, b, c, Options{})
	must(t, err)
	if res.Copied != 1 || res.Skipped != 1 {
		t.Fatalf("copied %d, skipped %d from the copy; want 1, 1", res.Copied, res.Skipped)
	}
}

func TestSameRepositoryIsRefused(t *testing.T) {
	src := newRepo(t, "off")
	if _, err := Run(ctx, src, src, Options{}); !errors.Is(err, ErrSameRepository) {
		t.Fatalf("copy into itself: %v", err)
	}
}

// A blob that only packs marked by a prune hold does not count as present:
// the copy sends it again, and a later sweep leaves the copy whole.
func TestBlobsInMarkedPacksAreSentAgain(t *testing.T) {
	src, dst := newRepo(t, "off"), newRepo(t, "off")
	s1, _ := twoSnapshots(t, src)
	first, err := Run(ctx, src, dst, Options{Refs: []string{s1.ID.String()}})
	must(t, err)
	_, err = dst.ForgetSnapshots(ctx, []repo.ID{first.Snapshots[0].Target})
	must(t, err)
	// a backup that is still running keeps prune from deleting at once
	lock, err := dst.Lock(ctx, false, "backup")
	must(t, err)
	pr, err := dst.Prune(ctx, repo.PruneOptions{MaxUnused: repo.DefaultMaxUnused})
	must(t, err)
	if pr.GarbagePacks == 0 || pr.MarksPending == 0 {
		t.Fatalf("prune did not leave a pending mark: %+v", pr)
	}
	res, err := Run(ctx, src, dst, Options{Refs: []string{s1.ID.String()}})
	must(t, err)
	if res.BlobsSent != first.BlobsSent {
		t.Fatalf("sent %d blobs, want all %d again (the target's are marked)", res.BlobsSent, first.BlobsSent)
	}
	lock.Unlock()
	pr, err = dst.Prune(ctx, repo.PruneOptions{MaxUnused: repo.DefaultMaxUnused})
	must(t, err)
	if pr.RemovedPacks == 0 {
		t.Fatalf("the sweep removed nothing: %+v", pr)
	}
	checkClean(t, dst)
	c := snapshots(t, dst)
	if len(c) != 1 {
		t.Fatalf("%d snapshots", len(c))
	}
	want, have := contents(t, src, s1.Tree), contents(t, dst, c[0].Tree)
	for p, b := range want {
		if !bytes.Equal(have[p], b) {
			t.Fatalf("%s differs after the sweep", p)
		}
	}
}

func TestWrongBlobInSourceFailsTheSnapshot(t *testing.T) {
	src, dst := newRepo(t, "off"), newRepo(t, "off")
	_, s2 := twoSnapshots(t, src)
	// damage the pack that holds the snapshot's root tree: it no longer verifies
	bi, ok := src.LookupBlob(s2.Tree)
	if !ok {
		t.Fatal("root tree not indexed")
	}
	victim := bi.Pack.String()
	h := backend.Handle{Kind: backend.Packs, Name: victim}
	data, err := backend.ReadAll(ctx, src.Backend(), h)
	must(t, err)
	for i := 0; i < len(data)-64; i += 97 {
		data[i] ^= 0xff
	}
	must(t, src.Backend().Remove(ctx, h))
	must(t, src.Backend().Save(ctx, h, data))
	_, err = Run(ctx, src, dst, Options{Refs: []string{s2.ID.String()}})
	if err == nil || !strings.Contains(err.Error(), "snapshot "+s2.ID.Short()) {
		t.Fatalf("copy from a damaged pack: %v", err)
	}
	if n := len(snapshots(t, dst)); n != 0 {
		t.Fatalf("a snapshot with unreadable data was written: %d", n)
	}
	if !strings.Contains(err.Error(), "pack "+victim[:8]) {
		t.Fatalf("the error does not name the damaged pack %s: %v", victim[:8], err)
	}
	checkClean(t, dst)
}

// TestManyDirectories copies a tree of many small directories, some
// identical, walked by several walkers at once.
func TestManyDirectories(t *testing.T) {
	src, dst := newRepo(t, "off"), newRepo(t, "fastest")
	save := func(tr *repo.Tree) repo.ID {
		tr.Sort()
		id, err := src.SaveTree(ctx, tr)
		must(t, err)
		return id
	}
	root := &repo.Tree{}
	for i := range 60 {
		c := chunk(uint64(i%7), 3000+i%7, i%2 == 0)
		id := src.Hash(c)
		_, err := src.SaveBlob(ctx, repo.DataBlob, id, c)
		must(t, err)
		leaf := save(&repo.Tree{Nodes: []*repo.Node{{Name: "f", Type: repo.NodeFile, Size: uint64(len(c)), Content: []repo.ID{id}}}})
		mid := save(&repo.Tree{Nodes: []*repo.Node{{Name: "x", Type: repo.NodeDir, Subtree: leaf}, {Name: "y", Type: repo.NodeDir, Subtree: leaf}}})
		root.Nodes = append(root.Nodes, &repo.Node{Name: fmt.Sprintf("d%02d", i), Type: repo.NodeDir, Subtree: mid})
	}
	rootID := save(root)
	must(t, src.Flush(ctx))
	s := &repo.Snapshot{Time: time.Now(), Host: "h", Paths: []string{"/"}, Tree: rootID, Outcomes: map[string]int64{}}
	_, err := src.SaveSnapshot(ctx, s)
	must(t, err)
	res, err := Run(ctx, src, dst, Options{Workers: 3})
	must(t, err)
	distinct := map[repo.ID]bool{}
	blobs(t, src, rootID, distinct)
	var data int64
	for id := range distinct {
		if bi, _ := src.LookupBlob(id); bi.Type == repo.DataBlob {
			data++
		}
	}
	if res.BlobsSent != int64(len(distinct)) || res.DataBlobsSent != data || data != 14 {
		t.Fatalf("sent %d blobs (%d data), want %d (%d data)", res.BlobsSent, res.DataBlobsSent, len(distinct), data)
	}
	want, have := contents(t, src, rootID), contents(t, dst, snapshots(t, dst)[0].Tree)
	if len(want) != 120 || len(have) != len(want) {
		t.Fatalf("%d files copied of %d", len(have), len(want))
	}
	for p, b := range want {
		if !bytes.Equal(have[p], b) {
			t.Fatalf("%s differs", p)
		}
	}
	checkClean(t, dst)
}

func TestSpans(t *testing.T) {
	p1, p2 := repo.NewRandomID(), repo.NewRandomID()
	bi := func(p repo.ID, off, n uint32) claim {
		return claim{bi: repo.BlobInfo{ID: repo.NewRandomID(), Pack: p, Offset: off, Length: n}}
	}
	got := spans(map[repo.ID][]claim{
		// out of order, adjacent, then a gap of more than spanGap
		p1: {bi(p1, 100, 50), bi(p1, 0, 100), bi(p1, 150+spanGap+1, 10)},
		// within spanGap, then a blob that would make the span too long
		p2: {bi(p2, 0, 10), bi(p2, 10+spanGap, 10), bi(p2, spanMax-5, 10)},
	})
	var shapes []string
	for _, sp := range got {
		var offs []string
		for _, c := range sp {
			offs = append(offs, fmt.Sprint(c.bi.Offset))
		}
		shapes = append(shapes, sp[0].bi.Pack.Short()+":"+strings.Join(offs, ","))
	}
	want := map[string]bool{
		p1.Short() + ":0,100": true, p1.Short() + fmt.Sprintf(":%d", 150+spanGap+1): true,
		p2.Short() + fmt.Sprintf(":0,%d", 10+spanGap): true, p2.Short() + fmt.Sprintf(":%d", spanMax-5): true,
	}
	if len(shapes) != len(want) {
		t.Fatalf("spans %v", shapes)
	}
	for _, s := range shapes {
		if !want[s] {
			t.Fatalf("spans %v, want %v", shapes, want)
		}
	}
}

// A data blob that does not verify in the source fails its snapshot, with
// the blob and pack named; nothing is written for it.
func TestDamagedDataBlobInSource(t *testing.T) {
	src, dst := newRepo(t, "off"), newRepo(t, "off")
	s1, s2 := twoSnapshots(t, src)
	tr, err := src.LoadTree(ctx, s2.Tree)
	must(t, err)
	sub, err := src.LoadTree(ctx, tr.Nodes[0].Subtree)
	must(t, err)
	victim := sub.Find("c.bin").Content[0] // only s2 has it
	bi, _ := src.LookupBlob(victim)
	h := backend.Handle{Kind: backend.Packs, Name: bi.Pack.String()}
	data, err := backend.ReadAll(ctx, src.Backend(), h)
	must(t, err)
	data[bi.Offset+bi.Length/2] ^= 1
	must(t, src.Backend().Remove(ctx, h))
	must(t, src.Backend().Save(ctx, h, data))
	res, err := Run(ctx, src, dst, Options{})
	if err == nil || !strings.Contains(err.Error(), victim.Short()) || !strings.Contains(err.Error(), bi.Pack.Short()) {
		t.Fatalf("copy of a damaged blob: %v", err)
	}
	// the first snapshot was copied whole before
	if res == nil || res.Copied != 1 {
		t.Fatalf("result %+v", res)
	}
	got := snapshots(t, dst)
	if len(got) != 1 || got[0].CopiedFrom.Snapshot != s1.ID {
		t.Fatalf("target snapshots: %v", got)
	}
	checkClean(t, dst)
}

// A directory unchanged since a snapshot copied before is taken whole from
// that copy: neither walked nor read again.
func TestUnchangedDirectoryIsTakenWhole(t *testing.T) {
	src, dst := newRepo(t, "off"), newRepo(t, "fastest")
	blob := func(seed uint64) repo.ID {
		c := chunk(seed, 20<<10, false)
		id := src.Hash(c)
		_, err := src.SaveBlob(ctx, repo.DataBlob, id, c)
		must(t, err)
		return id
	}
	tree := func(nodes ...*repo.Node) repo.ID {
		tr := &repo.Tree{Nodes: nodes}
		tr.Sort()
		id, err := src.SaveTree(ctx, tr)
		must(t, err)
		return id
	}
	file := func(name string, ids ...repo.ID) *repo.Node {
		return &repo.Node{Name: name, Type: repo.NodeFile, Mode: 0o600, Size: uint64(len(ids)) * 20 << 10, Mtime: 7, Content: ids}
	}
	dir := func(name string, sub repo.ID) *repo.Node {
		return &repo.Node{Name: name, Type: repo.NodeDir, Mode: 0o755, Subtree: sub}
	}
	keep := tree(dir("deeper", tree(file("k1", blob(1), blob(2)))), file("k2", blob(3)))
	root1 := tree(dir("keep", keep), dir("change", tree(file("c", blob(4)))))
	root2 := tree(dir("keep", keep), dir("change", tree(file("c", blob(5)))))
	must(t, src.Flush(ctx))
	t0 := time.Now()
	s1 := &repo.Snapshot{Time: t0, Host: "h", Paths: []string{"/"}, Tree: root1, Outcomes: map[string]int64{}}
	_, err := src.SaveSnapshot(ctx, s1)
	must(t, err)
	s2 := &repo.Snapshot{Time: t0.Add(time.Hour), Host: "h", Paths: []string{"/"}, Tree: root2, Parent: &s1.ID, Outcomes: map[string]int64{}}
	_, err = src.SaveSnapshot(ctx, s2)
	must(t, err)

	_, err = Run(ctx, src, dst, Options{Refs: []string{s1.ID.String()}})
	must(t, err)
	res, err := Run(ctx, src, dst, Options{})
	must(t, err)
	// sent: blob 5, the changed directory, the root
	if res.Copied != 1 || res.TreesReused != 1 || res.BlobsRead != 1 || res.BlobsNotRead != 0 || res.BlobsSent != 3 {
		t.Fatalf("copy beside an unchanged directory: %+v", res)
	}
	checkClean(t, dst)
	got := snapshots(t, dst)
	want, have := contents(t, src, root2), contents(t, dst, got[len(got)-1].Tree)
	if len(want) != 3 || len(have) != 3 {
		t.Fatalf("files: %d, want %d", len(have), len(want))
	}
	for p, b := range want {
		if !bytes.Equal(have[p], b) {
			t.Fatalf("%s differs", p)
		}
	}
}

// A Windows file's alternate data streams are data blobs like its
// content: they are re-keyed and sent, and the copy checks clean and
// reads back the same streams; a second copy of a changed snapshot that
// keeps the file does not reuse the directory blindly.
func TestWindowsStreamsAreCopied(t *testing.T) {
	src, dst := newRepo(t, "off"), newRepo(t, "default")
	content, zone, extra := chunk(11, 64<<10, false), []byte("[ZoneTransfer]\r\nZoneId=3\r\n"), chunk(12, 40<<10, true)
	save := func(b []byte) repo.ID {
		id := src.Hash(b)
		_, err := src.SaveBlob(ctx, repo.DataBlob, id, b)
		must(t, err)
		return id
	}
	n := &repo.Node{Name: "setup.exe", Type: repo.NodeFile, Mode: 0o644, Size: uint64(len(content)), Content: []repo.ID{save(content)},
		Attrs: 0x20, Created: 1_700_000_000_000_000_000,
		Streams: []repo.Stream{{Name: "Zone.Identifier", Size: uint64(len(zone)), Content: []repo.ID{save(zone)}},
			{Name: "extra", Size: uint64(len(extra)), Content: []repo.ID{save(extra)}}}}
	sub, err := src.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{n}})
	must(t, err)
	root, err := src.SaveTree(ctx, &repo.Tree{Nodes: []*repo.Node{{Name: "C", Type: repo.NodeDir, Mode: 0o755, Subtree: sub}}})
	must(t, err)
	must(t, src.Flush(ctx))
	s := &repo.Snapshot{Time: time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC), Host: "win", Paths: []string{`C:\`}, Tree: root, Program: "test"}
	_, err = src.SaveSnapshot(ctx, s)
	must(t, err)

	res, err := Run(ctx, src, dst, Options{})
	must(t, err)
	if res.Copied != 1 || res.DataBlobsSent != 3 {
		t.Fatalf("copied %d, %d data blobs sent; want 1, 3 (content and two streams)", res.Copied, res.DataBlobsSent)
	}
	checkClean(t, dst)
	c := snapshots(t, dst)[0]
	top, err := dst.LoadTree(ctx, c.Tree)
	must(t, err)
	tr, err := dst.LoadTree(ctx, top.Nodes[0].Subtree)
	must(t, err)
	got := tr.Nodes[0]
	if len(got.Streams) != 2 || got.Attrs != n.Attrs || got.Created != n.Created {
		t.Fatalf("copied node %+v", got)
	}
	for i, want := range [][]byte{zone, extra} {
		st := got.Streams[i]
		if st.Name != n.Streams[i].Name || len(st.Content) != 1 || st.Content[0] == n.Streams[i].Content[0] {
			t.Fatalf("stream %d: %+v (source %+v): not re-keyed", i, st, n.Streams[i])
		}
		b, err := dst.LoadBlob(ctx, st.Content[0])
		must(t, err)
		if !bytes.Equal(b, want) {
			t.Fatalf("stream %s reads back %q", st.Name, b)
		}
	}
}

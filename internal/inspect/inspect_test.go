package inspect_test

import (
	"context"
	"errors"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/inspect"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// file describes one entry of a test snapshot.
type file struct {
	path    string
	typ     repo.NodeType // 0: regular file
	data    string
	outcome outcome.Outcome
	reason  string
	links   uint64 // hard links share inode
	inode   uint64
	noData  bool // recorded without content (failed before any version)
}

// build stores files as a snapshot and returns it. Content is split into
// blobs of at most 4 bytes, so files share blobs and have several.
func build(t *testing.T, r *repo.Repository, files []file) *repo.Snapshot {
	t.Helper()
	ctx := context.Background()
	dirs := map[string][]*repo.Node{"/": nil}
	var ensure func(d string)
	ensure = func(d string) {
		if _, ok := dirs[d]; ok {
			return
		}
		dirs[d] = nil
		ensure(path.Dir(d))
	}
	for _, f := range files {
		ensure(path.Dir(f.path))
		n := &repo.Node{Name: path.Base(f.path), Type: f.typ, Mode: 0o644, Mtime: 1e18, Outcome: f.outcome, Reason: f.reason, Links: 1, Inode: f.inode}
		if f.typ == 0 {
			n.Type = repo.NodeFile
		}
		if f.links > 0 {
			n.Links = f.links
		}
		if n.Type == repo.NodeFile && !f.noData {
			for i := 0; i < len(f.data); i += 4 {
				chunk := []byte(f.data[i:min(i+4, len(f.data))])
				id := r.Hash(chunk)
				if _, err := r.SaveBlob(ctx, repo.DataBlob, id, chunk); err != nil {
					t.Fatal(err)
				}
				n.Content = append(n.Content, id)
			}
			n.Size = uint64(len(f.data))
		}
		if n.Type == repo.NodeSymlink {
			n.LinkTarget = f.data
		}
		dirs[path.Dir(f.path)] = append(dirs[path.Dir(f.path)], n)
	}
	// trees bottom-up: a directory once all below it are stored
	names := make([]string, 0, len(dirs))
	for d := range dirs {
		names = append(names, d)
	}
	ids := map[string]repo.ID{}
	for len(ids) < len(names) {
		for _, d := range names {
			if _, done := ids[d]; done {
				continue
			}
			ready := true
			for c := range dirs {
				if c != d && path.Dir(c) == d {
					if _, ok := ids[c]; !ok {
						ready = false
					}
				}
			}
			if !ready {
				continue
			}
			tree := &repo.Tree{Nodes: slices.Clone(dirs[d])}
			for c := range dirs {
				if c != d && c != "/" && path.Dir(c) == d {
					tree.Nodes = append(tree.Nodes, &repo.Node{Name: path.Base(c), Type: repo.NodeDir, Mode: 0o755, Subtree: ids[c]})
				}
			}
			tree.Sort()
			id, err := r.SaveTree(ctx, tree)
			if err != nil {
				t.Fatal(err)
			}
			ids[d] = id
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s := &repo.Snapshot{Tree: ids["/"], Host: "h", Paths: []string{"/"}}
	if _, err := r.SaveSnapshot(ctx, s); err != nil {
		t.Fatal(err)
	}
	return s
}

func newRepo(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Init(context.Background(), backend.NewMem(), repo.Credential{KeyFile: repo.NewKeyFileSecret()}, repo.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// countingTrees counts the tree reads.
type countingTrees struct {
	inspect.Blobs
	mu    sync.Mutex
	reads map[repo.ID]int
}

func (c *countingTrees) LoadTree(ctx context.Context, id repo.ID) (*repo.Tree, error) {
	c.mu.Lock()
	c.reads[id]++
	c.mu.Unlock()
	return c.Blobs.LoadTree(ctx, id)
}

var sample = []file{
	{path: "/srv/app/a.txt", data: "alpha"},    // 5
	{path: "/srv/app/b.log", data: "log line"}, // 8
	{path: "/srv/app/db/main.db", data: "0123456789abcdef", outcome: outcome.Changed},
	{path: "/srv/app/db/old.db", data: "xyz", outcome: outcome.Stale, reason: "locked"},
	{path: "/srv/app/db/gone.db", outcome: outcome.Failed, reason: "permission", noData: true},
	{path: "/srv/app/links/x", data: "hardlinked", links: 2, inode: 7},
	{path: "/srv/app/links/y", data: "hardlinked", links: 2, inode: 7},
	{path: "/srv/app/links/sym", typ: repo.NodeSymlink, data: "x"},
	{path: "/srv/app/README", data: "read me"},
	{path: "/home/u/readme.md", data: "Readme"},
}

func TestRestoreSizeCountsWhatARestoreWrites(t *testing.T) {
	r := newRepo(t)
	s := build(t, r, sample)
	st, err := inspect.RestoreSize(context.Background(), r, []*repo.Snapshot{s})
	if err != nil {
		t.Fatal(err)
	}
	// files: all but gone.db; bytes: hard link once
	want := inspect.SizeStats{Snapshots: 1, Files: 8, Dirs: 6, Others: 1,
		Bytes: 5 + 8 + 16 + 3 + 10 + 7 + 6, NotWhole: 2, NotWholeBytes: 16 + 3, NotStored: 1}
	want.Outcomes[outcome.OK] = 6
	want.Outcomes[outcome.Changed] = 1
	want.Outcomes[outcome.Stale] = 1
	want.Outcomes[outcome.Failed] = 1
	if *st != want {
		t.Fatalf("restore-size\n got %+v\nwant %+v", *st, want)
	}
}

func TestRestoreSizeOfManySnapshotsReadsSharedTreesOnce(t *testing.T) {
	r := newRepo(t)
	s1 := build(t, r, sample)
	changed := slices.Clone(sample)
	changed[0].data = "alpha, longer" // +8 bytes, /srv/app and / change; /home, /srv/app/db do not
	s2 := build(t, r, changed)
	ct := &countingTrees{Blobs: r, reads: map[repo.ID]int{}}
	st, err := inspect.RestoreSize(context.Background(), ct, []*repo.Snapshot{s1, s2, s1})
	if err != nil {
		t.Fatal(err)
	}
	one := int64(5 + 8 + 16 + 3 + 10 + 7 + 6)
	if st.Snapshots != 3 || st.Files != 24 || st.Bytes != 3*one+8 || st.Dirs != 18 || st.NotWhole != 6 {
		t.Fatalf("three snapshots: %+v", *st)
	}
	for id, n := range ct.reads {
		// the directories with hard links (links and its parents) are
		// counted per snapshot; every other tree is read once
		if n > 1 {
			tr, _ := r.LoadTree(context.Background(), id)
			if tr.Find("x") == nil && tr.Find("links") == nil && tr.Find("app") == nil && tr.Find("srv") == nil {
				t.Errorf("tree %s (%d nodes) read %d times", id.Short(), len(tr.Nodes), n)
			}
		}
	}
	if n := ct.reads[mustLookup(t, r, s1, "/home").Subtree]; n != 1 {
		t.Errorf("/home read %d times, want once", n)
	}
}

func mustLookup(t *testing.T, r inspect.Trees, s *repo.Snapshot, p string) *repo.Node {
	t.Helper()
	n, err := inspect.Lookup(context.Background(), r, s.Tree, p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRawDataCountsEachBlobOnce(t *testing.T) {
	r := newRepo(t)
	s1 := build(t, r, sample)
	changed := slices.Clone(sample)
	changed[0].data = "alphaNEW" // "alph" shared, "aNEW" new
	s2 := build(t, r, changed)
	ctx := context.Background()
	// the expectation from first principles: every blob reachable, once
	want := map[repo.ID]bool{}
	var walk func(id repo.ID)
	walk = func(id repo.ID) {
		want[id] = true
		tr, err := r.LoadTree(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tr.Nodes {
			for _, c := range n.Content {
				want[c] = true
			}
			if !n.Subtree.IsNull() {
				walk(n.Subtree)
			}
		}
	}
	walk(s1.Tree)
	walk(s2.Tree)
	var raw, stored int64
	for id := range want {
		bi, ok := r.LookupBlob(id)
		if !ok {
			t.Fatal("blob not indexed")
		}
		raw += int64(bi.RawLen)
		stored += int64(bi.Length)
	}
	st, err := inspect.RawData(ctx, r, []*repo.Snapshot{s1, s2, s2})
	if err != nil {
		t.Fatal(err)
	}
	if st.Blobs != int64(len(want)) || st.RawBytes != raw || st.StoredBytes != stored || st.Missing != 0 || st.DataBlobs+st.TreeBlobs != st.Blobs {
		t.Fatalf("raw-data %+v; want %d blobs, %d raw, %d stored", *st, len(want), raw, stored)
	}
	// "hardlinked" twice and "alpha" in both snapshots: fewer blobs than references
	one, _ := inspect.RawData(ctx, r, []*repo.Snapshot{s1})
	if one.Blobs >= st.Blobs || one.DataBlobs != 16 {
		t.Fatalf("one snapshot: %+v (want 16 distinct content blobs)", *one)
	}
}

func find(t *testing.T, f *inspect.Finder, s *repo.Snapshot) []string {
	t.Helper()
	var got []string
	if err := f.Find(context.Background(), s.Tree, func(p string, _ *repo.Node) error {
		got = append(got, p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestFindPatterns(t *testing.T) {
	r := newRepo(t)
	s := build(t, r, sample)
	for _, c := range []struct {
		pats []string
		ic   bool
		want []string
	}{
		{[]string{"*.db"}, false, []string{"/srv/app/db/gone.db", "/srv/app/db/main.db", "/srv/app/db/old.db"}},
		{[]string{"db"}, false, []string{"/srv/app/db"}},
		{[]string{"db/"}, false, []string{"/srv/app/db"}},
		{[]string{"a.txt/"}, false, nil},
		{[]string{"/srv/app/*.txt"}, false, []string{"/srv/app/a.txt"}},
		{[]string{"/app/*.txt"}, false, nil},
		{[]string{"app/*.txt"}, false, []string{"/srv/app/a.txt"}},
		{[]string{"/srv/**/x"}, false, []string{"/srv/app/links/x"}},
		{[]string{"readme*"}, false, []string{"/home/u/readme.md"}},
		{[]string{"readme*"}, true, []string{"/home/u/readme.md", "/srv/app/README"}},
		{[]string{"*.log", "sym"}, false, []string{"/srv/app/b.log", "/srv/app/links/sym"}},
		{[]string{"nothing"}, false, nil},
	} {
		f, err := inspect.NewFinder(r, c.pats, c.ic)
		if err != nil {
			t.Fatal(err)
		}
		got := find(t, f, s)
		sort.Strings(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("find %q (ignore case %v): %q, want %q", c.pats, c.ic, got, c.want)
		}
	}
	if _, err := inspect.NewFinder(r, []string{"[x"}, false); err == nil {
		t.Error("a bad pattern was accepted")
	}
}

func TestFindOverSnapshotsSkipsOnlyWhatCannotMatch(t *testing.T) {
	r := newRepo(t)
	s1 := build(t, r, sample)
	more := append(slices.Clone(sample), file{path: "/home/u/new.db", data: "n"})
	s2 := build(t, r, more)
	ct := &countingTrees{Blobs: r, reads: map[repo.ID]int{}}
	f, err := inspect.NewFinder(ct, []string{"new.db", "main.db"}, false)
	if err != nil {
		t.Fatal(err)
	}
	got1, got2, got1again := find(t, f, s1), find(t, f, s2), find(t, f, s1)
	if !slices.Equal(got1, []string{"/srv/app/db/main.db"}) || !slices.Equal(got2, []string{"/home/u/new.db", "/srv/app/db/main.db"}) || !slices.Equal(got1again, got1) {
		t.Fatalf("s1 %q, s2 %q, s1 again %q", got1, got2, got1again)
	}
	// /srv/app/links held no match in s1: not read again for s2
	if n := ct.reads[mustLookup(t, r, s1, "/srv/app/links").Subtree]; n != 1 {
		t.Errorf("/srv/app/links read %d times, want once", n)
	}
}

func TestLookup(t *testing.T) {
	r := newRepo(t)
	s := build(t, r, sample)
	if n := mustLookup(t, r, s, "/srv/app/a.txt"); n.Size != 5 || n.Type != repo.NodeFile {
		t.Fatalf("a.txt: %+v", n)
	}
	if n := mustLookup(t, r, s, "/"); n.Type != repo.NodeDir || n.Subtree != s.Tree {
		t.Fatalf("root: %+v", n)
	}
	_, err := inspect.Lookup(context.Background(), r, s.Tree, "/srv/app/nope/x")
	var nf *inspect.NotFoundError
	if !errors.As(err, &nf) || nf.Nearest != "/srv/app" || !errors.Is(err, inspect.ErrNotInSnapshot) {
		t.Fatalf("missing path: %v", err)
	}
	_, err = inspect.Lookup(context.Background(), r, s.Tree, "/srv/app/a.txt/x")
	if !errors.As(err, &nf) || nf.NotDir != "/srv/app/a.txt" {
		t.Fatalf("below a file: %v", err)
	}
}

func TestWalkOrderAndDamage(t *testing.T) {
	r := newRepo(t)
	s := build(t, r, sample)
	var got []string
	err := inspect.NewWalker(r).Walk(context.Background(), "/", s.Tree, inspect.Visitor{Node: func(p string, _ *repo.Node) error {
		got = append(got, p)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	// each directory before its entries, entries by name
	for i := 1; i < len(got); i++ {
		a, b := strings.Split(got[i-1], "/"), strings.Split(got[i], "/")
		if slices.Compare(a, b) >= 0 {
			t.Fatalf("walk order: %q before %q", got[i-1], got[i])
		}
	}
	if len(got) != len(sample)+6 {
		t.Fatalf("walked %d nodes: %q", len(got), got)
	}
	// a tree that cannot be read names its directory
	broken := &brokenTrees{Trees: r, bad: mustLookup(t, r, s, "/srv/app/db").Subtree}
	err = inspect.NewWalker(broken).Walk(context.Background(), "/", s.Tree, inspect.Visitor{})
	var te *inspect.TreeError
	if !errors.As(err, &te) || te.Path != "/srv/app/db" {
		t.Fatalf("damaged tree: %v", err)
	}
	// ... or is skipped when the visitor says so
	var skipped []string
	got = got[:0]
	err = inspect.NewWalker(broken).Walk(context.Background(), "/", s.Tree, inspect.Visitor{
		Node:      func(p string, _ *repo.Node) error { got = append(got, p); return nil },
		TreeError: func(te *inspect.TreeError) error { skipped = append(skipped, te.Path); return nil }})
	if err != nil || !slices.Equal(skipped, []string{"/srv/app/db"}) || slices.Contains(got, "/srv/app/db/main.db") || !slices.Contains(got, "/srv/app/links/x") {
		t.Fatalf("skipping a damaged tree: %v, skipped %q, walked %q", err, skipped, got)
	}
}

type brokenTrees struct {
	inspect.Trees
	bad repo.ID
}

func (b *brokenTrees) LoadTree(ctx context.Context, id repo.ID) (*repo.Tree, error) {
	if id == b.bad {
		return nil, errors.New("damaged")
	}
	return b.Trees.LoadTree(ctx, id)
}

func TestResolveWindowsCase(t *testing.T) {
	r := newRepo(t)
	s := build(t, r, []file{
		{path: "/C/data/File.txt", data: "hello"},
		{path: "/C/data/file.TXT", data: "other"},
		{path: "/C/Users/Me/x", data: "x"},
		{path: "/UNC/srv/share/d/y", data: "y"},
	})
	ctx := context.Background()
	for _, tc := range []struct {
		rules    pathmap.Rules
		in, want string
	}{
		{pathmap.Windows, "/c/DATA/file.txt", "/C/data/File.txt"},
		{pathmap.Windows, "/C/data/file.TXT", "/C/data/file.TXT"}, // the exact name first
		{pathmap.Windows, "/c/users/me", "/C/Users/Me"},
		{pathmap.Windows, "/unc/SRV/Share/D/Y", "/UNC/srv/share/d/y"},
		{pathmap.Windows, "/c/data/nope/x", "/C/data/nope/x"},
		{pathmap.Windows, "/C/data/File.txt/below", "/C/data/File.txt/below"},
		{pathmap.Unix, "/c/DATA/file.txt", "/c/DATA/file.txt"},
		{pathmap.Windows, "/", "/"},
	} {
		got, err := inspect.Resolve(ctx, r, s.Tree, tc.in, tc.rules)
		if err != nil || got != tc.want {
			t.Errorf("%v Resolve(%q) = %q, %v; want %q", tc.rules, tc.in, got, err, tc.want)
		}
	}
}

package archiver_test

import (
	"bytes"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/inspect"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// winMetaView adds what a Windows view gives to volumeView: attributes and
// creation times in the stat, security descriptors and streams.
type winMetaView struct {
	*volumeView
	attrs   map[string]uint32
	sds     map[string][]byte
	streams map[string]map[string]string // path -> stream name -> content
	opened  map[string]int               // streams opened
}

var created = time.Date(2018, 7, 6, 5, 4, 3, 200, time.UTC)

func (v *winMetaView) Lstat(p string) (*view.Stat, error) {
	st, err := v.volumeView.Lstat(p)
	if err == nil {
		setWindowsStat(st, v.attrs[p])
	}
	return st, err
}

// Open gives a file whose fstat has the attributes too, as on Windows.
func (v *winMetaView) Open(p string) (view.File, error) {
	if p == "/C/data/denied.db" {
		return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrPermission}
	}
	f, err := v.volumeView.Open(p)
	if err != nil {
		return nil, err
	}
	return &attrFile{File: f, attrs: v.attrs[p]}, nil
}

type attrFile struct {
	view.File
	attrs uint32
}

func (f *attrFile) Stat() (*view.Stat, error) {
	st, err := f.File.Stat()
	if err == nil {
		setWindowsStat(st, f.attrs)
	}
	return st, err
}

// setWindowsStat gives st the test's attributes (on Windows in place of the
// real ones), with the creation time when there are any.
func setWindowsStat(st *view.Stat, attrs uint32) {
	st.Attrs, st.Created = attrs, time.Time{}
	if attrs != 0 {
		st.Created = created
	}
}

func (v *winMetaView) WindowsMeta(p string) (*view.WindowsMeta, error) {
	m := &view.WindowsMeta{SD: v.sds[p]}
	if m.SD != nil {
		m.SDParts = repo.SDOwner | repo.SDGroup | repo.SDDACL
	}
	for name, data := range v.streams[p] {
		m.Streams = append(m.Streams, view.Stream{Name: name, Size: int64(len(data))})
	}
	return m, nil
}

type streamFile struct {
	*bytes.Reader
	size int64
}

func (f streamFile) Close() error { return nil }
func (f streamFile) Stat() (*view.Stat, error) {
	return &view.Stat{Type: view.TypeRegular, Size: f.size}, nil
}

func (v *winMetaView) OpenStream(p, name string) (view.File, error) {
	data, ok := v.streams[p][name]
	if !ok || name == "denied" {
		return nil, &fs.PathError{Op: "open", Path: p + ":" + name, Err: fs.ErrPermission}
	}
	v.opened[p+":"+name]++
	return streamFile{bytes.NewReader([]byte(data)), int64(len(data))}, nil
}

// Windows metadata is recorded from a view that has it: attributes and
// creation time from the stat, the descriptor as read, streams as data
// blobs that deduplicate; an unchanged file reuses all of it; a stream that
// cannot be read is a problem of its own and the file is kept.
func TestWindowsMetadataRecorded(t *testing.T) {
	c := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(c, "data", "sub"), 0o755))
	for _, f := range []string{"a.exe", "b.exe", "sub/plain.txt", "denied.db"} {
		must(t, os.WriteFile(filepath.Join(c, "data", f), []byte("content of "+f), 0o644))
	}
	zone := "[ZoneTransfer]\r\nZoneId=3\r\n"
	big := string(bytes.Repeat([]byte("a stream bigger than one chunk "), 40_000))
	sd := []byte{1, 0, 4, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0, 2, 0, 8, 0, 0, 0, 0, 0}
	v := &winMetaView{
		volumeView: &volumeView{vols: map[string]string{"/C": c}},
		attrs:      map[string]uint32{"/C/data/a.exe": 0x23, "/C/data/sub": 0x12},
		sds:        map[string][]byte{"/C/data/a.exe": sd, "/C/data/sub": sd},
		streams: map[string]map[string]string{
			"/C/data/a.exe": {"Zone.Identifier": zone, "big": big},
			"/C/data/b.exe": {"Zone.Identifier": zone, "denied": "x"},
			// a file that cannot be read: its streams are not tried
			"/C/data/denied.db": {"s": "x"},
		},
		opened: map[string]int{},
	}
	rules := pathmap.Windows
	r := newRepo(t)
	ctx := context.Background()
	run := func(parent repo.ID) *archiver.Result {
		t.Helper()
		res, err := archiver.New(r, v, archiver.Options{Rules: &rules, Parent: parent}).Run(ctx, []string{`C:\data`})
		must(t, err)
		must(t, r.Flush(ctx))
		return res
	}
	first := run(repo.ID{})
	lookup := func(tree repo.ID, p string) *repo.Node {
		t.Helper()
		n, err := inspect.Lookup(ctx, r, tree, p)
		must(t, err)
		return n
	}
	a := lookup(first.Tree, "/C/data/a.exe")
	if a.Attrs != 0x23 || a.Created != created.UnixNano() || !bytes.Equal(a.SD, sd) || a.SDParts != repo.SDOwner|repo.SDGroup|repo.SDDACL {
		t.Errorf("a.exe: attrs %#x created %d sd %x parts %d", a.Attrs, a.Created, a.SD, a.SDParts)
	}
	streams := map[string]repo.Stream{}
	for _, s := range a.Streams {
		streams[s.Name] = s
	}
	if s := streams["big"]; s.Size != uint64(len(big)) || len(s.Content) < 2 {
		t.Errorf("stream big: size %d in %d blobs, want %d bytes in several chunks", s.Size, len(s.Content), len(big))
	}
	b := lookup(first.Tree, "/C/data/b.exe")
	if len(b.Streams) != 1 || b.Streams[0].Name != "Zone.Identifier" || len(b.Streams[0].Content) != 1 ||
		b.Streams[0].Content[0] != streams["Zone.Identifier"].Content[0] {
		t.Errorf("b.exe streams %+v: want its Zone.Identifier, the same blob as a.exe's", b.Streams)
	}
	if len(b.Content) == 0 || b.Outcome != a.Outcome {
		t.Errorf("b.exe: a stream that failed cost the file: %+v", b)
	}
	sort.Slice(first.Problems, func(i, j int) bool { return first.Problems[i].Path < first.Problems[j].Path })
	if len(first.Problems) != 2 || first.Problems[0].Path != `C:\data\b.exe:denied` || first.Problems[0].Reason != "permission" ||
		first.Problems[1].Path != `C:\data\denied.db` {
		t.Errorf("problems %+v, want C:\\data\\b.exe:denied and C:\\data\\denied.db failed: permission", first.Problems)
	}
	if v.opened["/C/data/denied.db:s"] != 0 {
		t.Error("the streams of a file that could not be read were read")
	}
	if sub := lookup(first.Tree, "/C/data/sub"); sub.Attrs != 0x12 || !bytes.Equal(sub.SD, sd) {
		t.Errorf("directory sub: attrs %#x sd %x", sub.Attrs, sub.SD)
	}
	if p := lookup(first.Tree, "/C/data/sub/plain.txt"); p.Attrs != 0 || p.Created != 0 || p.SD != nil || p.Streams != nil {
		t.Errorf("plain.txt has Windows metadata it was not given: %+v", p)
	}
	for _, blob := range a.DataBlobs() {
		if !r.Known(blob) {
			t.Errorf("blob %s of a.exe not stored", blob.Short())
		}
	}

	// unchanged files: nothing read again, their streams and descriptor reused
	opened := v.opened["/C/data/a.exe:big"]
	second := run(first.Tree)
	if second.Stats.FilesRead != 0 || v.opened["/C/data/a.exe:big"] != opened {
		t.Errorf("incremental read %d files and opened big %d times", second.Stats.FilesRead, v.opened["/C/data/a.exe:big"]-opened)
	}
	a2 := lookup(second.Tree, "/C/data/a.exe")
	if len(a2.Streams) != 2 || !bytes.Equal(a2.SD, sd) || a2.Attrs != 0x23 {
		t.Errorf("incremental lost Windows metadata: %+v", a2)
	}
}

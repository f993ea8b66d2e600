package restore_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
	"github.com/stillpoint-backup/stillpoint/internal/view"
	"github.com/stillpoint-backup/stillpoint/internal/winmeta"
	"golang.org/x/sys/windows"
)

func underWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}

func sddl(t *testing.T, p string) string {
	t.Helper()
	b, _, err := winmeta.ReadSD(p)
	if err != nil {
		t.Fatalf("reading the security descriptor of %s: %v", p, err)
	}
	return (*windows.SECURITY_DESCRIPTOR)(unsafe.Pointer(&b[0])).String()
}

// A Windows backup and restore keep attributes, creation and modification
// times, security descriptors and alternate data streams; what Wine does
// not keep in the first place (creation times, streams) is checked on
// Windows only, and said.
func TestWindowsMetadataRoundTrip(t *testing.T) {
	base := t.TempDir()
	src := filepath.Join(base, "src")
	check(t, os.MkdirAll(filepath.Join(src, "sub"), 0o755))
	attrs := map[string]uint32{
		"ro.txt":        winmeta.AttrReadOnly | winmeta.AttrArchive,
		"hidden.txt":    winmeta.AttrHidden | winmeta.AttrSystem | winmeta.AttrArchive,
		"sub/plain.txt": winmeta.AttrArchive | winmeta.AttrNotContentIndexed,
		"sub":           winmeta.AttrHidden,
	}
	var all []string
	t.Cleanup(func() { // read-only files would outlive t.TempDir's cleanup
		for _, p := range all {
			_ = winmeta.SetAttrs(p, winmeta.AttrNormal)
		}
	})
	created := time.Date(2015, 6, 7, 8, 9, 10, 100_000_000, time.UTC)
	modified := time.Date(2020, 2, 29, 12, 34, 56, 700_000_000, time.UTC)
	for _, f := range []string{"ro.txt", "hidden.txt", "sub/plain.txt"} {
		check(t, os.WriteFile(filepath.Join(src, f), []byte("content of "+f), 0o644))
	}
	dacl := "D:P(A;;FA;;;WD)(A;;FR;;;BU)"
	sd, err := windows.SecurityDescriptorFromString(dacl)
	check(t, err)
	sdBytes := unsafe.Slice((*byte)(unsafe.Pointer(sd)), sd.Length())
	if _, err := winmeta.SetSD(filepath.Join(src, "ro.txt"), sdBytes, winmeta.PartDACL); err != nil {
		t.Fatalf("setting the DACL of the source: %v", err)
	}
	// Wine 8 makes descriptors up from the Unix mode and keeps none it is given
	sdKept := strings.Contains(sddl(t, filepath.Join(src, "ro.txt")), "D:P(A;;FA;;;WD)")
	if !sdKept && !underWine() {
		t.Fatalf("the DACL set on the source is not there: %s", sddl(t, filepath.Join(src, "ro.txt")))
	}
	zone := "[ZoneTransfer]\r\nZoneId=3\r\n"
	streams := false
	if s, err := winmeta.CreateStream(filepath.Join(src, "hidden.txt"), "Zone.Identifier"); err == nil {
		s.Write([]byte(zone))
		s.Close()
		list, err := winmeta.Streams(filepath.Join(src, "hidden.txt"))
		streams = err == nil && len(list) == 1
		if !streams {
			// Wine makes a file "hidden.txt:Zone.Identifier" and lists no stream
			os.Remove(filepath.Join(src, "hidden.txt:Zone.Identifier"))
		}
	}
	if !streams && !underWine() {
		t.Fatal("alternate data streams cannot be made on this Windows file system")
	}
	for _, name := range []string{"sub/plain.txt", "ro.txt", "hidden.txt", "sub"} {
		p := filepath.Join(src, name)
		all = append(all, p)
		check(t, winmeta.SetTimes(p, created, modified))
		check(t, winmeta.SetAttrs(p, attrs[name]))
	}
	for name, set := range attrs {
		in, err := winmeta.Lstat(filepath.Join(src, name))
		check(t, err)
		if got := in.Attrs & winmeta.Settable; got != set {
			if !underWine() {
				t.Fatalf("%s: attributes %s after setting %s", name, winmeta.AttrString(got), winmeta.AttrString(set))
			}
			t.Logf("Wine: %s keeps attributes %s of %s", name, winmeta.AttrString(got), winmeta.AttrString(set))
			attrs[name] = got
		}
	}
	srcInfo, err := winmeta.Lstat(filepath.Join(src, "ro.txt"))
	check(t, err)
	createdKept := srcInfo.Created.Equal(created)
	if !createdKept && !underWine() {
		t.Fatalf("creation time %v, want %v", srcInfo.Created, created)
	}

	ctx := context.Background()
	r, err := repo.Init(ctx, backend.NewMem(), repo.Credential{Password: "x"}, repo.DefaultConfig)
	check(t, err)
	res, err := archiver.New(r, &view.Live{}, archiver.Options{}).Run(ctx, []string{src})
	check(t, err)
	check(t, r.Flush(ctx))
	if len(res.Problems) != 0 {
		t.Fatalf("problems: %+v", res.Problems)
	}
	dst := t.TempDir()
	var events []restore.Event
	rr, err := restore.Run(ctx, r, res.Tree, restore.Options{Target: dst, OnEvent: func(e restore.Event) { events = append(events, e) }})
	check(t, err)
	rp, err := pathmap.Native.ToRepo(src)
	check(t, err)
	out := filepath.Join(dst, filepath.FromSlash(rp))
	for name := range attrs {
		all = append(all, filepath.Join(out, name))
	}
	if rr.Errors != 0 {
		t.Fatalf("restore errors: %+v", events)
	}
	for name, want := range attrs {
		in, err := winmeta.Lstat(filepath.Join(out, name))
		check(t, err)
		if got := in.Attrs & winmeta.Settable; got != want {
			t.Errorf("%s: attributes %s, want %s", name, winmeta.AttrString(got), winmeta.AttrString(want))
		}
		if !in.Modified.Equal(modified) {
			t.Errorf("%s: modified %v, want %v", name, in.Modified, modified)
		}
		if createdKept && !in.Created.Equal(created) {
			t.Errorf("%s: created %v, want %v", name, in.Created, created)
		}
	}
	if !createdKept {
		t.Log("Wine: creation times are not kept by Wine 8 itself, so their restore is checked on Windows only")
	}
	if got, want := sddl(t, filepath.Join(out, "ro.txt")), sddl(t, filepath.Join(src, "ro.txt")); got != want {
		t.Errorf("security descriptor of ro.txt: %s, want %s", got, want)
	}
	if !sdKept {
		t.Log("Wine: security descriptors are made up from Unix modes and none set is kept, so their restore is checked on Windows only")
	}
	if streams {
		b, err := os.ReadFile(filepath.Join(out, "hidden.txt") + ":Zone.Identifier")
		if err != nil || string(b) != zone {
			t.Errorf("stream Zone.Identifier: %q, %v", b, err)
		}
	} else {
		t.Log("Wine: no alternate data streams (Wine 8 lists none), so their restore is checked on Windows only")
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A snapshot from Unix restored on Windows: read-only from the mode, the
// mtime, and one note for xattrs and setuid bits, which Windows has no
// place for.
func TestRestoreUnixNodesOnWindows(t *testing.T) {
	ctx := context.Background()
	r, err := repo.Init(ctx, backend.NewMem(), repo.Credential{Password: "x"}, repo.DefaultConfig)
	check(t, err)
	blob := func(data string) repo.ID {
		id := r.Hash([]byte(data))
		_, err := r.SaveBlob(ctx, repo.DataBlob, id, []byte(data))
		check(t, err)
		return id
	}
	mtime := time.Date(2022, 5, 6, 7, 8, 9, 0, time.UTC).UnixNano()
	tree := &repo.Tree{Nodes: []*repo.Node{
		{Name: "ro", Type: repo.NodeFile, Mode: 0o444, Size: 2, Mtime: mtime, Links: 1, Content: []repo.ID{blob("ro")},
			Xattrs: []repo.Xattr{{Name: "user.x", Value: []byte("v")}}},
		{Name: "rw", Type: repo.NodeFile, Mode: 0o4755, Size: 2, Mtime: mtime, Links: 1, Content: []repo.ID{blob("rw")}},
	}}
	root, err := r.SaveTree(ctx, tree)
	check(t, err)
	check(t, r.Flush(ctx))
	dst := t.TempDir()
	var events []restore.Event
	rr, err := restore.Run(ctx, r, root, restore.Options{Target: dst, OnEvent: func(e restore.Event) { events = append(events, e) }})
	check(t, err)
	t.Cleanup(func() { _ = winmeta.SetAttrs(filepath.Join(dst, "ro"), winmeta.AttrNormal) })
	if rr.Errors != 0 || rr.Files != 2 {
		t.Fatalf("restore %+v: %+v", rr, events)
	}
	for name, ro := range map[string]bool{"ro": true, "rw": false} {
		in, err := winmeta.Lstat(filepath.Join(dst, name))
		check(t, err)
		if (in.Attrs&winmeta.AttrReadOnly != 0) != ro || in.Modified.UnixNano() != mtime {
			t.Errorf("%s: attributes %s, modified %v", name, winmeta.AttrString(in.Attrs), in.Modified)
		}
	}
	if len(events) != 1 || !strings.Contains(events[0].Message, "extended attributes of 1 entries (first /ro)") ||
		!strings.Contains(events[0].Message, "setuid, setgid and sticky bits of 1 entries (first /rw)") {
		t.Errorf("events %+v, want one note of the xattrs and the setuid bit", events)
	}
}

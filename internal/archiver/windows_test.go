package archiver_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/filter"
	"github.com/stillpoint-backup/stillpoint/internal/inspect"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// volumeView reads Windows repository paths from local directories, one
// per volume ("/C", "/UNC/srv/share"), and answers for the virtual
// directories above them as a Windows view does.
type volumeView struct {
	vols map[string]string
	live view.Live
}

func (v *volumeView) path(p string) string {
	for vol, dir := range v.vols {
		if pathmap.Windows.Within(p, vol) {
			return filepath.Join(dir, strings.TrimPrefix(p, vol))
		}
	}
	return filepath.Join(os.DevNull, "no-volume", p)
}

func (v *volumeView) Lstat(p string) (*view.Stat, error) {
	if pathmap.Windows.Virtual(p) {
		return &view.Stat{Type: view.TypeDir, Mode: 0o755, Nlink: 1, Mtime: time.Unix(0, 0), Ctime: time.Unix(0, 0)}, nil
	}
	return v.live.Lstat(v.path(p))
}
func (v *volumeView) ReadDir(p string) ([]string, error)    { return v.live.ReadDir(v.path(p)) }
func (v *volumeView) Readlink(p string) (string, error)     { return v.live.Readlink(v.path(p)) }
func (v *volumeView) Xattrs(p string) ([]view.Xattr, error) { return nil, nil }
func (v *volumeView) Open(p string) (view.File, error)      { return v.live.Open(v.path(p)) }

// The archiver under Windows rules, on any platform: C:\data and a share
// land at /C/data and /UNC/srv/share/docs, excludes match without case,
// problems name C:\..., and every spelling of a path finds its parent.
func TestWindowsPaths(t *testing.T) {
	c, share := t.TempDir(), t.TempDir()
	for p, data := range map[string]string{
		"data/File.txt": "hello", "data/x.TMP": "tmp", "data/Cache/c": "cached", "data/sub/s.txt": "sub",
	} {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(c, p)), 0o755))
		must(t, os.WriteFile(filepath.Join(c, p), []byte(data), 0o644))
	}
	must(t, os.MkdirAll(filepath.Join(share, "docs"), 0o755))
	must(t, os.WriteFile(filepath.Join(share, "docs", "d.txt"), []byte("shared"), 0o644))
	v := &volumeView{vols: map[string]string{"/C": c, "/UNC/srv/share": share}}
	rules := pathmap.Windows
	excl, err := filter.CompileAllFor(rules, []string{"*.tmp", `C:\DATA\cache`})
	must(t, err)
	r := newRepo(t)
	ctx := context.Background()
	run := func(parent repo.ID, paths ...string) *archiver.Result {
		t.Helper()
		opts := archiver.Options{Rules: &rules, Parent: parent,
			Excludes: filter.Scoped{{Root: "/C/data", Set: excl, Rules: rules}}}
		res, err := archiver.New(r, v, opts).Run(ctx, paths)
		must(t, err)
		must(t, r.Flush(ctx))
		return res
	}

	first := run(repo.ID{}, `C:\data`, `\\srv\share\docs`, `C:\nope`)
	if first.Stats.Files != 3 {
		t.Errorf("files: %+v", first.Stats)
	}
	if len(first.Problems) != 1 || first.Problems[0].Path != `C:\nope` || first.Problems[0].Reason != outcome.ReasonMissing {
		t.Errorf("problems: %+v", first.Problems)
	}
	for _, p := range []string{"/C/data/File.txt", "/C/data/sub/s.txt", "/UNC/srv/share/docs/d.txt"} {
		if _, err := inspect.Lookup(ctx, r, first.Tree, p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []string{"/C/data/x.TMP", "/C/data/Cache", "/C/nope"} {
		if _, err := inspect.Lookup(ctx, r, first.Tree, p); err == nil {
			t.Errorf("%s is in the snapshot", p)
		}
	}
	if n, err := inspect.Lookup(ctx, r, first.Tree, "/UNC/srv"); err != nil || n.Type != repo.NodeDir {
		t.Errorf("virtual /UNC/srv: %+v, %v", n, err)
	}

	// the same sources in other spellings: the same tree, nothing read again
	again := run(first.Tree, `c:/data/`, `\\?\UNC\srv\share\docs`)
	if again.Stats.FilesRead != 0 || again.Stats.Files != 3 {
		t.Errorf("incremental: %+v", again.Stats)
	}
	long := run(first.Tree, `\\?\C:\data`, `//srv/share/docs`)
	if long.Tree != again.Tree {
		t.Error(`\\?\C:\data and c:/data give different trees`)
	}
}

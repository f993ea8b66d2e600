package livefile

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// osNamedView is a fakeView whose errors name the path the system was
// asked for, as a live view's do: name maps the repository path to it.
type osNamedView struct {
	*fakeView
	name func(string) string
}

func (v osNamedView) rename(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		pe.Path = v.name(pe.Path)
	}
	return err
}

func (v osNamedView) Lstat(p string) (*view.Stat, error) {
	st, err := v.fakeView.Lstat(p)
	return st, v.rename(err)
}

func (v osNamedView) Open(p string) (view.File, error) {
	f, err := v.fakeView.Open(p)
	return f, v.rename(err)
}

// Messages name a file as the user knows it: under Windows rules C:\lk\x,
// never the repository path /C/lk/x, and the path once when the system's
// error already names it (in any of its spellings).
func TestMessagesNameTheFileAsShown(t *testing.T) {
	win, unix := pathmap.Windows, pathmap.Unix
	for _, c := range []struct {
		name  string
		rules *pathmap.Rules
		path  string
		osErr func(string) string // the path in the system's error
		lstat bool                // the error comes from Lstat, not Open
		want  string
	}{
		{"windows open", &win, "/D/lk/locked.db", func(string) string { return `D:\lk\locked.db` }, false,
			`open D:\lk\locked.db: permission denied`},
		{"windows lstat, long form", &win, "/D/lk/locked.db", func(string) string { return `\\?\d:\lk\LOCKED.DB` }, true,
			`lstat \\?\d:\lk\LOCKED.DB: permission denied`},
		{"windows shadow copy", &win, "/C/data/x.txt", func(string) string { return `\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3\data\x.txt` }, false,
			`reading C:\data\x.txt: open \\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3\data\x.txt: permission denied`},
		{"windows share", &win, "/UNC/srv/share/a", func(string) string { return `\\srv\share\a` }, false,
			`open \\srv\share\a: permission denied`},
		{"unix", &unix, "/srv/app/x", func(p string) string { return p }, false,
			"open /srv/app/x: permission denied"},
		{"unix snapshot", &unix, "/srv/app/x", func(p string) string { return "/run/stillpoint/snap" + p }, true,
			"reading /srv/app/x: lstat /run/stillpoint/snap/srv/app/x: permission denied"},
	} {
		t.Run(c.name, func(t *testing.T) {
			fv := newFakeView(10)
			if c.lstat {
				fv.lstat = fs.ErrPermission
			} else {
				fv.open = fs.ErrPermission
			}
			r := newReader(t, Config{Strategy: StrategyRead, Rules: c.rules})
			var calls int
			res := r.Read(t.Context(), osNamedView{fv, c.osErr}, c.path, readAll(&calls))
			if res.Outcome != outcome.Failed || res.Reason != outcome.ReasonPermission || res.Err == nil {
				t.Fatalf("result %+v, want failed: permission", res)
			}
			if got := res.Err.Error(); got != c.want {
				t.Errorf("error %q, want %q", got, c.want)
			}
		})
	}
	// a file that turned into a directory, under Windows rules
	fv := newFakeView(10)
	fv.st.Type = view.TypeDir
	r := newReader(t, Config{Strategy: StrategyRead, Rules: &win})
	var calls int
	res := r.Read(t.Context(), fv, "/C/data/x.txt", readAll(&calls))
	if res.Err == nil || res.Err.Error() != `C:\data\x.txt is no longer a regular file` || strings.Contains(res.Err.Error(), "/C/") {
		t.Errorf("error %v, want it to name C:\\data\\x.txt", res.Err)
	}
}

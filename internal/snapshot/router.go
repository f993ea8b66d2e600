package snapshot

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// route sends original paths at or below prefix to v.
type route struct {
	prefix string
	v      view.View
}

// router is a view.View that sends each original path to the view of the
// longest route prefix that contains it, and everything else to fallback.
// It is immutable after newRouter, so safe for concurrent use.
type router struct {
	routes   []route // longest prefix first
	fallback view.View
}

func newRouter(routes []route, fallback view.View) *router {
	rs := append([]route(nil), routes...)
	for i := range rs {
		rs[i].prefix = filepath.Clean(rs[i].prefix)
	}
	sort.SliceStable(rs, func(i, j int) bool { return len(rs[i].prefix) > len(rs[j].prefix) })
	if fallback == nil {
		fallback = &view.Live{}
	}
	return &router{routes: rs, fallback: fallback}
}

// within reports whether p is prefix or below it, on whole path elements.
func within(p, prefix string) bool {
	if p == prefix {
		return true
	}
	if strings.HasSuffix(prefix, string(filepath.Separator)) { // "/" or `C:\`
		return strings.HasPrefix(p, prefix)
	}
	return strings.HasPrefix(p, prefix) && p[len(prefix)] == filepath.Separator
}

func (r *router) pick(p string) view.View {
	if pathmap.Native.IsWindows() {
		// original paths are repository paths (/C/data); routes are OS paths
		if op, ok := pathmap.Native.ToOS(p); ok {
			p = op
		}
	}
	p = filepath.Clean(p)
	for _, rt := range r.routes {
		if within(p, rt.prefix) {
			return rt.v
		}
	}
	return r.fallback
}

func (r *router) Lstat(p string) (*view.Stat, error)    { return r.pick(p).Lstat(p) }
func (r *router) Readlink(p string) (string, error)     { return r.pick(p).Readlink(p) }
func (r *router) Xattrs(p string) ([]view.Xattr, error) { return r.pick(p).Xattrs(p) }
func (r *router) Open(p string) (view.File, error)      { return r.pick(p).Open(p) }

// ReadDir hides this package's own directories: they are not the user's
// data, and a snapshot of a filesystem root would otherwise contain them.
func (r *router) ReadDir(p string) ([]string, error) {
	names, err := r.pick(p).ReadDir(p)
	if err != nil {
		return nil, err
	}
	out := names[:0]
	for _, n := range names {
		if n != SnapshotDir && n != StagingDir {
			out = append(out, n)
		}
	}
	return out, nil
}

// absClean makes a source path absolute and clean.
func absClean(p string) (string, error) {
	if p == "" {
		return "", &os.PathError{Op: "snapshot source", Path: p, Err: os.ErrInvalid}
	}
	return filepath.Abs(p)
}

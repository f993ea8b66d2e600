//go:build linux

package mount

import (
	"context"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// filesystem is the state the nodes share: the repository, the blob cache
// and the current naming of the snapshots.
type filesystem struct {
	r            Repo
	cache        *Cache
	windows      *WindowLoader // the cache's loader
	holes        *Holes
	pusher       *pusher // nil: nothing is pushed into the kernel's cache
	refreshEvery time.Duration
	warn         func(string)
	started      time.Time

	mu        sync.Mutex
	layout    *Layout
	refreshed time.Time
}

// load reads the snapshot list, then the index files written since the
// last read (reverse order of writing: every index a listed snapshot
// needs is there before it).
func (f *filesystem) load(ctx context.Context) error {
	snaps, bad, err := f.r.Snapshots(ctx)
	if err != nil {
		return err
	}
	for _, b := range bad {
		f.warn(b.Error())
	}
	if f.layout == nil || hasNew(f.layout, snaps) {
		badIdx, err := f.r.LoadIndex(ctx)
		if err != nil {
			return err
		}
		for _, b := range badIdx {
			f.warn(b.Error())
		}
	}
	f.layout = NewLayout(snaps, f.layout)
	f.refreshed = time.Now()
	return nil
}

func hasNew(l *Layout, snaps []*repo.Snapshot) bool {
	for _, s := range snaps {
		if l.Name(s) == "" {
			return true
		}
	}
	return false
}

// current returns the naming of the snapshots; with fresh, it reads the
// list again first when the last read is older than refreshEvery.
func (f *filesystem) current(ctx context.Context, fresh bool) *Layout {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fresh && time.Since(f.refreshed) >= f.refreshEvery {
		if err := f.load(ctx); err != nil {
			f.warn("reading the snapshot list again: " + err.Error() + " (the mount shows the list read before)")
			f.refreshed = time.Now()
		}
	}
	return f.layout
}

// --- the directories above the snapshots ------------------------------

// virtualDir is a directory the mount makes up: its entries come from
// the current snapshot list.
type virtualDir struct {
	fs.Inode
	fsys *filesystem
	key  string // names the directory in inode numbers
	// entries lists the names; lookup finds one (nil: none)
	entries func(l *Layout) []fuse.DirEntry
	lookup  func(ctx context.Context, d *virtualDir, l *Layout, name string) (fs.InodeEmbedder, fs.StableAttr, *fuse.Attr)
}

var (
	_ fs.NodeLookuper  = (*virtualDir)(nil)
	_ fs.NodeReaddirer = (*virtualDir)(nil)
	_ fs.NodeGetattrer = (*virtualDir)(nil)
)

func (d *virtualDir) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	dirAttr(&out.Attr, d.fsys.started)
	out.SetTimeout(virtualTimeout)
	return 0
}

func (d *virtualDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	return fs.NewListDirStream(d.entries(d.fsys.current(ctx, true))), 0
}

func (d *virtualDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ops, st, attr := d.lookup(ctx, d, d.fsys.current(ctx, false), name)
	if ops == nil {
		// a snapshot written since the list was read
		ops, st, attr = d.lookup(ctx, d, d.fsys.current(ctx, true), name)
	}
	if ops == nil {
		return nil, syscall.ENOENT
	}
	out.Attr = *attr
	out.SetEntryTimeout(virtualTimeout)
	out.SetAttrTimeout(virtualTimeout)
	if ch := d.GetChild(name); ch != nil && ch.StableAttr() == st && sameTarget(ch.Operations(), ops) {
		return ch, 0
	}
	return d.NewInode(ctx, ops, st), 0
}

// sameTarget tells whether an existing child still shows what ops would.
func sameTarget(old, ops fs.InodeEmbedder) bool {
	switch o := old.(type) {
	case *treeDir:
		n, ok := ops.(*treeDir)
		return ok && n.snap == o.snap
	case *link:
		n, ok := ops.(*link)
		return ok && n.target == o.target
	case *virtualDir:
		n, ok := ops.(*virtualDir)
		return ok && n.key == o.key
	}
	return false
}

func (f *filesystem) newRoot() *virtualDir {
	names := []string{"hosts", "ids", "latest", "snapshots", "tags"}
	return &virtualDir{fsys: f, key: "/",
		entries: func(l *Layout) []fuse.DirEntry {
			var out []fuse.DirEntry
			for _, n := range names {
				if n == "latest" && Latest(l.Snapshots) == nil {
					continue
				}
				mode := uint32(syscall.S_IFDIR)
				if n == "latest" {
					mode = syscall.S_IFLNK
				}
				out = append(out, fuse.DirEntry{Name: n, Mode: mode, Ino: inoFor("/", n)})
			}
			return out
		},
		lookup: func(ctx context.Context, d *virtualDir, l *Layout, name string) (fs.InodeEmbedder, fs.StableAttr, *fuse.Attr) {
			switch name {
			case "snapshots":
				return f.group(name, func(l *Layout) []*repo.Snapshot { return l.Snapshots }, false)
			case "latest":
				if s := Latest(l.Snapshots); s != nil {
					return f.link(inoFor("/", name), "snapshots/"+l.Name(s), s.Time)
				}
			case "hosts":
				return f.groups(name, (*Layout).Hosts, (*Layout).Host)
			case "tags":
				return f.groups(name, (*Layout).Tags, (*Layout).Tag)
			case "ids":
				return f.ids()
			}
			return nil, fs.StableAttr{}, nil
		},
	}
}

func (f *filesystem) virtual(d *virtualDir) (fs.InodeEmbedder, fs.StableAttr, *fuse.Attr) {
	var a fuse.Attr
	dirAttr(&a, f.started)
	return d, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: inoFor(d.key)}, &a
}

// group is a directory of snapshots by name, with a "latest" link when
// withLatest.
func (f *filesystem) group(key string, list func(l *Layout) []*repo.Snapshot, withLatest bool) (fs.InodeEmbedder, fs.StableAttr, *fuse.Attr) {
	return f.virtual(&virtualDir{fsys: f, key: key,
		entries: func(l *Layout) []fuse.DirEntry {
			snaps := list(l)
			out := make([]fuse.DirEntry, 0, len(snaps)+1)
			for _, s := range snaps {
				out = append(out, fuse.DirEntry{Name: l.Name(s), Mode: syscall.S_IFDIR, Ino: inoFor(key, s.ID)})
			}
			if withLatest && len(snaps) > 0 {
				out = append(out, fuse.DirEntry{Name: "latest", Mode: syscall.S_IFLNK, Ino: inoFor(key, "latest")})
			}
			return out
		},
		lookup: func(ctx context.Context, d *virtualDir, l *Layout, name string) (fs.InodeEmbedder, fs.StableAttr, *fuse.Attr) {
			snaps := list(l)
			if withLatest && name == "latest" {
				if s := Latest(snaps); s != nil {
					return f.link(inoFor(key, "latest"), l.Name(s), s.Time)
				}
				return nil, fs.StableAttr{}, nil
			}
			s := l.ByName(name)
			if s == nil || !contains(snaps, s) {
				return nil, fs.StableAttr{}, nil
			}
			ino := inoFor(key, s.ID)
			var a fuse.Attr
			dirAttr(&a, s.Time)
			a.Mode = syscall.S_IFDIR | 0o755
			return &treeDir{fsys: f, snap: s, tree: s.Tree, seed: ino}, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino}, &a
		},
	})
}

// groups is hosts/ or tags/: a directory per name, each a group.
func (f *filesystem) groups(key string, names func(*Layout) []string, list func(*Layout, string) []*repo.Snapshot) (fs.InodeEmbedder, fs.StableAttr, *fuse.Attr) {
	return f.virtual(&virtualDir{fsys: f, key: key,
		entries: func(l *Layout) []fuse.DirEntry {
			var out []fuse.DirEntry
			for _, n := range names(l) {
				out = append(out, fuse.DirEntry{Name: n, Mode: syscall.S_IFDIR, Ino: inoFor(key, n)})
			}
			return out
		},
		lookup: func(ctx context.Context, d *virtualDir, l *Layout, name string) (fs.InodeEmbedder, fs.StableAttr, *fuse.Attr) {
			if len(list(l, name)) == 0 {
				return nil, fs.StableAttr{}, nil
			}
			return f.group(key+"/"+name, func(l *Layout) []*repo.Snapshot { return list(l, name) }, true)
		},
	})
}

// ids is ids/: a link per short id to the snapshot's directory.
func (f *filesystem) ids() (fs.InodeEmbedder, fs.StableAttr, *fuse.Attr) {
	return f.virtual(&virtualDir{fsys: f, key: "ids",
		entries: func(l *Layout) []fuse.DirEntry {
			var out []fuse.DirEntry
			for _, id := range l.ShortIDs() {
				out = append(out, fuse.DirEntry{Name: id, Mode: syscall.S_IFLNK, Ino: inoFor("ids", id)})
			}
			return out
		},
		lookup: func(ctx context.Context, d *virtualDir, l *Layout, name string) (fs.InodeEmbedder, fs.StableAttr, *fuse.Attr) {
			s := l.ByShortID(name)
			if s == nil {
				return nil, fs.StableAttr{}, nil
			}
			return f.link(inoFor("ids", name), "../snapshots/"+l.Name(s), s.Time)
		},
	})
}

// link is a symlink the mount makes up.
type link struct {
	fs.Inode
	target string
	time   time.Time
}

var _ fs.NodeReadlinker = (*link)(nil)

func (f *filesystem) link(ino uint64, target string, t time.Time) (fs.InodeEmbedder, fs.StableAttr, *fuse.Attr) {
	var a fuse.Attr
	a.Mode = syscall.S_IFLNK | 0o777
	a.Size = uint64(len(target))
	a.Nlink = 1
	setTimes(&a, t.UnixNano(), 0)
	// a changed target is a new inode: the kernel keeps a link's target
	return &link{target: target, time: t}, fs.StableAttr{Mode: syscall.S_IFLNK, Ino: inoFor(ino, target)}, &a
}

func (l *link) Readlink(ctx context.Context) ([]byte, syscall.Errno) { return []byte(l.target), 0 }

func (l *link) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	out.Mode = syscall.S_IFLNK | 0o777
	out.Size = uint64(len(l.target))
	out.Nlink = 1
	setTimes(&out.Attr, l.time.UnixNano(), 0)
	return 0
}

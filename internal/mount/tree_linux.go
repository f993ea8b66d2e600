//go:build linux

package mount

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// Extended attributes the mount adds to every file and directory of a
// snapshot.
const (
	XattrOutcome = "user.stillpoint.outcome"
	XattrReason  = "user.stillpoint.reason"
	XattrHolder  = "user.stillpoint.holder"
	// on a snapshot's top directory
	XattrSnapshot    = "user.stillpoint.snapshot"
	XattrConsistency = "user.stillpoint.consistency"
)

// treeDir is a directory of a snapshot; node is nil for the snapshot's
// top directory. Its tree is read when it is first listed or looked in.
type treeDir struct {
	fs.Inode
	fsys *filesystem
	snap *repo.Snapshot
	node *repo.Node
	tree repo.ID
	seed uint64 // the snapshot directory's inode: hard links are per appearance

	mu     sync.Mutex
	loaded *repo.Tree

	pushMu sync.Mutex
	pushes *dirPush // nil until a file of the directory is read
}

var (
	_ fs.NodeLookuper    = (*treeDir)(nil)
	_ fs.NodeReaddirer   = (*treeDir)(nil)
	_ fs.NodeGetattrer   = (*treeDir)(nil)
	_ fs.NodeGetxattrer  = (*treeDir)(nil)
	_ fs.NodeListxattrer = (*treeDir)(nil)
)

func (d *treeDir) load(ctx context.Context) (*repo.Tree, syscall.Errno) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.loaded != nil {
		return d.loaded, 0
	}
	if d.tree.IsNull() {
		d.loaded = &repo.Tree{}
		return d.loaded, 0
	}
	// not cut by the request's interrupt: a signal to the caller (Go's own
	// preemption signals among them) made an open fail with EIO, and the
	// directory is loaded once for every later request
	t, err := d.fsys.r.LoadTree(context.WithoutCancel(ctx), d.tree)
	if err != nil {
		d.fsys.warn(fmt.Sprintf("%s (snapshot %s): %v", d.path(), d.snap.ID.Short(), err))
		return nil, syscall.EIO
	}
	d.loaded = t
	return t, 0
}

// path is the directory's path below the mount, for messages.
func (d *treeDir) path() string { return d.Path(nil) }

func (d *treeDir) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if d.node == nil {
		dirAttr(&out.Attr, d.snap.Time)
		out.Mode = syscall.S_IFDIR | 0o755
		out.SetTimeout(virtualTimeout)
		return 0
	}
	nodeAttr(d.node, &out.Attr, -1)
	out.SetTimeout(contentTimeout)
	return 0
}

// childIno is the inode number of entry n: the snapshot's own for a hard
// link, so that every path of it is one inode.
func (d *treeDir) childIno(n *repo.Node) uint64 {
	if n.Type == repo.NodeFile && n.Links > 1 {
		return inoFor(d.seed, n.Device, n.Inode)
	}
	return inoFor(d.StableAttr().Ino, n.Name)
}

func (d *treeDir) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	t, errno := d.load(ctx)
	if errno != 0 {
		return nil, errno
	}
	out := make([]fuse.DirEntry, len(t.Nodes))
	for i, n := range t.Nodes {
		out[i] = fuse.DirEntry{Name: n.Name, Mode: typeBits(n.Type), Ino: d.childIno(n)}
	}
	return fs.NewListDirStream(out), 0
}

func (d *treeDir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	t, errno := d.load(ctx)
	if errno != 0 {
		return nil, errno
	}
	n := t.Find(name)
	if n == nil {
		return nil, syscall.ENOENT
	}
	out.SetEntryTimeout(contentTimeout)
	out.SetAttrTimeout(contentTimeout)
	if ch := d.GetChild(name); ch != nil {
		if g, ok := ch.Operations().(fs.NodeGetattrer); ok {
			var a fuse.AttrOut
			g.Getattr(ctx, nil, &a)
			out.Attr = a.Attr
		}
		return ch, 0
	}
	st := fs.StableAttr{Mode: typeBits(n.Type), Ino: d.childIno(n)}
	var ops fs.InodeEmbedder
	switch n.Type {
	case repo.NodeDir:
		ops = &treeDir{fsys: d.fsys, snap: d.snap, node: n, tree: n.Subtree, seed: d.seed}
	case repo.NodeFile:
		f := &fileNode{fsys: d.fsys, node: n, dir: d}
		ops = f
		var a fuse.AttrOut
		f.Getattr(ctx, nil, &a)
		out.Attr = a.Attr
		return d.NewInode(ctx, ops, st), 0
	default:
		ops = &otherNode{node: n}
	}
	nodeAttr(n, &out.Attr, -1)
	return d.NewInode(ctx, ops, st), 0
}

func (d *treeDir) xattrs() []repo.Xattr {
	if d.node != nil {
		return nodeXattrs(d.node)
	}
	x := []repo.Xattr{{Name: XattrSnapshot, Value: []byte(d.snap.ID.String())}}
	if d.snap.Consistency != "" {
		x = append(x, repo.Xattr{Name: XattrConsistency, Value: []byte(d.snap.Consistency)})
	}
	return x
}

func (d *treeDir) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getXattr(d.xattrs(), attr, dest)
}

func (d *treeDir) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	if d.node != nil {
		return listXattrs(listedXattrs(d.node), dest)
	}
	return listXattrs(d.xattrs(), dest)
}

// nodeXattrs is a node's outcome as attributes, then its stored ones.
func nodeXattrs(n *repo.Node) []repo.Xattr {
	x := []repo.Xattr{{Name: XattrOutcome, Value: []byte(n.Outcome.String())}}
	if n.Reason != "" {
		x = append(x, repo.Xattr{Name: XattrReason, Value: []byte(n.Reason)})
	}
	if n.Holder != "" {
		x = append(x, repo.Xattr{Name: XattrHolder, Value: []byte(n.Holder)})
	}
	for _, s := range n.Xattrs {
		if s.Name != XattrOutcome && s.Name != XattrReason && s.Name != XattrHolder {
			x = append(x, s)
		}
	}
	return x
}

// listedXattrs is what a listing shows: the outcome attributes only for a
// node not stored whole, so that `cp -a` out of the mount copies them with
// exactly the files that need the warning (and asks no more of the others);
// asked by name, every node answers.
func listedXattrs(n *repo.Node) []repo.Xattr {
	if n.Outcome.Whole() && n.Reason == "" && n.Holder == "" {
		return n.Xattrs
	}
	return nodeXattrs(n)
}

func getXattr(list []repo.Xattr, name string, dest []byte) (uint32, syscall.Errno) {
	for _, x := range list {
		if x.Name == name {
			if len(dest) < len(x.Value) {
				return uint32(len(x.Value)), syscall.ERANGE
			}
			return uint32(copy(dest, x.Value)), 0
		}
	}
	return 0, syscall.ENODATA
}

func listXattrs(list []repo.Xattr, dest []byte) (uint32, syscall.Errno) {
	size := 0
	for _, x := range list {
		size += len(x.Name) + 1
	}
	if len(dest) < size {
		return uint32(size), syscall.ERANGE
	}
	off := 0
	for _, x := range list {
		off += copy(dest[off:], x.Name)
		dest[off] = 0
		off++
	}
	return uint32(size), 0
}

// fileNode is a regular file of a snapshot.
type fileNode struct {
	fs.Inode
	fsys *filesystem
	node *repo.Node
	dir  *treeDir // the directory it was first found in

	push   atomic.Uint32 // pushNone, pushQueued, pushDone
	pushAt atomic.Int32  // 1 + its place in dir's push order; 0: none

	mu      sync.Mutex
	content *Content
	err     error
	// where the last read ended: a read that starts there is a reader
	// going through the file in order, for whom the next blob is read ahead
	next atomic.Int64
}

var (
	_ fs.NodeOpener      = (*fileNode)(nil)
	_ fs.NodeFlusher     = (*fileNode)(nil)
	_ fs.NodeReader      = (*fileNode)(nil)
	_ fs.NodeGetattrer   = (*fileNode)(nil)
	_ fs.NodeLseeker     = (*fileNode)(nil)
	_ fs.NodeGetxattrer  = (*fileNode)(nil)
	_ fs.NodeListxattrer = (*fileNode)(nil)
)

func (f *fileNode) contentMap() (*Content, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.content == nil && f.err == nil {
		f.content, f.err = NewContent(f.fsys.r, f.fsys.holes, f.node)
	}
	return f.content, f.err
}

func (f *fileNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	allocated := int64(-1)
	if c, err := f.contentMap(); err == nil {
		allocated = c.Allocated()
	}
	nodeAttr(f.node, &out.Attr, allocated)
	out.SetTimeout(contentTimeout)
	return 0
}

// Open lets the kernel open files itself: ENOSYS tells it to send no more
// OPEN (nor RELEASE) requests, and to keep the pages it read, which suits
// content that never changes. Writes never get here (the mount is
// read-only), but are refused all the same.
func (f *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	return nil, 0, syscall.ENOSYS
}

// Flush: ENOSYS tells the kernel that closing a file needs no request.
func (f *fileNode) Flush(ctx context.Context, _ fs.FileHandle) syscall.Errno { return syscall.ENOSYS }

func (f *fileNode) Read(ctx context.Context, _ fs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	c, err := f.contentMap()
	if err != nil {
		f.fsys.warn(fmt.Sprintf("%s: %v", f.Path(nil), err))
		return nil, syscall.EIO
	}
	ahead := off > 0 && f.next.Swap(off+int64(len(dest))) == off
	if off == 0 {
		f.next.Store(int64(len(dest)))
		f.push.Store(pushDone) // the kernel reads it itself
		f.dir.touched(f, true)
	}
	n, err := c.ReadAt(ctx, f.fsys.cache, dest, off, ahead)
	if err != nil && err != io.EOF {
		f.fsys.warn(fmt.Sprintf("%s: %v", f.Path(nil), err))
		return nil, syscall.EIO
	}
	return fuse.ReadResultData(dest[:n]), 0
}

const (
	seekData = 3
	seekHole = 4
)

func (f *fileNode) Lseek(ctx context.Context, _ fs.FileHandle, off uint64, whence uint32) (uint64, syscall.Errno) {
	c, err := f.contentMap()
	if err != nil {
		return 0, syscall.EIO
	}
	var to int64
	switch whence {
	case seekData:
		to, err = c.SeekData(int64(off))
	case seekHole:
		to, err = c.SeekHole(int64(off))
	default:
		return 0, syscall.EINVAL
	}
	if err != nil {
		return 0, syscall.ENXIO
	}
	return uint64(to), 0
}

func (f *fileNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getXattr(nodeXattrs(f.node), attr, dest)
}

func (f *fileNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	// cp -a lists every file's attributes after reading it: the sign that
	// it moves on through the directory
	f.dir.touched(f, false)
	return listXattrs(listedXattrs(f.node), dest)
}

// otherNode is a symlink, device, FIFO or socket of a snapshot.
type otherNode struct {
	fs.Inode
	node *repo.Node
}

var (
	_ fs.NodeReadlinker  = (*otherNode)(nil)
	_ fs.NodeGetattrer   = (*otherNode)(nil)
	_ fs.NodeGetxattrer  = (*otherNode)(nil)
	_ fs.NodeListxattrer = (*otherNode)(nil)
)

func (o *otherNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	if o.node.Type != repo.NodeSymlink {
		return nil, syscall.EINVAL
	}
	return []byte(o.node.LinkTarget), 0
}

func (o *otherNode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	nodeAttr(o.node, &out.Attr, -1)
	out.SetTimeout(contentTimeout)
	return 0
}

// the kernel asks only for the stored attributes of these: user.* ones
// exist on files and directories alone
func (o *otherNode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	return getXattr(o.node.Xattrs, attr, dest)
}

func (o *otherNode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	return listXattrs(o.node.Xattrs, dest)
}

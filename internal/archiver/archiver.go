package archiver

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/bufs"
	"github.com/stillpoint-backup/stillpoint/internal/filter"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// Repo is what the archiver needs of a repository.
type Repo interface {
	Hash(data []byte) repo.ID
	Known(id repo.ID) bool
	SaveBlob(ctx context.Context, t repo.BlobType, id repo.ID, data []byte) (bool, error)
	SaveTree(ctx context.Context, t *repo.Tree) (repo.ID, error)
	LoadTree(ctx context.Context, id repo.ID) (*repo.Tree, error)
	NewChunker() (*repo.Chunker, error)
	Config() repo.Config
}

// Options configure a run.
type Options struct {
	Excludes filter.Excluder
	// Parent is the root tree of the snapshot to compare with (null: none).
	Parent repo.ID
	// Reader decides how files that may be in use are read; nil reads each
	// file once with change detection.
	Reader FileReader
	// FromSnapshot tells whether an open file's bytes come from a
	// point-in-time image (snapshot or clone), so a whole read is classed
	// ok-snapshot.
	FromSnapshot func(f view.File) bool
	// Progress receives counters; may be nil.
	Progress *Progress
	// OnProblem is called for every file that is not whole; may be nil.
	OnProblem func(Problem)
	// Worker counts; 0 picks defaults.
	FileWorkers int
	BlobWorkers int
	// Scan counts files and bytes ahead of the backup for an ETA.
	Scan bool
	// Rules are the path rules of the paths given to Run (nil: those of
	// this platform, pathmap.Native). Under other rules than Native the
	// paths must be absolute; tests use it to back up Windows paths
	// through a view on any platform.
	Rules *pathmap.Rules
	// Only makes the run a follow-up of Parent (which it needs): only these
	// paths are looked at again, through the view, and every other entry
	// of the new tree is the parent's, unchanged and unread. A path that
	// is gone now is dropped; one that is a directory in the parent is
	// kept as it was (the next full run reads it).
	Only []string
}

// Problem is a file that was not stored whole.
type Problem struct {
	Path    string          `json:"path"`
	Outcome outcome.Outcome `json:"outcome"`
	Reason  string          `json:"reason,omitempty"`
	Holder  string          `json:"holder,omitempty"`
	Error   string          `json:"error,omitempty"`
}

// Result is what a run produced.
type Result struct {
	Tree     repo.ID
	Stats    repo.Stats
	Outcomes outcome.Counts
	Problems []Problem
	// FilesUnchanged counts the files whose content was taken from the
	// parent without reading them. Stats.Files less Stats.FilesRead less
	// this is the files that were neither read nor unchanged: failed or
	// skipped (their previous version, if any, carried forward as stale).
	FilesUnchanged int64
	// Previous is, in a follow-up (Options.Only), the parent's node of each
	// path looked at again, by its displayed path (nil: the parent had
	// none). Stats and Outcomes count only those paths' new versions.
	Previous map[string]*repo.Node
}

// Archiver runs one backup.
type Archiver struct {
	repo Repo
	view view.View
	opts Options

	ctx    context.Context
	cancel context.CancelCauseFunc

	fileJobs  chan *fileJob
	chunkJobs chan *chunkJob
	deferred  []*fileJob
	defMu     sync.Mutex
	workersWG sync.WaitGroup
	blobWG    sync.WaitGroup
	walkSem   chan struct{}

	chunkBufs *bufs.Classes
	chunkers  chan *repo.Chunker // idle chunkers, at most one per chunkSem slot
	chunkSem  chan struct{}      // chunkers in use: each holds a scan buffer of the largest chunk
	smallMax  int64

	pending atomic.Int64 // file jobs and walker goroutines not yet finished or parked

	mu       sync.Mutex
	problems []Problem
	outcomes outcome.Counts
	stats    statCounters
	missing  []string // paths to back up that did not exist
	previous map[string]*repo.Node
}

type statCounters struct {
	files, dirs, others, bytes, bytesRead, filesRead, filesUnchanged atomic.Int64
}

// New returns an archiver that reads through v and stores into r.
func New(r Repo, v view.View, opts Options) *Archiver {
	if opts.FileWorkers <= 0 {
		// files wait on I/O as much as on CPU: two per core
		opts.FileWorkers = 2 * runtime.GOMAXPROCS(0)
	}
	if opts.BlobWorkers <= 0 {
		opts.BlobWorkers = runtime.GOMAXPROCS(0)
	}
	if opts.Reader == nil {
		opts.Reader = DirectReader{}
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	if opts.Excludes == nil {
		opts.Excludes = filter.Set(nil)
	}
	if opts.Rules == nil {
		opts.Rules = &pathmap.Native
	}
	a := &Archiver{repo: r, view: v, opts: opts, outcomes: outcome.Counts{}}
	a.smallMax = int64(r.Config().Chunker.Min)
	// keep what the chunks in flight can need: the next chunk of each
	// chunker and the current one of each blob worker, each up to the
	// largest chunk, and a small file in each file worker. A smaller budget
	// let buffers of the larger classes go at every turn of chunk sizes, to
	// be allocated (and cleared) again: 3% of an initial backup's CPU.
	chunkMax := max(r.Config().Chunker.Max, r.Config().Chunker.Min+1)
	a.chunkBufs = bufs.NewClasses(64<<10, chunkMax, 2*a.opts.BlobWorkers*chunkMax+a.opts.FileWorkers*int(a.smallMax))
	return a
}

// node futures ---------------------------------------------------------

type future struct {
	done chan struct{}
	node *repo.Node // nil: entry dropped (vanished, excluded late)
}

func newFuture() *future { return &future{done: make(chan struct{})} }

func ready(n *repo.Node) *future {
	f := &future{done: make(chan struct{}), node: n}
	close(f.done)
	return f
}

func (f *future) resolve(n *repo.Node) {
	f.node = n
	close(f.done)
}

// Run backs up the given absolute paths.
func (a *Archiver) Run(ctx context.Context, paths []string) (*Result, error) {
	start := time.Now()
	roots, err := normalizeRoots(*a.opts.Rules, paths)
	if err != nil {
		return nil, err
	}
	a.ctx, a.cancel = context.WithCancelCause(ctx)
	defer a.cancel(nil)

	a.fileJobs = make(chan *fileJob, 4*a.opts.FileWorkers)
	// unbuffered: a chunk waits in its file worker, not in a queue as well
	a.chunkJobs = make(chan *chunkJob)
	a.walkSem = make(chan struct{}, a.opts.FileWorkers)
	a.chunkSem = make(chan struct{}, a.opts.BlobWorkers)
	a.chunkers = make(chan *repo.Chunker, a.opts.BlobWorkers)
	for range a.opts.BlobWorkers {
		a.blobWG.Add(1)
		go a.blobWorker()
	}
	for range a.opts.FileWorkers {
		a.workersWG.Add(1)
		go a.fileWorker()
	}
	if a.opts.Scan && len(a.opts.Only) == 0 {
		go a.scan(roots)
	}

	var rootOld *repo.Node
	if !a.opts.Parent.IsNull() {
		rootOld = &repo.Node{Type: repo.NodeDir, Subtree: a.opts.Parent}
	}
	var rootFuture *future
	if len(a.opts.Only) > 0 {
		if rootFuture, err = a.startFollowUp(rootOld); err != nil {
			a.cancel(err)
			rootFuture = ready(nil)
		}
	} else {
		rootFuture = a.walkVirtual("/", buildVirtual(roots), a.loadSubtree(rootOld), rootOld)
	}

	// Wait for the first pass, then give deferred files their second try.
	waitWalk := make(chan struct{})
	go func() { <-rootFuture.done; close(waitWalk) }()
	a.waitFirstPass(rootFuture)

	close(a.fileJobs)
	a.workersWG.Wait()
	close(a.chunkJobs)
	a.blobWG.Wait()
	<-waitWalk
	if err := context.Cause(a.ctx); err != nil {
		return nil, err
	}
	if len(a.missing) == len(roots) {
		return nil, &MissingError{Paths: a.missing}
	}
	root := rootFuture.node
	if root == nil {
		return nil, errors.New("none of the paths to back up could be read")
	}
	res := &Result{Tree: root.Subtree, Outcomes: a.outcomes, Problems: a.problems, FilesUnchanged: a.stats.filesUnchanged.Load(), Previous: a.previous}
	res.Stats = repo.Stats{
		Files: a.stats.files.Load(), Dirs: a.stats.dirs.Load(), Others: a.stats.others.Load(),
		Bytes: a.stats.bytes.Load(), BytesRead: a.stats.bytesRead.Load(), FilesRead: a.stats.filesRead.Load(),
		DurationSecs: time.Since(start).Seconds(),
	}
	sort.Slice(res.Problems, func(i, j int) bool { return res.Problems[i].Path < res.Problems[j].Path })
	return res, nil
}

// waitFirstPass runs deferred files once the queue of first-pass files has
// drained: they get one more try at the end of the run.
func (a *Archiver) waitFirstPass(root *future) {
	for {
		select {
		case <-root.done:
			return
		case <-a.ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
		if a.pending.Load() != 0 {
			continue
		}
		a.defMu.Lock()
		jobs := a.deferred
		a.deferred = nil
		a.defMu.Unlock()
		for _, j := range jobs {
			j.secondPass = true
			select {
			case a.fileJobs <- j:
			case <-a.ctx.Done():
				return
			}
		}
	}
}

func (a *Archiver) fail(err error) { a.cancel(err) }

func (a *Archiver) record(p Problem) {
	p.Path = a.opts.Rules.Display(p.Path) // C:\data\x on Windows
	a.mu.Lock()
	a.problems = append(a.problems, p)
	a.mu.Unlock()
	if a.opts.OnProblem != nil {
		a.opts.OnProblem(p)
	}
}

func (a *Archiver) count(o outcome.Outcome) {
	a.mu.Lock()
	a.outcomes.Add(o)
	a.mu.Unlock()
}

// virtual root -----------------------------------------------------------

// vdir is a directory on the way from / to the backed-up paths.
type vdir struct {
	children map[string]*vdir
	target   bool // this path itself is backed up
}

// targets lists the backed-up paths at or below p, the path of d.
func (d *vdir) targets(p string) []string {
	if d.target {
		return []string{p}
	}
	var out []string
	for name, c := range d.children {
		out = append(out, c.targets(path.Join(p, name))...)
	}
	sort.Strings(out)
	return out
}

// normalizeRoots maps the paths to back up to repository paths, sorted,
// without those inside another.
func normalizeRoots(rules pathmap.Rules, paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, errors.New("no paths to back up")
	}
	var out []string
	for _, p := range paths {
		abs := p
		if rules == pathmap.Native {
			var err error
			if abs, err = pathmap.Abs(p); err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
		}
		rp, err := rules.ToRepo(abs)
		if err != nil {
			return nil, err
		}
		out = append(out, rp)
	}
	sort.Strings(out)
	// drop paths inside another path
	var roots []string
	for _, p := range out {
		if len(roots) > 0 {
			last := roots[len(roots)-1]
			if rules.Within(p, last) {
				continue
			}
		}
		roots = append(roots, p)
	}
	return roots, nil
}

func buildVirtual(roots []string) *vdir {
	top := &vdir{children: map[string]*vdir{}}
	for _, r := range roots {
		d := top
		if r == "/" {
			d.target = true
			continue
		}
		for _, c := range strings.Split(strings.Trim(r, "/"), "/") {
			next := d.children[c]
			if next == nil {
				next = &vdir{children: map[string]*vdir{}}
				d.children[c] = next
			}
			d = next
		}
		d.target = true
	}
	return top
}

// walkVirtual walks the directories from / down to the backed-up paths.
// own is the parent snapshot's tree of p.
func (a *Archiver) walkVirtual(p string, vd *vdir, own *repo.Tree, old *repo.Node) *future {
	st, err := a.view.Lstat(p)
	if err == nil && !vd.target && st.Type != view.TypeDir {
		err = &fs.PathError{Op: "lstat", Path: p, Err: syscall.ENOTDIR}
	}
	if err != nil {
		a.rootsFailed(p, vd, err)
		return ready(nil)
	}
	if vd.target {
		return a.walkEntry(p, st, old)
	}
	names := make([]string, 0, len(vd.children))
	for n := range vd.children {
		names = append(names, n)
	}
	sort.Strings(names)
	var futures []*future
	for _, n := range names {
		var childOld *repo.Node
		if own != nil {
			childOld = own.Find(n)
		}
		futures = append(futures, a.walkVirtual(path.Join(p, n), vd.children[n], a.loadSubtree(childOld), childOld))
	}
	if allDropped(futures) {
		// only on the way to paths that are not there: no empty directory
		// in the snapshot for them
		return ready(nil)
	}
	return a.finishDir(p, st, futures)
}

// allDropped tells whether every future is already resolved to nothing.
func allDropped(fs []*future) bool {
	for _, f := range fs {
		select {
		case <-f.done:
			if f.node != nil {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// rootsFailed records every path to back up at or below p, which could
// not be looked at: a path that does not exist is missing (it was never
// seen, so it did not vanish).
func (a *Archiver) rootsFailed(p string, vd *vdir, err error) {
	reason := classify(err)
	if notThere(err) {
		reason = outcome.ReasonMissing
	}
	for _, root := range vd.targets(p) {
		a.record(Problem{Path: root, Outcome: outcome.Failed, Reason: reason, Error: err.Error()})
		a.count(outcome.Failed)
		if reason == outcome.ReasonMissing {
			a.mu.Lock()
			a.missing = append(a.missing, a.opts.Rules.Display(root))
			a.mu.Unlock()
		}
	}
}

// loadSubtree returns the parent snapshot's tree of a directory node.
func (a *Archiver) loadSubtree(n *repo.Node) *repo.Tree {
	if n == nil || n.Type != repo.NodeDir || n.Subtree.IsNull() {
		return nil
	}
	t, err := a.repo.LoadTree(a.ctx, n.Subtree)
	if err != nil {
		return nil // a damaged parent only costs speed: everything is read again
	}
	return t
}

// walkEntry handles one path whose stat is known; old is the parent
// snapshot's node for the same path.
func (a *Archiver) walkEntry(p string, st *view.Stat, old *repo.Node) *future {
	switch st.Type {
	case view.TypeDir:
		return a.walkDir(p, st, old)
	case view.TypeRegular:
		return a.walkFile(p, st, old)
	default:
		n := a.baseNode(p, st, old)
		if st.Type == view.TypeSymlink {
			target, err := a.view.Readlink(p)
			if err != nil {
				a.fileError(p, err)
				return ready(nil)
			}
			n.LinkTarget = target
		}
		a.stats.others.Add(1)
		a.count(outcome.OK)
		a.opts.Progress.fileDone(0)
		return ready(n)
	}
}

// baseNode is the node of p with its metadata: what st says, and its
// xattrs, security descriptor and streams (reused from old when its change
// time shows none changed).
func (a *Archiver) baseNode(p string, st *view.Stat, old *repo.Node) *repo.Node {
	return a.newNode(p, st, old, true)
}

// newNode is baseNode; withWindowsMeta false leaves out the descriptor and
// streams (of a file that could not be read: its streams would fail too).
func (a *Archiver) newNode(p string, st *view.Stat, old *repo.Node, withWindowsMeta bool) *repo.Node {
	n := &repo.Node{
		Name: path.Base(p), Type: repo.NodeType(st.Type), Mode: st.Mode,
		Mtime: st.Mtime.UnixNano(), Ctime: st.Ctime.UnixNano(),
		UID: st.Uid, GID: st.Gid, Inode: st.Ino, Device: st.Dev, Links: st.Nlink, Rdev: st.Rdev,
	}
	if p == "/" {
		n.Name = ""
	}
	if st.Type == view.TypeRegular {
		n.Size = uint64(st.Size)
	}
	n.Attrs = st.Attrs
	if !st.Created.IsZero() {
		n.Created = st.Created.UnixNano()
	}
	// xattr changes update ctime, so an unchanged ctime lets us reuse them;
	// so do changes of a Windows file's security descriptor and streams
	if old != nil && old.Ctime == n.Ctime && old.Inode == n.Inode && old.Type == n.Type && a.streamsKnown(old) {
		n.Xattrs = old.Xattrs
		n.SD, n.SDParts, n.Streams = old.SD, old.SDParts, old.Streams
	} else {
		if withWindowsMeta {
			a.windowsMeta(p, n)
		}
		xa, err := a.view.Xattrs(p)
		if err == nil {
			for _, x := range xa {
				n.Xattrs = append(n.Xattrs, repo.Xattr{Name: x.Name, Value: x.Value})
			}
		}
	}
	return n
}

func (a *Archiver) walkDir(p string, st *view.Stat, old *repo.Node) *future {
	parentTree := a.loadSubtree(old)
	names, err := a.view.ReadDir(p)
	if err != nil {
		a.fileError(p, err)
		// keep the directory itself so its place and metadata are restored
		names = nil
	}
	futures := make([]*future, 0, len(names))
	for _, name := range names {
		if a.ctx.Err() != nil {
			break
		}
		child := path.Join(p, name)
		cst, err := a.view.Lstat(child)
		if err != nil {
			a.fileError(child, err)
			continue
		}
		if a.opts.Excludes.Excluded(child, cst.Type == view.TypeDir) {
			continue
		}
		var childOld *repo.Node
		if parentTree != nil {
			childOld = parentTree.Find(name)
		}
		if cst.Type == view.TypeDir {
			futures = append(futures, a.walkSubdir(child, cst, childOld))
			continue
		}
		futures = append(futures, a.walkEntry(child, cst, childOld))
	}
	a.stats.dirs.Add(1)
	return a.finishDir(p, st, futures)
}

// walkSubdir walks a subdirectory in its own goroutine while a walker slot
// is free, else in this one: bounded parallelism without deadlock.
func (a *Archiver) walkSubdir(p string, st *view.Stat, old *repo.Node) *future {
	select {
	case a.walkSem <- struct{}{}:
		f := newFuture()
		a.pending.Add(1)
		go func() {
			inner := a.walkEntry(p, st, old)
			<-a.walkSem
			a.pending.Add(-1)
			go func() {
				<-inner.done
				f.resolve(inner.node)
			}()
		}()
		return f
	default:
		return a.walkEntry(p, st, old)
	}
}

// finishDir saves a directory's tree when all its entries are done.
func (a *Archiver) finishDir(p string, st *view.Stat, children []*future) *future {
	return a.finishTree(p, a.baseNode(p, st, nil), children)
}

// finishTree saves the tree of dirNode, the directory p, when all its
// entries are done, and resolves to dirNode with that subtree.
func (a *Archiver) finishTree(p string, dirNode *repo.Node, children []*future) *future {
	f := newFuture()
	go func() {
		tree := &repo.Tree{Nodes: make([]*repo.Node, 0, len(children))}
		for _, c := range children {
			select {
			case <-c.done:
			case <-a.ctx.Done():
				f.resolve(nil)
				return
			}
			if c.node != nil {
				tree.Nodes = append(tree.Nodes, c.node)
			}
		}
		tree.Sort()
		id, err := a.repo.SaveTree(a.ctx, tree)
		if err != nil {
			a.fail(fmt.Errorf("save tree of %s: %w", p, err))
			f.resolve(nil)
			return
		}
		dirNode.Subtree = id
		a.opts.Progress.dirDone()
		f.resolve(dirNode)
	}()
	return f
}

// fileError records a file that could not be read at all.
func (a *Archiver) fileError(p string, err error) {
	reason := classify(err)
	a.record(Problem{Path: p, Outcome: outcome.Failed, Reason: reason, Error: err.Error()})
	a.count(outcome.Failed)
}

func classify(err error) string {
	switch {
	case notThere(err):
		return outcome.ReasonVanished
	case errors.Is(err, fs.ErrPermission):
		return outcome.ReasonPermission
	}
	return outcome.ReasonIO
}

// Package restore writes the files of a snapshot back to disk. Every blob
// is verified against its id as it is read; all-zero chunks become holes,
// so sparse files stay sparse; hard links are restored as links.
//
// It works in three passes: walk the trees, creating directories, special
// files and every regular file (empty, at its final size); then read the
// packs one after another, each span once, decrypting each blob once and
// writing it to every file that holds it; then set directory metadata,
// deepest first. Reading by pack rather than by file is what makes a
// restore of many small files fast.
package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/stillpoint-backup/stillpoint/internal/bufs"
	"github.com/stillpoint-backup/stillpoint/internal/filter"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// Repo is what a restore needs of a repository.
type Repo interface {
	LoadTree(ctx context.Context, id repo.ID) (*repo.Tree, error)
	LookupBlob(id repo.ID) (repo.BlobInfo, bool)
	OpenPack(id repo.ID) *repo.PackReader
}

// Overwrite says what to do with a file that exists at the target.
type Overwrite int

// Overwrite policies.
const (
	OverwriteNever     Overwrite = iota // keep the existing file, report it
	OverwriteIfChanged                  // replace it when size or mtime differ
	OverwriteAlways
)

// ParseOverwrite parses never, if-changed or always.
func ParseOverwrite(s string) (Overwrite, error) {
	switch s {
	case "never":
		return OverwriteNever, nil
	case "if-changed":
		return OverwriteIfChanged, nil
	case "always":
		return OverwriteAlways, nil
	}
	return 0, fmt.Errorf("unknown --overwrite %q (want never, if-changed or always)", s)
}

// Options configure a restore.
type Options struct {
	Target    string // files go to Target + original path
	Select    filter.Selector
	Overwrite Overwrite
	Workers   int
	// BatchWrites bounds the blob writes planned before packs are read
	// (0: DefaultBatchWrites).
	BatchWrites int
	// OnEvent is called for warnings and problems; may be nil.
	OnEvent  func(Event)
	Progress *Progress
}

// Event is a note about one path.
type Event struct {
	Path    string `json:"path"`
	Kind    string `json:"kind"` // "error", "exists", "warning"
	Message string `json:"message"`
}

// Progress counts what was restored.
type Progress struct {
	Files, Dirs, Bytes atomic.Int64
}

// Result sums up a restore.
type Result struct {
	Files, Dirs, Others, Bytes int64
	Skipped                    int64 // existing files kept
	Errors                     int64
	NotWhole                   int64 // files restored that were stored changed or stale
	Events                     []Event
}

type restorer struct {
	r    Repo
	opts Options
	ctx  context.Context

	mu     sync.Mutex
	res    Result
	links  map[[2]uint64]string // (device, inode) -> first restored path
	dirs   []dirMeta
	packs  map[repo.ID][]blobUse
	isRoot bool

	// files are created by several goroutines while the walk goes on: each
	// creation is a few system calls that wait on the filesystem
	creators chan struct{}
	created  sync.WaitGroup
	madeDirs sync.Map     // target directories known to exist
	planned  atomic.Int64 // blob writes in packs, not yet done
	foreign  foreignNotes // metadata of another platform that was not set
	// privileged: owners can be set (root on Unix; SeRestorePrivilege and
	// SeSecurityPrivilege held on Windows)
	privileged bool
}

// DefaultBatchWrites bounds the blob writes planned before the packs are
// read: the files of a huge tree are restored batch by batch, so what is
// kept per file does not grow with the tree. A pack whose blobs fall into
// two batches is read twice, in parts.
const DefaultBatchWrites = 32 << 10

// fileState is a regular file being restored.
type fileState struct {
	path    string // original path
	node    *repo.Node
	pending atomic.Int32 // blobs still to write
	failed  atomic.Bool
}

// blobUse is one place a blob goes: file f at offset.
type blobUse struct {
	bi     repo.BlobInfo
	f      *fileState
	offset int64
}

type dirMeta struct {
	path string
	node *repo.Node
}

// Run restores the tree with root id.
func Run(ctx context.Context, r Repo, root repo.ID, opts Options) (*Result, error) {
	if opts.Target == "" {
		return nil, errors.New("no restore target given")
	}
	if opts.Workers <= 0 {
		// packs are read and files written: I/O bound, two per core
		opts.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	if opts.BatchWrites <= 0 {
		opts.BatchWrites = DefaultBatchWrites
	}
	rs := &restorer{r: r, opts: opts, ctx: ctx, links: map[[2]uint64]string{}, packs: map[repo.ID][]blobUse{}, isRoot: os.Geteuid() == 0}
	if err := os.MkdirAll(opts.Target, 0o700); err != nil {
		return nil, targetError(opts.Target, err)
	}
	rs.creators = make(chan struct{}, opts.Workers)
	rs.platformStart()
	err := rs.walk("/", root, false)
	rs.created.Wait()
	if err != nil {
		return &rs.res, err
	}
	rs.writePacks()
	if err := ctx.Err(); err != nil {
		return &rs.res, err
	}
	// directory metadata last, deepest first, so writing files inside does
	// not change their mtimes again
	sort.Slice(rs.dirs, func(i, j int) bool { return len(rs.dirs[i].path) > len(rs.dirs[j].path) })
	for _, d := range rs.dirs {
		if err := rs.setMeta(d.path, d.node); err != nil {
			rs.event(Event{Path: d.path, Kind: "error", Message: err.Error()})
		}
	}
	if e := rs.foreign.event(); e != nil {
		rs.event(*e)
	}
	return &rs.res, nil
}

// targetError says why the target directory cannot be made.
func targetError(target string, err error) error {
	var pe *fs.PathError
	if errors.Is(err, syscall.ENOTDIR) && errors.As(err, &pe) {
		return fmt.Errorf("restore target %s: %s is a file, not a directory", target, pe.Path)
	}
	return fmt.Errorf("create restore target %s: %w", target, err)
}

func (rs *restorer) event(e Event) {
	if e.Kind == "error" && rs.ctx.Err() != nil {
		// an error after an interrupt is its echo ("pack cannot be read:
		// context canceled"), not damage: the restore reports the interrupt
		return
	}
	rs.mu.Lock()
	if e.Kind == "error" {
		rs.res.Errors++
	}
	rs.res.Events = append(rs.res.Events, e)
	rs.mu.Unlock()
	if rs.opts.OnEvent != nil {
		rs.opts.OnEvent(e)
	}
}

func (rs *restorer) dest(orig string) string {
	return filepath.Join(rs.opts.Target, filepath.FromSlash(orig))
}

// walk restores the entries of a directory tree. Files are handed to the
// workers; hard links wait until their first path is written.
func (rs *restorer) walk(dir string, treeID repo.ID, included bool) error {
	tree, err := rs.r.LoadTree(rs.ctx, treeID)
	if err != nil {
		rs.event(Event{Path: dir, Kind: "error", Message: fmt.Sprintf("cannot read directory: %v", err)})
		return nil
	}
	for _, n := range tree.Nodes {
		if rs.ctx.Err() != nil {
			return rs.ctx.Err()
		}
		p := path.Join(dir, n.Name)
		isDir := n.Type == repo.NodeDir
		take, descend := rs.opts.Select.Select(p, isDir, included)
		if !take && !descend {
			continue
		}
		if isDir {
			if err := os.MkdirAll(rs.dest(p), 0o700); err != nil {
				rs.event(Event{Path: p, Kind: "error", Message: err.Error()})
				continue
			}
			if take {
				rs.mu.Lock()
				rs.dirs = append(rs.dirs, dirMeta{path: p, node: n})
				rs.res.Dirs++
				rs.mu.Unlock()
				rs.opts.Progress.Dirs.Add(1)
			}
			if !n.Subtree.IsNull() {
				if err := rs.walk(p, n.Subtree, take); err != nil {
					return err
				}
			}
			continue
		}
		if !take {
			continue
		}
		if err := rs.ensureDir(dir); err != nil {
			rs.event(Event{Path: p, Kind: "error", Message: err.Error()})
			continue
		}
		if n.Type != repo.NodeFile || n.Links > 1 {
			// a hard link needs its first path to exist when it is made
			rs.restoreNode(p, n)
			continue
		}
		rs.creators <- struct{}{}
		rs.created.Add(1)
		go func() {
			defer func() { <-rs.creators; rs.created.Done() }()
			rs.restoreNode(p, n)
		}()
		if rs.planned.Load() >= int64(rs.opts.BatchWrites) {
			rs.created.Wait()
			rs.writePacks()
		}
	}
	return nil
}

// ensureDir makes the target directory of original directory dir, once.
func (rs *restorer) ensureDir(dir string) error {
	if _, ok := rs.madeDirs.Load(dir); ok {
		return nil
	}
	if err := os.MkdirAll(rs.dest(dir), 0o700); err != nil {
		return err
	}
	rs.madeDirs.Store(dir, true)
	return nil
}

func (rs *restorer) restoreNode(p string, n *repo.Node) {
	if n.Type == repo.NodeFile && (n.Outcome == outcome.Failed || n.Outcome == outcome.SkippedOpen) && len(n.Content) == 0 && n.Size == 0 {
		rs.event(Event{Path: p, Kind: "warning", Message: fmt.Sprintf("not restored: it was not backed up (%s: %s)", n.Outcome, n.Reason)})
		return
	}
	dst := rs.dest(p)
	if exists, skip := rs.checkExisting(p, dst, n); exists && skip {
		return
	}
	if n.Type == repo.NodeFile && n.Links > 1 {
		key := [2]uint64{n.Device, n.Inode}
		rs.mu.Lock()
		first, seen := rs.links[key]
		if !seen {
			rs.links[key] = dst
		}
		rs.mu.Unlock()
		if seen {
			// the first path may still be being written; a link shares its inode
			if err := os.Link(first, dst); err != nil {
				rs.event(Event{Path: p, Kind: "error", Message: fmt.Sprintf("hard link: %v", err)})
				return
			}
			rs.count(n)
			return
		}
	}
	if !n.Outcome.Whole() && n.Type == repo.NodeFile {
		rs.mu.Lock()
		rs.res.NotWhole++
		rs.mu.Unlock()
		msg := "restored, but it was backed up while it changed: it may be inconsistent"
		if n.Outcome == outcome.Stale {
			msg = fmt.Sprintf("restored an older version: the file could not be read in this backup (%s)", n.Reason)
		}
		rs.event(Event{Path: p, Kind: "warning", Message: msg})
	}
	switch {
	case n.Type == repo.NodeFile:
		rs.createFile(p, n)
	default:
		if err := rs.special(dst, n); err != nil {
			rs.event(Event{Path: p, Kind: "error", Message: err.Error()})
			return
		}
		if err := rs.setMeta(p, n); err != nil {
			rs.event(Event{Path: p, Kind: "error", Message: err.Error()})
		}
		rs.mu.Lock()
		rs.res.Others++
		rs.mu.Unlock()
	}
}

func (rs *restorer) count(n *repo.Node) {
	rs.mu.Lock()
	rs.res.Files++
	rs.res.Bytes += int64(n.Size)
	rs.mu.Unlock()
	rs.opts.Progress.Files.Add(1)
}

// checkExisting applies the overwrite policy. It removes the existing
// entry when it is to be replaced.
func (rs *restorer) checkExisting(p, dst string, n *repo.Node) (exists, skip bool) {
	fi, err := os.Lstat(dst)
	if err != nil {
		return false, false
	}
	switch rs.opts.Overwrite {
	case OverwriteNever:
		rs.mu.Lock()
		rs.res.Skipped++
		rs.mu.Unlock()
		rs.event(Event{Path: p, Kind: "exists", Message: "exists at the target; kept (use --overwrite if-changed or always to replace it)"})
		return true, true
	case OverwriteIfChanged:
		if fi.Mode().IsRegular() && n.Type == repo.NodeFile && fi.Size() == int64(n.Size) && fi.ModTime().UnixNano() == n.Mtime {
			rs.mu.Lock()
			rs.res.Skipped++
			rs.mu.Unlock()
			return true, true
		}
	}
	if fi.IsDir() {
		err = os.RemoveAll(dst)
	} else {
		err = os.Remove(dst)
	}
	if err != nil {
		rs.event(Event{Path: p, Kind: "error", Message: fmt.Sprintf("cannot replace existing entry: %v", err)})
		return true, true
	}
	return true, false
}

// createFile makes the file at its final size (holes where nothing is
// written keep a sparse file sparse) and plans the writes of its blobs.
func (rs *restorer) createFile(p string, n *repo.Node) {
	f, err := os.OpenFile(rs.dest(p), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		err = f.Truncate(int64(n.Size))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		rs.event(Event{Path: p, Kind: "error", Message: err.Error()})
		return
	}
	fs := &fileState{path: p, node: n}
	var off int64
	uses := make([]blobUse, 0, len(n.Content))
	for _, id := range n.Content {
		bi, ok := rs.r.LookupBlob(id)
		if !ok {
			rs.event(Event{Path: p, Kind: "error", Message: fmt.Sprintf("content damaged, file is incomplete: blob %s is not in the index", id.Short())})
			return
		}
		uses = append(uses, blobUse{bi: bi, f: fs, offset: off})
		off += int64(bi.RawLen)
	}
	if off != int64(n.Size) {
		rs.event(Event{Path: p, Kind: "error", Message: fmt.Sprintf("content is %d bytes, the snapshot says %d", off, n.Size)})
		return
	}
	if len(uses) == 0 {
		rs.finishFile(fs)
		return
	}
	fs.pending.Store(int32(len(uses)))
	rs.mu.Lock()
	for _, u := range uses {
		rs.packs[u.bi.Pack] = append(rs.packs[u.bi.Pack], u)
	}
	rs.mu.Unlock()
	rs.planned.Add(int64(len(uses)))
}

func (rs *restorer) finishFile(fs *fileState) {
	if err := rs.setMeta(fs.path, fs.node); err != nil {
		rs.event(Event{Path: fs.path, Kind: "error", Message: err.Error()})
	}
	rs.count(fs.node)
}

// writePacks reads every pack the planned writes need, once, and writes
// their blobs. No file may be planned meanwhile.
func (rs *restorer) writePacks() {
	packs := rs.packs
	rs.packs = map[repo.ID][]blobUse{}
	rs.planned.Store(0)
	ids := make([]repo.ID, 0, len(packs))
	for id := range packs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i][:], ids[j][:]) < 0 })
	work := make(chan repo.ID)
	var wg sync.WaitGroup
	for range rs.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &packWriter{rs: rs}
			for id := range work {
				w.pack(id, packs[id])
			}
			w.close()
		}()
	}
	for _, id := range ids {
		if rs.ctx.Err() != nil {
			break
		}
		work <- id
	}
	close(work)
	wg.Wait()
}

// packWriter writes the blobs of packs, keeping the last file open since
// consecutive blobs of a pack mostly belong to one file.
type packWriter struct {
	rs      *restorer
	open    *os.File
	openFor *fileState
	// reused for every pack: a fresh 8 MiB buffer per pack costs its
	// zeroing and the garbage collector's work
	span, plain []byte
}

func (w *packWriter) file(fs *fileState) (*os.File, error) {
	if w.openFor == fs {
		return w.open, nil
	}
	w.close()
	f, err := os.OpenFile(w.rs.dest(fs.path), os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	w.open, w.openFor = f, fs
	return f, nil
}

func (w *packWriter) close() {
	if w.open != nil {
		w.open.Close()
		w.open, w.openFor = nil, nil
	}
}

func (w *packWriter) pack(id repo.ID, uses []blobUse) {
	rs := w.rs
	sort.Slice(uses, func(i, j int) bool {
		if uses[i].bi.Offset != uses[j].bi.Offset {
			return uses[i].bi.Offset < uses[j].bi.Offset
		}
		return uses[i].offset < uses[j].offset
	})
	start := int64(uses[0].bi.Offset)
	last := uses[len(uses)-1].bi
	end := int64(last.Offset) + int64(last.Length)
	pr := rs.r.OpenPack(id)
	w.span = bufs.Grow(w.span, int(end-start))
	span := w.span
	err := pr.ReadRangeInto(rs.ctx, start, span)
	// uses are sorted by blob, so a blob used by several files is
	// decrypted once
	var (
		plain    []byte
		plainErr error
		plainOf  repo.ID
		have     bool
	)
	for _, u := range uses {
		if !have || plainOf != u.bi.ID {
			plain, plainErr = w.blob(pr, u.bi, span, start, err)
			plainOf, have = u.bi.ID, true
		}
		if plainErr != nil {
			w.done(u, plainErr)
			continue
		}
		if !allZero(plain) {
			f, ferr := w.file(u.f)
			if ferr == nil {
				_, ferr = f.WriteAt(plain, u.offset)
			}
			if ferr != nil {
				w.done(u, ferr)
				continue
			}
		}
		rs.opts.Progress.Bytes.Add(int64(len(plain)))
		w.done(u, nil)
	}
}

// blob decrypts one blob from the pack span, or, when the span could not
// be read (a truncated pack), reads just that blob: what is intact still
// restores.
func (w *packWriter) blob(pr *repo.PackReader, bi repo.BlobInfo, span []byte, start int64, spanErr error) ([]byte, error) {
	w.plain = bufs.Grow(w.plain, repo.DecompressBuf(int(bi.RawLen)))
	if spanErr == nil {
		return pr.BlobInto(bi, span[int64(bi.Offset)-start:int64(bi.Offset)-start+int64(bi.Length)], w.plain)
	}
	sealed, err := pr.ReadRange(w.rs.ctx, int64(bi.Offset), int64(bi.Length))
	if err != nil {
		return nil, fmt.Errorf("pack %s cannot be read: %w", bi.Pack.Short(), err)
	}
	return pr.BlobInto(bi, sealed, w.plain)
}

// done counts one blob of a file; the last one finishes the file.
func (w *packWriter) done(u blobUse, err error) {
	fs := u.f
	if err != nil && fs.failed.CompareAndSwap(false, true) {
		w.rs.event(Event{Path: fs.path, Kind: "error", Message: fmt.Sprintf("content damaged, file is incomplete: %v", err)})
	}
	if fs.pending.Add(-1) != 0 {
		return
	}
	if w.openFor == fs {
		w.close()
	}
	if !fs.failed.Load() {
		w.rs.finishFile(fs)
	}
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

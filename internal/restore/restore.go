// Package restore writes the files of a snapshot back to disk. Every blob
// is verified against its id as it is read; all-zero chunks become holes,
// so sparse files stay sparse; hard links are restored as links.
//
// It works in three passes: walk the trees, creating directories, special
// files and empty files, and planning where every blob of the other files
// goes; then read the packs, in the order the plan first needs them, each
// span once, decrypting each blob once and writing it to every file that
// holds it; then set directory metadata, deepest first. Reading by pack
// rather than by file is what makes a restore of many small files fast;
// such a pack is written by several goroutines at once, each taking a
// part of its files, since creating them is what a restore waits for.
//
// A regular file costs as few system calls as its content allows: it is
// created (O_CREAT|O_EXCL, relative to an open directory on Unix) when its
// first blob is written, the blobs of one file that follow each other in a
// pack go out in one write, and owner, mode, extended attributes and times
// are set through the open descriptor before the one close. A file whose
// content could not be read whole keeps mode 0600 and the time of the
// restore, so it never passes for the file it should have been.
package restore

import (
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
	"unsafe"

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
	isRoot bool

	// the plan of the batch: which blobs go where, and the packs in the
	// order the walk first needed them (backups write a file's blobs in
	// order, so a big file is written front to back)
	packs       map[repo.ID][]blobUse
	packOrder   []repo.ID
	planned     int    // blob writes in packs, not yet done
	linkQueue   []link // hard links to make once their first path is written
	walkDirs    dirFDs // directories the walk creates empty files in
	targetPlain bool   // the target is plain (dirState)

	foreign foreignNotes // metadata of another platform that was not set
	platformState
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
	failed  atomic.Bool  // some content could not be restored
	skipped atomic.Bool  // it existed at the target and is kept
	holes   atomic.Bool  // an all-zero blob was left as a hole
	direct  directFile   // what its direct writes share (Linux)

	plain bool       // in a plain directory (dirState)
	mu    sync.Mutex // held while the file is created or opened
	// made: madeFile once it is created, with what its creation set
	// right already (Unix: setOwner, setMode)
	made uint8
}

// madeFile marks a file created (fileState.made).
const madeFile uint8 = 1

// link is a hard link to make: dst gets the inode of first.
type link struct {
	first, dst, path string
	node             *repo.Node
}

// errSkipped stops the writes of a file that is kept as it is.
var errSkipped = errors.New("kept")

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
	rs.walkDirs.rs = rs
	defer rs.walkDirs.close()
	if err := os.MkdirAll(opts.Target, 0o700); err != nil {
		return nil, targetError(opts.Target, err)
	}
	rs.platformStart()
	if err := rs.walk("/", root, false, dirState{plain: rs.targetPlain}); err != nil {
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
		if filepath.Clean(pe.Path) == filepath.Clean(target) {
			return fmt.Errorf("restore target %s is a file, not a directory", target)
		}
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

// dirState is what the restore knows of a target directory.
type dirState struct {
	// fresh: the walk made it, so nothing can be in the way of a file there
	fresh bool
	// plain: a file made there gets the restoring user's ids and the
	// mode it is created with, less the umask: it has no set-group-id bit
	// and no default ACL. Known of the target (platformStart) and so of
	// the directories the walk makes below it, which inherit both.
	plain bool
}

// walk restores the entries of a directory tree. Regular files are
// planned, and written when the packs are read; hard links wait until
// their first path is written.
func (rs *restorer) walk(dir string, treeID repo.ID, included bool, ds dirState) error {
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
			made, err := rs.makeDir(p)
			if err != nil {
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
				sub := dirState{fresh: made, plain: made && ds.plain}
				if err := rs.walk(p, n.Subtree, take, sub); err != nil {
					return err
				}
			}
			continue
		}
		if !take {
			continue
		}
		rs.restoreNode(p, n, ds)
		if rs.planned >= rs.opts.BatchWrites {
			rs.writePacks()
		}
	}
	return nil
}

// makeDir makes the target directory of original directory p; made says
// it did not exist before.
func (rs *restorer) makeDir(p string) (made bool, err error) {
	dst := rs.dest(p)
	err = os.Mkdir(dst, 0o700)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrExist) {
		if fi, serr := os.Stat(dst); serr == nil && fi.IsDir() {
			return false, nil
		}
	}
	// what is in the way, in MkdirAll's words
	return false, os.MkdirAll(dst, 0o700)
}

// restoreNode restores one entry that is not a directory. In a directory
// the walk made (fresh), a regular file is not looked for first: its
// creation fails if something is there after all, and the overwrite
// policy is applied then.
func (rs *restorer) restoreNode(p string, n *repo.Node, ds dirState) {
	if n.Type == repo.NodeFile && (n.Outcome == outcome.Failed || n.Outcome == outcome.SkippedOpen) && len(n.Content) == 0 && n.Size == 0 {
		rs.event(Event{Path: p, Kind: "warning", Message: fmt.Sprintf("not restored: it was not backed up (%s: %s)", n.Outcome, n.Reason)})
		return
	}
	dst := rs.dest(p)
	if !ds.fresh || n.Type != repo.NodeFile {
		if exists, skip := rs.checkExisting(p, dst, n); exists && skip {
			return
		}
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
			// the first path is written when the packs are read: the
			// link is made after that
			rs.linkQueue = append(rs.linkQueue, link{first: first, dst: dst, path: p, node: n})
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
		rs.createFile(p, n, ds.plain)
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

// makeLinks makes the hard links whose first paths are written.
func (rs *restorer) makeLinks() {
	for _, l := range rs.linkQueue {
		if err := os.Link(l.first, l.dst); err != nil {
			rs.event(Event{Path: l.path, Kind: "error", Message: fmt.Sprintf("hard link: %v", err)})
			continue
		}
		rs.count(l.node)
	}
	rs.linkQueue = rs.linkQueue[:0]
}

// createFile plans the writes of a file's blobs. A file without content
// is made at once.
func (rs *restorer) createFile(p string, n *repo.Node, plain bool) {
	fs := &fileState{path: p, node: n, plain: plain}
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
		o, err := rs.openOut(&rs.walkDirs, fs)
		if err == nil {
			rs.finishFile(o, fs)
		} else if !errors.Is(err, errSkipped) {
			rs.event(Event{Path: p, Kind: "error", Message: err.Error()})
		}
		return
	}
	fs.pending.Store(int32(len(uses)))
	for _, u := range uses {
		if _, ok := rs.packs[u.bi.Pack]; !ok {
			rs.packOrder = append(rs.packOrder, u.bi.Pack)
		}
		rs.packs[u.bi.Pack] = append(rs.packs[u.bi.Pack], u)
	}
	rs.planned += len(uses)
}

// openOut opens a file to write its content, creating it the first time.
// When something is in the way, the overwrite policy decides: errSkipped
// says the file is kept.
func (rs *restorer) openOut(d *dirFDs, fs *fileState) (*outFile, error) {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	if fs.skipped.Load() {
		return nil, errSkipped
	}
	if fs.made&madeFile != 0 {
		return d.open(fs, false)
	}
	o, err := d.open(fs, true)
	if errors.Is(err, os.ErrExist) {
		if _, skip := rs.checkExisting(fs.path, rs.dest(fs.path), fs.node); skip {
			fs.skipped.Store(true)
			return nil, errSkipped
		}
		o, err = d.open(fs, true)
	}
	if err != nil {
		return nil, err
	}
	fs.made |= madeFile
	return o, nil
}

// finishFile sets the size (a file that ends in a hole, or whose content
// was not all restored), then the metadata of a whole file, and closes it.
func (rs *restorer) finishFile(o *outFile, fs *fileState) {
	if err := rs.finishOut(o, fs); err != nil {
		rs.event(Event{Path: fs.path, Kind: "error", Message: err.Error()})
	}
	if !fs.failed.Load() {
		rs.count(fs.node)
	}
}

// writePacks reads every pack the planned writes need, once, and writes
// their blobs; then it makes the hard links waiting for them. No file may
// be planned meanwhile.
func (rs *restorer) writePacks() {
	packs, order := rs.packs, rs.packOrder
	rs.packs, rs.packOrder, rs.planned = map[repo.ID][]blobUse{}, nil, 0
	work := make(chan repo.ID)
	var wg sync.WaitGroup
	for range rs.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &packWriter{rs: rs}
			w.dirs.rs = rs
			for id := range work {
				w.pack(id, packs[id])
			}
			w.close()
		}()
	}
	for _, id := range order {
		if rs.ctx.Err() != nil {
			break
		}
		work <- id
	}
	close(work)
	wg.Wait()
	rs.makeLinks()
}

// maxRun bounds what is gathered for one write: the blobs of a file that
// follow each other in a pack are written at once, up to this much.
const maxRun = 8 << 20

// packWriter writes the blobs of packs, keeping the last file open since
// consecutive blobs of a pack, and the next pack, mostly belong to one file.
type packWriter struct {
	rs     *restorer
	dirs   dirFDs
	out    *outFile
	outFor *fileState
	// reused for every pack: a fresh 8 MiB buffer per pack costs its
	// zeroing and the garbage collector's work
	span, plain []byte

	// the run: blobs of file runFor from runOff on, not written yet, as
	// they lie where they were decrypted (a stored blob that was not
	// compressed is decrypted in place, in span), so gathering them costs
	// no copy and no memory. Only the last may be in plain (runInPlain),
	// which the next decompressed blob overwrites.
	runFor     *fileState
	runOff     int64
	runLen     int64
	run        [][]byte
	runInPlain bool
	runUses    []blobUse
	directBuf

	// helpers that write parts of a pack of many small files beside this
	// writer (splitPack), each with its own open files and buffer
	subs []*packWriter
}

// The parts of a pack of many small files are written by several
// goroutines at once: creating a file is most of the cost there, and
// with a cold cache the kernel waits in it for the target's inode
// bitmaps, inode tables and directory blocks, so one writer per pack
// leaves the disk one request at a time. The parts share the pack's
// span, so this costs no memory beyond each helper's small buffer.
const (
	packParts     = 4         // goroutines per pack of small files
	partMinFiles  = 16        // files per part at least
	partMaxRawLen = 256 << 10 // largest blob of a pack that is split
)

// file is the open file fs, opened (or created) when it is not.
func (w *packWriter) file(fs *fileState) (*outFile, error) {
	if w.outFor == fs {
		return w.out, nil
	}
	w.closeOut()
	o, err := w.rs.openOut(&w.dirs, fs)
	if err != nil {
		return nil, err
	}
	w.out, w.outFor = o, fs
	return o, nil
}

// closeOut closes the open file; it is not finished (another worker, or
// a later pack, finishes it).
func (w *packWriter) closeOut() {
	if w.out != nil {
		w.out.close()
		w.out, w.outFor = nil, nil
	}
}

func (w *packWriter) close() {
	w.flush()
	w.closeOut()
	w.dirs.close()
	for _, sw := range w.subs {
		sw.close()
	}
}

// splitPack cuts the sorted uses of a pack into parts that are written at
// once, when the pack holds many small files: at most packParts parts of
// at least partMinFiles files, cut where both the file and the blob
// change, so a blob used twice is decrypted in one part. A file whose
// blobs lie apart in the pack may still fall into two parts: it is then
// written as a file of two packs is, by two writers.
func splitPack(uses []blobUse) [][]blobUse {
	files := 0
	for i, u := range uses {
		if u.bi.RawLen > partMaxRawLen {
			return [][]blobUse{uses}
		}
		if i == 0 || u.f != uses[i-1].f {
			files++
		}
	}
	n := min(packParts, files/partMinFiles)
	if n < 2 {
		return [][]blobUse{uses}
	}
	parts := make([][]blobUse, 0, n)
	from := 0
	for k := 1; k < n; k++ {
		cut := max(from+1, len(uses)*k/n)
		for cut < len(uses) && (uses[cut].f == uses[cut-1].f || uses[cut].bi.ID == uses[cut-1].bi.ID) {
			cut++
		}
		if cut >= len(uses) {
			break
		}
		parts = append(parts, uses[from:cut])
		from = cut
	}
	return append(parts, uses[from:])
}

// sub is helper i, made the first time it is needed.
func (w *packWriter) sub(i int) *packWriter {
	for len(w.subs) <= i {
		sw := &packWriter{rs: w.rs}
		sw.dirs.rs = w.rs
		w.subs = append(w.subs, sw)
	}
	return w.subs[i]
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
	// placed at start's place within a block: a local repository then
	// reads its aligned middle past the page cache (repo.ReadAlign)
	var span []byte
	span, w.span = bufs.Placed(w.span, start, int(end-start), repo.ReadAlign)
	err := pr.ReadRangeInto(rs.ctx, start, span)
	parts := splitPack(uses)
	if len(parts) == 1 {
		w.write(pr, uses, span, start, err)
		return
	}
	// each part decrypts its own blobs, which lie apart in span
	var wg sync.WaitGroup
	for i, part := range parts[1:] {
		sw := w.sub(i)
		wg.Go(func() { sw.write(pr, part, span, start, err) })
	}
	w.write(pr, parts[0], span, start, err)
	wg.Wait()
}

// write writes the blobs of uses, sorted, from the pack's span (start is
// its offset in the pack; err says the span could not be read).
func (w *packWriter) write(pr *repo.PackReader, uses []blobUse, span []byte, start int64, err error) {
	rs := w.rs
	// uses are sorted by blob, so a blob used by several files is
	// decrypted once
	var (
		plain    []byte
		plainErr error
		plainOf  repo.ID
		have     bool
	)
	for _, u := range uses {
		decrypt := !have || plainOf != u.bi.ID
		if w.runFor != nil && (w.runFor != u.f || w.runOff+w.runLen != u.offset ||
			w.runLen+int64(u.bi.RawLen) > maxRun || decrypt && w.runInPlain) {
			w.flush()
		}
		if decrypt {
			plain, plainErr = w.blob(pr, u.bi, span, start, err)
			plainOf, have = u.bi.ID, true
		}
		if plainErr != nil {
			w.done(u, fmt.Errorf("content damaged, file is incomplete: %w", plainErr))
			continue
		}
		if allZero(plain) {
			// a hole: the file is given its size when it is finished
			u.f.holes.Store(true)
			rs.opts.Progress.Bytes.Add(int64(len(plain)))
			w.done(u, nil)
			continue
		}
		if w.runFor == nil {
			w.runFor, w.runOff, w.runLen = u.f, u.offset, 0
		}
		w.run = append(w.run, plain)
		w.runInPlain = within(plain, w.plain)
		w.runLen += int64(len(plain))
		w.runUses = append(w.runUses, u)
	}
	w.flush()
}

func addr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// within says whether b lies in buf's array.
func within(b, buf []byte) bool {
	if len(b) == 0 || cap(buf) == 0 {
		return false
	}
	p, start := addr(b), addr(buf)
	return p >= start && p < start+uintptr(cap(buf))
}

// flush writes the run and counts its blobs.
func (w *packWriter) flush() {
	fs := w.runFor
	if fs == nil {
		return
	}
	o, err := w.file(fs)
	if err == nil {
		err = w.directBuf.writeRun(o, fs, w.run, w.runOff, w.runLen)
		if err != nil {
			err = fmt.Errorf("cannot write the file: %w", err)
		}
	}
	uses := w.runUses
	clear(w.run) // let the buffers go
	w.runFor, w.run, w.runInPlain, w.runUses = nil, w.run[:0], false, w.runUses[:0]
	for _, u := range uses {
		if err == nil {
			w.rs.opts.Progress.Bytes.Add(int64(u.bi.RawLen))
		}
		w.done(u, err)
	}
}

// blob decrypts one blob from the pack span, or, when the span could not
// be read (a truncated pack), reads just that blob: what is intact still
// restores.
func (w *packWriter) blob(pr *repo.PackReader, bi repo.BlobInfo, span []byte, start int64, spanErr error) ([]byte, error) {
	dst := repo.PlainBuf(&w.plain, bi)
	if spanErr == nil {
		return pr.BlobInto(bi, span[int64(bi.Offset)-start:int64(bi.Offset)-start+int64(bi.Length)], dst)
	}
	sealed, err := pr.ReadRange(w.rs.ctx, int64(bi.Offset), int64(bi.Length))
	if err != nil {
		return nil, fmt.Errorf("pack %s cannot be read: %w", bi.Pack.Short(), err)
	}
	return pr.BlobInto(bi, sealed, dst)
}

// done counts one blob of a file; the last one finishes the file.
func (w *packWriter) done(u blobUse, err error) {
	fs := u.f
	if err != nil && !errors.Is(err, errSkipped) && fs.failed.CompareAndSwap(false, true) {
		w.rs.event(Event{Path: fs.path, Kind: "error", Message: err.Error()})
	}
	if fs.pending.Add(-1) != 0 {
		return
	}
	if fs.skipped.Load() {
		return
	}
	// the last write may have been another worker's, or a hole
	o, err := w.file(fs)
	if err != nil {
		if !errors.Is(err, errSkipped) && fs.failed.CompareAndSwap(false, true) {
			w.rs.event(Event{Path: fs.path, Kind: "error", Message: err.Error()})
		}
		return
	}
	w.out, w.outFor = nil, nil
	w.rs.finishFile(o, fs)
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

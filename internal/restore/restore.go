// Package restore writes the files of a snapshot back to disk. Every blob
// is verified against its id as it is read; all-zero chunks become holes,
// so sparse files stay sparse; hard links are restored as links.
package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/stillpoint-backup/stillpoint/internal/filter"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// Repo is what a restore needs of a repository.
type Repo interface {
	LoadTree(ctx context.Context, id repo.ID) (*repo.Tree, error)
	LoadBlob(ctx context.Context, id repo.ID) ([]byte, error)
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
	jobs   chan fileTask
	wg     sync.WaitGroup
	isRoot bool
}

type dirMeta struct {
	path string
	node *repo.Node
}

type fileTask struct {
	path string
	node *repo.Node
}

// Run restores the tree with root id.
func Run(ctx context.Context, r Repo, root repo.ID, opts Options) (*Result, error) {
	if opts.Target == "" {
		return nil, errors.New("no restore target given")
	}
	if opts.Workers <= 0 {
		opts.Workers = 2 * runtime.GOMAXPROCS(0)
	}
	if opts.Progress == nil {
		opts.Progress = &Progress{}
	}
	rs := &restorer{r: r, opts: opts, ctx: ctx, links: map[[2]uint64]string{}, jobs: make(chan fileTask, 64), isRoot: os.Geteuid() == 0}
	if err := os.MkdirAll(opts.Target, 0o700); err != nil {
		return nil, fmt.Errorf("create target %s: %w", opts.Target, err)
	}
	for range opts.Workers {
		rs.wg.Add(1)
		go rs.worker()
	}
	err := rs.walk("/", root, false)
	close(rs.jobs)
	rs.wg.Wait()
	if err != nil {
		return &rs.res, err
	}
	if err := ctx.Err(); err != nil {
		return &rs.res, err
	}
	// directory metadata last, deepest first, so writing files inside does
	// not change their mtimes again
	sort.Slice(rs.dirs, func(i, j int) bool { return len(rs.dirs[i].path) > len(rs.dirs[j].path) })
	for _, d := range rs.dirs {
		if err := rs.setMeta(d.path, d.node); err != nil {
			rs.event(Event{Path: d.node.Name, Kind: "error", Message: err.Error()})
		}
	}
	return &rs.res, nil
}

func (rs *restorer) event(e Event) {
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
		if err := os.MkdirAll(rs.dest(dir), 0o700); err != nil {
			rs.event(Event{Path: p, Kind: "error", Message: err.Error()})
			continue
		}
		rs.restoreNode(p, n)
	}
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
	case n.Type == repo.NodeFile && n.Links > 1:
		// later links to this inode need the file to exist: write it now
		rs.restoreFile(fileTask{path: p, node: n})
	case n.Type == repo.NodeFile:
		rs.jobs <- fileTask{path: p, node: n}
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

func (rs *restorer) worker() {
	defer rs.wg.Done()
	for t := range rs.jobs {
		if rs.ctx.Err() != nil {
			continue
		}
		rs.restoreFile(t)
	}
}

func (rs *restorer) restoreFile(t fileTask) {
	if err := rs.writeFile(t.path, t.node); err != nil {
		rs.event(Event{Path: t.path, Kind: "error", Message: err.Error()})
		return
	}
	if err := rs.setMeta(t.path, t.node); err != nil {
		rs.event(Event{Path: t.path, Kind: "error", Message: err.Error()})
	}
	rs.count(t.node)
}

// writeFile writes a file's content, leaving holes for all-zero chunks.
func (rs *restorer) writeFile(p string, n *repo.Node) error {
	dst := rs.dest(p)
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	var off int64
	for _, id := range n.Content {
		data, err := rs.r.LoadBlob(rs.ctx, id)
		if err != nil {
			f.Close()
			return fmt.Errorf("content damaged, file is incomplete: %w", err)
		}
		if !allZero(data) {
			if _, err := f.WriteAt(data, off); err != nil {
				f.Close()
				return err
			}
		}
		off += int64(len(data))
		rs.opts.Progress.Bytes.Add(int64(len(data)))
	}
	if off != int64(n.Size) {
		f.Close()
		return fmt.Errorf("content is %d bytes, the snapshot says %d", off, n.Size)
	}
	if err := f.Truncate(off); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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

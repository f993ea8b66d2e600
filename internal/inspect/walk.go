package inspect

import (
	"context"
	"fmt"
	"path"
	"sync"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// Trees is what the walkers need of a repository.
type Trees interface {
	LoadTree(ctx context.Context, id repo.ID) (*repo.Tree, error)
}

// Visitor receives the nodes of a walk, in path order (a directory's
// entries sorted by name, each directory before what is below it).
type Visitor struct {
	// Node is called for every entry.
	Node func(p string, n *repo.Node) error
	// Descend tells whether to walk the subtree of directory n at p (nil:
	// always). It is called once per directory, when its parent's tree is
	// read, before Node sees the directory: the walker reads the chosen
	// subtrees ahead.
	Descend func(p string, n *repo.Node) bool
	// Leave, when set, is called after the subtree of a directory that
	// was descended into has been walked.
	Leave func(p string, n *repo.Node) error
	// TreeError, when set, is called for a directory whose tree cannot
	// be read: returning nil skips it and the walk goes on. Without it
	// the walk stops with the *TreeError.
	TreeError func(err *TreeError) error
}

// Read-ahead bounds. Tree blobs are small and their reads wait on the
// storage, not the CPU: a few more readers than cores keep it busy, and a
// few hundred trees read ahead are a few MiB at most.
const (
	treeReaders = 8
	treeAhead   = 512
)

// Walker walks trees, reading subtrees ahead of the visit in parallel.
// A Walker serves one walk at a time.
type Walker struct {
	trees Trees
	sem   chan struct{}

	mu      sync.Mutex
	ahead   map[repo.ID]*future
	pending int
}

type future struct {
	done chan struct{}
	tree *repo.Tree
	err  error
	refs int
}

// NewWalker returns a walker that reads trees from t.
func NewWalker(t Trees) *Walker {
	return &Walker{trees: t, sem: make(chan struct{}, treeReaders), ahead: map[repo.ID]*future{}}
}

// Walk visits every node below the directory dir whose tree is root.
func (w *Walker) Walk(ctx context.Context, dir string, root repo.ID, v Visitor) error {
	defer w.drain()
	return w.walk(ctx, dir, root, v)
}

// drain waits for the reads still ahead (a walk that stopped early).
func (w *Walker) drain() {
	w.mu.Lock()
	fs := make([]*future, 0, len(w.ahead))
	for _, f := range w.ahead {
		fs = append(fs, f)
	}
	w.ahead = map[repo.ID]*future{}
	w.pending = 0
	w.mu.Unlock()
	for _, f := range fs {
		<-f.done
	}
}

func (w *Walker) walk(ctx context.Context, dir string, id repo.ID, v Visitor) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := w.get(ctx, id)
	if err != nil {
		te := &TreeError{Path: dir, ID: id, Err: err}
		if v.TreeError == nil || ctx.Err() != nil {
			return te
		}
		return v.TreeError(te)
	}
	// decide first, so the subtrees to walk are read while this one is visited
	var descend []bool
	for i, n := range t.Nodes {
		if n.Type != repo.NodeDir || n.Subtree.IsNull() {
			continue
		}
		if descend == nil {
			descend = make([]bool, len(t.Nodes))
		}
		if v.Descend == nil || v.Descend(path.Join(dir, n.Name), n) {
			descend[i] = true
			w.prefetch(ctx, n.Subtree)
		}
	}
	for i, n := range t.Nodes {
		p := path.Join(dir, n.Name)
		if v.Node != nil {
			if err := v.Node(p, n); err != nil {
				return err
			}
		}
		if descend == nil || !descend[i] {
			continue
		}
		if err := w.walk(ctx, p, n.Subtree, v); err != nil {
			return err
		}
		if v.Leave != nil {
			if err := v.Leave(p, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// prefetch starts reading a tree the walk will need, unless enough are
// being read ahead already.
func (w *Walker) prefetch(ctx context.Context, id repo.ID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if f, ok := w.ahead[id]; ok {
		f.refs++
		return
	}
	if w.pending >= treeAhead {
		return
	}
	f := &future{done: make(chan struct{}), refs: 1}
	w.ahead[id] = f
	w.pending++
	go func() {
		w.sem <- struct{}{}
		f.tree, f.err = w.trees.LoadTree(ctx, id)
		<-w.sem
		close(f.done)
	}()
}

// get returns a tree, read ahead or now.
func (w *Walker) get(ctx context.Context, id repo.ID) (*repo.Tree, error) {
	w.mu.Lock()
	f, ok := w.ahead[id]
	if ok {
		f.refs--
		if f.refs == 0 {
			delete(w.ahead, id)
			w.pending--
		}
	}
	w.mu.Unlock()
	if !ok {
		return w.trees.LoadTree(ctx, id)
	}
	<-f.done
	return f.tree, f.err
}

// TreeError says which directory of a snapshot could not be read.
type TreeError struct {
	Path string
	ID   repo.ID
	Err  error
}

func (e *TreeError) Error() string {
	return fmt.Sprintf("directory %s (tree %s) cannot be read: %v", e.Path, e.ID.Short(), e.Err)
}

func (e *TreeError) Unwrap() error { return e.Err }

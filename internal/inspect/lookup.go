package inspect

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// ErrNotInSnapshot means a path is not in a snapshot's tree.
var ErrNotInSnapshot = errors.New("not in the snapshot")

// NotFoundError names the path that is not there and the deepest
// directory on its way that is.
type NotFoundError struct {
	Path    string
	Nearest string // the deepest existing directory on the way
	NotDir  string // set when a component on the way is not a directory
}

func (e *NotFoundError) Error() string {
	if e.NotDir != "" {
		return fmt.Sprintf("%s is %s: %s is not a directory", e.Path, ErrNotInSnapshot, e.NotDir)
	}
	return fmt.Sprintf("%s is %s; the nearest directory that is: %s", e.Path, ErrNotInSnapshot, e.Nearest)
}

func (e *NotFoundError) Unwrap() error { return ErrNotInSnapshot }

// Lookup returns the node at the absolute path p of the tree root. The
// root itself ("/") is returned as a directory node named "/" whose
// subtree is root.
func Lookup(ctx context.Context, t Trees, root repo.ID, p string) (*repo.Node, error) {
	p = path.Clean("/" + p)
	node := &repo.Node{Name: "/", Type: repo.NodeDir, Mode: 0o755, Subtree: root}
	if p == "/" {
		return node, nil
	}
	dir := "/"
	for _, name := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if node.Type != repo.NodeDir {
			return nil, &NotFoundError{Path: p, NotDir: dir}
		}
		if node.Subtree.IsNull() {
			return nil, &NotFoundError{Path: p, Nearest: dir}
		}
		tree, err := t.LoadTree(ctx, node.Subtree)
		if err != nil {
			return nil, &TreeError{Path: dir, ID: node.Subtree, Err: err}
		}
		next := tree.Find(name)
		if next == nil {
			return nil, &NotFoundError{Path: p, Nearest: dir}
		}
		node = next
		dir = path.Join(dir, name)
	}
	return node, nil
}

// Resolve returns the spelling in the tree of the repository path p, whose
// names are compared under rules r: under Windows rules /C/DATA/file.TXT
// finds /C/data/File.txt. An exact name is preferred to one that differs
// in case only. Where a component is not in the tree, the rest of p is
// returned as given (Lookup then says what is missing); under Unix rules p
// is returned clean and unchanged.
func Resolve(ctx context.Context, t Trees, root repo.ID, p string, r pathmap.Rules) (string, error) {
	p = path.Clean("/" + p)
	if !r.IsWindows() || p == "/" {
		return p, nil
	}
	comps := strings.Split(strings.TrimPrefix(p, "/"), "/")
	id := root
	for i, name := range comps {
		if id.IsNull() {
			break
		}
		tree, err := t.LoadTree(ctx, id)
		if err != nil {
			return "", &TreeError{Path: "/" + strings.Join(comps[:i], "/"), ID: id, Err: err}
		}
		next := tree.Find(name)
		if next == nil {
			for _, n := range tree.Nodes {
				if r.Equal(n.Name, name) {
					next = n
					break
				}
			}
		}
		if next == nil {
			break
		}
		comps[i] = next.Name
		id = repo.ID{}
		if next.Type == repo.NodeDir {
			id = next.Subtree
		}
	}
	return "/" + strings.Join(comps, "/"), nil
}

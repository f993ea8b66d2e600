package archiver

import (
	"errors"
	"fmt"
	"path"
	"sort"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// A follow-up (Options.Only) walks the parent's tree, not the view: it
// goes down the directories on the way to the paths to look at again and
// takes every other entry from the parent as it is, subtrees by their id.
// So it reads nothing but those paths, and the new tree differs from the
// parent's only in them and the directories above them.

// startFollowUp begins the walk of a follow-up at the root.
func (a *Archiver) startFollowUp(rootOld *repo.Node) (*future, error) {
	if rootOld == nil {
		return nil, errors.New("a follow-up needs the parent snapshot's tree")
	}
	only, err := normalizeRoots(*a.opts.Rules, a.opts.Only)
	if err != nil {
		return nil, err
	}
	a.previous = map[string]*repo.Node{}
	own, err := a.repo.LoadTree(a.ctx, rootOld.Subtree)
	if err != nil {
		return nil, fmt.Errorf("load the parent's tree: %w", err)
	}
	vd := buildVirtual(only)
	if vd.target {
		return nil, errors.New("a follow-up cannot read again the whole tree (/)")
	}
	root := *rootOld
	return a.walkOnly("/", vd, own, &root), nil
}

// walkOnly builds the tree of the directory p, whose node (metadata) is
// dirNode and whose tree in the parent is own (nil: the parent has none):
// the parent's entries, with those on the way to the paths of vd walked.
func (a *Archiver) walkOnly(p string, vd *vdir, own *repo.Tree, dirNode *repo.Node) *future {
	var children []*future
	if own != nil {
		for _, n := range own.Nodes {
			if _, walked := vd.children[n.Name]; !walked {
				children = append(children, ready(n))
			}
		}
	}
	names := make([]string, 0, len(vd.children))
	for n := range vd.children {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		child, cvd := path.Join(p, name), vd.children[name]
		var old *repo.Node
		if own != nil {
			old = own.Find(name)
		}
		if cvd.target {
			if f := a.walkTarget(child, old); f != nil {
				children = append(children, f)
			}
			continue
		}
		if f := a.walkOnlyDir(child, cvd, old); f != nil {
			children = append(children, f)
		}
	}
	return a.finishTree(p, dirNode, children)
}

// walkOnlyDir continues below the directory p on the way to the paths of
// vd; nil drops it (not there, or no directory now).
func (a *Archiver) walkOnlyDir(p string, vd *vdir, old *repo.Node) *future {
	if old != nil {
		if old.Type != repo.NodeDir {
			return ready(old) // a file in the parent: the paths below it are not there
		}
		sub, err := a.repo.LoadTree(a.ctx, old.Subtree)
		if err != nil {
			// unlike a full run, a follow-up cannot read the tree again
			a.fail(fmt.Errorf("load the parent's tree of %s: %w", p, err))
			return ready(old)
		}
		n := *old
		return a.walkOnly(p, vd, sub, &n)
	}
	// not in the parent: the directory is new, its metadata the view's
	st, err := a.view.Lstat(p)
	switch {
	case err != nil && notThere(err):
		a.forgetTargets(p, vd)
		return nil
	case err != nil:
		a.rootsFailed(p, vd, err)
		return nil
	case st.Type != view.TypeDir:
		a.forgetTargets(p, vd)
		return nil
	}
	return a.walkOnly(p, vd, nil, a.baseNode(p, st, nil))
}

// walkTarget looks at p again; old is its node in the parent. nil drops it.
func (a *Archiver) walkTarget(p string, old *repo.Node) *future {
	if old != nil && old.Type == repo.NodeDir {
		return ready(old) // a directory is read again by the next full run
	}
	a.setPrevious(p, old)
	st, err := a.view.Lstat(p)
	switch {
	case err != nil && notThere(err):
		return nil // gone since: nothing to keep
	case err != nil:
		a.fileError(p, err)
		if old == nil {
			return nil
		}
		// still counted, as the parent's version it keeps
		if old.Type == repo.NodeFile {
			a.stats.files.Add(1)
			a.stats.bytes.Add(int64(old.Size))
		} else {
			a.stats.others.Add(1)
		}
		return ready(old)
	}
	return a.walkEntry(p, st, old)
}

// forgetTargets notes the paths at or below p as looked at and gone.
func (a *Archiver) forgetTargets(p string, vd *vdir) {
	for _, t := range vd.targets(p) {
		a.setPrevious(t, nil)
	}
}

func (a *Archiver) setPrevious(p string, old *repo.Node) {
	a.mu.Lock()
	a.previous[a.opts.Rules.Display(p)] = old
	a.mu.Unlock()
}

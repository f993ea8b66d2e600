package inspect

import (
	"context"
	"fmt"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/filter"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// Finder matches paths against patterns as `find` does: the filter
// package's rules (a pattern without a slash matches a base name, one
// with a slash a whole path, anchored at the root when it starts with
// "/"; "*", "?", "[…]" within a name, "**" across names; a trailing slash
// matches directories only), so that a pattern means the same as in
// --exclude and --include.
type Finder struct {
	pats       []pattern
	ignoreCase bool
	// noMatch remembers the subtrees (at a path) that held no match, so a
	// search of many snapshots reads each unchanged directory once
	noMatch map[string]struct{}
	w       *Walker
}

type pattern struct {
	p        *filter.Pattern
	nameOnly bool // matched against the base name alone
}

// NewFinder compiles the patterns. With ignoreCase, names and patterns
// are compared in lower case.
func NewFinder(t Trees, patterns []string, ignoreCase bool) (*Finder, error) {
	if len(patterns) == 0 {
		return nil, fmt.Errorf("no pattern given")
	}
	f := &Finder{ignoreCase: ignoreCase, noMatch: map[string]struct{}{}, w: NewWalker(t)}
	for _, s := range patterns {
		if ignoreCase {
			s = strings.ToLower(s)
		}
		p, err := filter.Compile(s)
		if err != nil {
			return nil, err
		}
		f.pats = append(f.pats, pattern{p: p, nameOnly: !strings.Contains(strings.TrimSuffix(s, "/"), "/")})
	}
	return f, nil
}

// Match tells whether the node n at path p matches a pattern.
func (f *Finder) Match(p string, n *repo.Node) bool {
	isDir := n.Type == repo.NodeDir
	name := n.Name
	if f.ignoreCase {
		p, name = strings.ToLower(p), strings.ToLower(name)
	}
	for _, pt := range f.pats {
		// a name pattern looks at the last component only: give it just
		// that, rather than a whole path to split
		if pt.nameOnly && pt.p.Match(name, isDir) || !pt.nameOnly && pt.p.Match(p, isDir) {
			return true
		}
	}
	return false
}

// mayMatchBelow tells whether a path below directory p could match.
func (f *Finder) mayMatchBelow(p string) bool {
	if f.ignoreCase {
		p = strings.ToLower(p)
	}
	for _, pt := range f.pats {
		if pt.nameOnly || pt.p.MatchPrefix(p) {
			return true
		}
	}
	return false
}

// Find calls fn for every node of the tree root that matches, in path order.
func (f *Finder) Find(ctx context.Context, root repo.ID, fn func(p string, n *repo.Node) error) error {
	key := func(p string, id repo.ID) string { return p + "\x00" + string(id[:]) }
	if _, ok := f.noMatch[key("/", root)]; ok {
		return nil
	}
	// found[i] counts the matches below the i-th directory being walked
	found := []int{0}
	walked := map[*repo.Node]bool{}
	err := f.w.Walk(ctx, "/", root, Visitor{
		Descend: func(p string, n *repo.Node) bool {
			if _, ok := f.noMatch[key(p, n.Subtree)]; ok {
				return false
			}
			walked[n] = f.mayMatchBelow(p)
			return walked[n]
		},
		Node: func(p string, n *repo.Node) error {
			if walked[n] {
				// the counter of its subtree starts after the directory
				// itself is counted in its parent's
				delete(walked, n)
				defer func() { found = append(found, 0) }()
			}
			if !f.Match(p, n) {
				return nil
			}
			found[len(found)-1]++
			return fn(p, n)
		},
		Leave: func(p string, n *repo.Node) error {
			k := found[len(found)-1]
			found = found[:len(found)-1]
			if k == 0 {
				f.noMatch[key(p, n.Subtree)] = struct{}{}
			}
			found[len(found)-1] += k
			return nil
		},
	})
	if err == nil && found[0] == 0 {
		f.noMatch[key("/", root)] = struct{}{}
	}
	return err
}

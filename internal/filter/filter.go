// Package filter matches paths against include and exclude patterns.
//
// A pattern without a slash matches the name of any file or directory
// ("*.tmp", "cache"). A pattern with a trailing slash matches directories
// only ("cache/"). A pattern with a slash elsewhere matches whole paths:
// from the root when it starts with "/", otherwise any trailing run of
// path components. "*", "?" and "[…]" match within one component, "**"
// matches any number of components.
//
// Paths are repository paths (package pathmap). Patterns compiled with
// CompileFor under Windows rules may use `\` and absolute Windows paths
// (`C:\data\cache` is the anchored /C/data/cache) and match without regard
// to case, as Windows does.
package filter

import (
	"fmt"
	"path"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
)

// Pattern is one compiled pattern.
type Pattern struct {
	raw      string
	parts    []string
	anchored bool
	dirOnly  bool
	nameOnly bool
	rules    pathmap.Rules // Windows: case-insensitive
}

// Compile parses a pattern under Unix rules: "/" separates, case counts.
func Compile(p string) (*Pattern, error) { return CompileFor(pathmap.Unix, p) }

// CompileFor parses a pattern written under the path rules of a platform.
func CompileFor(r pathmap.Rules, p string) (*Pattern, error) {
	if p == "" {
		return nil, fmt.Errorf("empty pattern")
	}
	pat := &Pattern{raw: p, rules: r}
	p = r.Pattern(p)
	if strings.HasSuffix(p, "/") && len(p) > 1 {
		pat.dirOnly = true
		p = strings.TrimSuffix(p, "/")
	}
	pat.anchored = strings.HasPrefix(p, "/")
	p = strings.Trim(p, "/")
	if p == "" {
		pat.parts = nil
		return pat, nil
	}
	pat.parts = strings.Split(r.Fold(p), "/")
	pat.nameOnly = len(pat.parts) == 1 && !pat.anchored
	for _, part := range pat.parts {
		if _, err := path.Match(part, ""); err != nil {
			return nil, fmt.Errorf("bad pattern %q: %v", pat.raw, err)
		}
	}
	return pat, nil
}

func (p *Pattern) String() string { return p.raw }

// Match tells whether the path itself matches.
func (p *Pattern) Match(filePath string, isDir bool) bool {
	if p.dirOnly && !isDir {
		return false
	}
	comps := split(p.rules.Fold(filePath))
	if p.parts == nil {
		return p.anchored
	}
	if p.nameOnly {
		if len(comps) == 0 {
			return false
		}
		ok, _ := path.Match(p.parts[0], comps[len(comps)-1])
		return ok
	}
	if p.anchored {
		return matchParts(p.parts, comps)
	}
	for i := range comps {
		if matchParts(p.parts, comps[i:]) {
			return true
		}
	}
	return false
}

// MatchPrefix tells whether some path below dirPath could match, so a
// directory on the way to an included path is not skipped.
func (p *Pattern) MatchPrefix(dirPath string) bool {
	if !p.anchored {
		return true
	}
	comps := split(p.rules.Fold(dirPath))
	return prefixParts(p.parts, comps)
}

func split(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func matchParts(pat, comps []string) bool {
	if len(pat) == 0 {
		return len(comps) == 0
	}
	if pat[0] == "**" {
		for i := 0; i <= len(comps); i++ {
			if matchParts(pat[1:], comps[i:]) {
				return true
			}
		}
		return false
	}
	if len(comps) == 0 {
		return false
	}
	if ok, _ := path.Match(pat[0], comps[0]); !ok {
		return false
	}
	return matchParts(pat[1:], comps[1:])
}

// prefixParts tells whether comps could be the beginning of a match.
func prefixParts(pat, comps []string) bool {
	if len(comps) == 0 {
		return true
	}
	if len(pat) == 0 {
		return false
	}
	if pat[0] == "**" {
		return true
	}
	if ok, _ := path.Match(pat[0], comps[0]); !ok {
		return false
	}
	return prefixParts(pat[1:], comps[1:])
}

// Set is a list of patterns.
type Set []*Pattern

// CompileAll compiles patterns under Unix rules.
func CompileAll(patterns []string) (Set, error) { return CompileAllFor(pathmap.Unix, patterns) }

// CompileAllFor compiles patterns written under the rules of a platform.
func CompileAllFor(r pathmap.Rules, patterns []string) (Set, error) {
	var s Set
	for _, p := range patterns {
		c, err := CompileFor(r, p)
		if err != nil {
			return nil, err
		}
		s = append(s, c)
	}
	return s, nil
}

// Excluded tells whether a path is excluded: it or one of its parents
// matches (callers skip whole directories, so checking the path suffices).
func (s Set) Excluded(filePath string, isDir bool) bool {
	for _, p := range s {
		if p.Match(filePath, isDir) {
			return true
		}
	}
	return false
}

// Selector decides what a restore takes.
type Selector struct {
	Include Set
	Exclude Set
}

// Select tells whether to take a path whose parents were taken (or
// descended into), and, for a directory, whether to descend into it.
// With includes, a path is taken if it or a parent matches one; a
// directory on the way to a possible match is descended into.
func (s *Selector) Select(filePath string, isDir bool, parentIncluded bool) (take, descend bool) {
	if s.Exclude.Excluded(filePath, isDir) {
		return false, false
	}
	if len(s.Include) == 0 || parentIncluded || s.Include.Excluded(filePath, isDir) {
		return true, isDir
	}
	if isDir {
		for _, p := range s.Include {
			if p.MatchPrefix(filePath) {
				return false, true
			}
		}
	}
	return false, false
}

// Excluder decides whether a path is left out of a backup.
type Excluder interface {
	Excluded(path string, isDir bool) bool
}

// Scoped applies each set of patterns only below its root, so one source's
// excludes do not touch another source.
type Scoped []ScopedSet

// ScopedSet is the patterns of one source.
type ScopedSet struct {
	Root  string // repository path
	Set   Set
	Rules pathmap.Rules // how Root is compared (Windows: without case)
}

// Excluded implements Excluder.
func (s Scoped) Excluded(p string, isDir bool) bool {
	for _, sc := range s {
		if sc.Rules.Within(p, sc.Root) && sc.Set.Excluded(p, isDir) {
			return true
		}
	}
	return false
}

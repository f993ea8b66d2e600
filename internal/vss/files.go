package vss

import (
	"os"
	"strings"
)

// What a writer covers. A writer's failure makes its own data
// crash-consistent, not the whole set: its metadata names the files of
// its components (IVssWMFiledesc: a path, a file spec, recursive or not),
// and a source is lowered when it contains one of those paths or lies
// inside one. A writer whose files cannot be known (no file descriptors,
// metadata that cannot be read, a path that names no drive or share once
// its environment variables are expanded, such as a volume GUID path) is
// taken to cover every source of the set: VSS tells which volumes a
// writer involves only through these paths, so there is no narrower
// answer that is still true.

// lookupEnv finds environment variables for the writers' paths; on
// Windows os.LookupEnv is without case, as %SystemRoot% expects.
var lookupEnv = os.LookupEnv

// expandEnv expands %NAME% references as ExpandEnvironmentStrings does;
// ok is false when a name is not set (the reference is left as it is).
func expandEnv(s string, lookup func(string) (string, bool)) (out string, ok bool) {
	ok = true
	var b strings.Builder
	for {
		i := strings.IndexByte(s, '%')
		if i < 0 {
			b.WriteString(s)
			return b.String(), ok
		}
		j := strings.IndexByte(s[i+1:], '%')
		if j < 0 {
			b.WriteString(s)
			return b.String(), ok
		}
		name := s[i+1 : i+1+j]
		b.WriteString(s[:i])
		if v, found := lookup(name); found && name != "" {
			b.WriteString(v)
		} else {
			ok = false
			b.WriteString(s[i : i+2+j])
		}
		s = s[i+2+j:]
	}
}

// normPath makes a Windows path comparable: backslashes, no \\?\ prefix
// for a drive path (\\?\UNC\ becomes \\), no trailing backslash, no "."
// or ".." elements, lower case. ok is false for a path that names no
// drive or share (relative, a volume GUID path, an unexpanded variable).
func normPath(p string) (string, bool) {
	p = strings.ReplaceAll(p, "/", `\`)
	switch {
	case len(p) >= 8 && strings.EqualFold(p[:8], `\\?\UNC\`):
		p = `\\` + p[8:]
	case strings.HasPrefix(p, `\\?\`) || strings.HasPrefix(p, `\\.\`):
		p = p[4:]
	}
	var prefix string
	switch {
	case len(p) >= 2 && p[1] == ':' && isLetter(p[0]):
		prefix, p = strings.ToLower(p[:2]), p[2:]
	case strings.HasPrefix(p, `\\`):
		parts := strings.SplitN(p[2:], `\`, 3)
		if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
			return "", false
		}
		prefix = strings.ToLower(`\\` + parts[0] + `\` + parts[1])
		p = ""
		if len(parts) == 3 {
			p = parts[2]
		}
	default:
		return "", false
	}
	if strings.Contains(p, "%") {
		return "", false
	}
	var elems []string
	for _, e := range strings.Split(p, `\`) {
		switch e {
		case "", ".":
		case "..":
			if len(elems) > 0 {
				elems = elems[:len(elems)-1]
			}
		default:
			elems = append(elems, strings.ToLower(e))
		}
	}
	if len(elems) == 0 {
		return prefix, true
	}
	return prefix + `\` + strings.Join(elems, `\`), true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// under tells whether p is dir or below it, on whole elements (both
// normalised).
func under(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+`\`)
}

func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '\\'); i >= 2 {
		return p[:i]
	}
	return p
}

// filesOf turns a writer's file descriptors into the form Covers checks,
// environment variables expanded; known is false when the writer's files
// cannot be known (see the comment at the top of this file).
func filesOf(id WriterIdentity, lookup func(string) (string, bool)) (files []FileDesc, known bool) {
	if id.FilesError != nil || len(id.Files) == 0 {
		return nil, false
	}
	for _, f := range id.Files {
		p, ok := expandEnv(f.Path, lookup)
		if !ok {
			return nil, false
		}
		if _, ok := normPath(p); !ok {
			return nil, false
		}
		files = append(files, FileDesc{Path: p, Filespec: f.Filespec, Recursive: f.Recursive})
	}
	return files, true
}

// Covers tells whether the writer's data may lie in source (a path, as
// the user gave it): a path of its files is source or below it, or source
// is below a path of its files (any depth when the descriptor is
// recursive, else directly in it). The file spec is not matched: a source
// next to a writer's files is taken as covered, which errs on the side of
// calling fewer files application-consistent. A writer whose files are
// not known covers every source.
func (w Writer) Covers(source string) bool {
	if !w.FilesKnown || len(w.Files) == 0 {
		return true
	}
	s, ok := normPath(source)
	if !ok {
		return true
	}
	for _, f := range w.Files {
		p, ok := normPath(f.Path)
		if !ok {
			return true
		}
		if under(p, s) || under(s, p) && (f.Recursive || s == p || parentOf(s) == p) {
			return true
		}
	}
	return false
}

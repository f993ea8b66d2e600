// Package pathmap maps the paths of the operating system to repository
// paths and back.
//
// A repository path is slash-separated and rooted at "/", the root tree of
// a snapshot (docs/format.md, Trees). On Unix it is the OS path itself. On
// Windows a volume becomes the first component below the root:
//
//	C:\data\x.txt            /C/data/x.txt
//	\\server\share\dir       /UNC/server/share/dir
//	\\?\C:\long\path         /C/long/path
//	\\?\UNC\server\share\x   /UNC/server/share/x
//
// "/", "/UNC" and "/UNC/server" are virtual directories: they exist in the
// tree but not on the system.
//
// The functions are pure and take the platform's rules as a value (Unix or
// Windows), so the Windows rules are tested on every platform; Native is
// the rules of the platform the program runs on, and the few functions that
// ask the system (Abs) live in the platform files.
package pathmap

import (
	"errors"
	"fmt"
	"path"
	"strings"
)

// Rules are the path rules of one platform. The zero value is Unix.
type Rules struct{ windows bool }

var (
	// Unix paths: "/" separated, case-sensitive, the OS path is the
	// repository path.
	Unix = Rules{}
	// Windows paths: drive letters and UNC shares, `\` or "/" separated,
	// case-insensitive.
	Windows = Rules{windows: true}
)

// IsWindows tells whether these are the Windows rules.
func (r Rules) IsWindows() bool { return r.windows }

func (r Rules) String() string {
	if r.windows {
		return "windows"
	}
	return "unix"
}

// ForPaths returns the rules that the absolute paths of a snapshot
// manifest were written under: Windows when every one is an absolute
// Windows path (none of which is an absolute Unix path), else Unix.
func ForPaths(paths []string) Rules {
	if len(paths) == 0 {
		return Unix
	}
	for _, p := range paths {
		if strings.HasPrefix(p, "/") || !Windows.IsAbs(p) {
			return Unix
		}
	}
	return Windows
}

// ErrNotAbs is returned for a path that is not absolute under the rules.
var ErrNotAbs = errors.New("not an absolute path")

// volume splits an absolute Windows path into its volume as repository
// components ("C", or "UNC/server/share") and the rest.
func volume(p string) (vol, rest string, err error) {
	isSep := func(c byte) bool { return c == '\\' || c == '/' }
	long := false
	if len(p) >= 4 && isSep(p[0]) && isSep(p[1]) && (p[2] == '?' || p[2] == '.') && isSep(p[3]) {
		// \\?\ (and the device form \\.\) turn off the system's parsing
		p, long = p[4:], true
		if len(p) >= 4 && strings.EqualFold(p[:3], "UNC") && isSep(p[3]) {
			p = `\\` + p[4:]
		}
	}
	switch {
	case len(p) >= 2 && p[1] == ':' && isLetter(p[0]):
		if len(p) == 2 && long {
			return strings.ToUpper(p[:1]), "", nil // \\?\C:
		}
		if len(p) == 2 || !isSep(p[2]) {
			return "", "", fmt.Errorf("%s: %w (a drive letter without a backslash is relative to that drive's current directory)", p, ErrNotAbs)
		}
		return strings.ToUpper(p[:1]), p[3:], nil
	case len(p) >= 2 && isSep(p[0]) && isSep(p[1]):
		parts := splitAny(p[2:], isSep)
		if len(parts) < 2 || parts[0] == "." || parts[0] == ".." || parts[1] == "." || parts[1] == ".." {
			return "", "", fmt.Errorf("%s: a UNC path needs a server and a share (\\\\server\\share\\...)", p)
		}
		if parts[0] == "?" || parts[0] == "." {
			return "", "", fmt.Errorf("%s: device and volume paths are not supported; name the drive letter or share instead", p)
		}
		return "UNC/" + parts[0] + "/" + parts[1], strings.Join(parts[2:], "/"), nil
	case long:
		return "", "", fmt.Errorf(`\\?\%s: only \\?\C:\... and \\?\UNC\server\share\... are supported; name the drive letter or share instead`, p)
	}
	return "", "", fmt.Errorf("%s: %w (C:\\dir or \\\\server\\share\\dir)", p, ErrNotAbs)
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// splitAny splits s at the separators, dropping empty parts.
func splitAny(s string, isSep func(byte) bool) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || isSep(s[i]) {
			if i > start {
				out = append(out, s[start:i])
			}
			start = i + 1
		}
	}
	return out
}

// IsAbs tells whether p is an absolute OS path under the rules.
func (r Rules) IsAbs(p string) bool {
	if !r.windows {
		return strings.HasPrefix(p, "/")
	}
	_, _, err := volume(p)
	return err == nil
}

// ToRepo maps an absolute OS path to its repository path, cleaned:
// "." and ".." resolved (".." stops at the volume), separators made "/",
// the drive letter upper case. The rest keeps its spelling.
func (r Rules) ToRepo(p string) (string, error) {
	if !r.windows {
		if !strings.HasPrefix(p, "/") {
			return "", fmt.Errorf("%s: %w", p, ErrNotAbs)
		}
		return path.Clean(p), nil
	}
	vol, rest, err := volume(p)
	if err != nil {
		return "", err
	}
	rest = strings.ReplaceAll(rest, `\`, "/")
	// Clean below the volume so that ".." cannot leave it
	return path.Join("/"+vol, path.Clean("/"+rest)), nil
}

// ToOS maps a repository path to the OS path it was read from; ok is
// false for a path that has none (a virtual directory, or on Windows a
// first component that is neither a drive letter nor UNC).
func (r Rules) ToOS(repoPath string) (osPath string, ok bool) {
	p := path.Clean("/" + repoPath)
	if !r.windows {
		return p, true
	}
	comps := splitAny(p, func(c byte) bool { return c == '/' })
	switch {
	case len(comps) == 0:
		return "", false
	case len(comps[0]) == 1 && isLetter(comps[0][0]):
		return strings.ToUpper(comps[0]) + `:\` + strings.Join(comps[1:], `\`), true
	case strings.EqualFold(comps[0], "UNC"):
		if len(comps) < 3 {
			return "", false
		}
		return `\\` + comps[1] + `\` + comps[2] + `\` + strings.Join(comps[3:], `\`), true
	}
	return "", false
}

// Virtual tells whether a repository path is a directory of the tree that
// is no directory of the system: on Windows "/", "/UNC" and "/UNC/server".
func (r Rules) Virtual(repoPath string) bool {
	if !r.windows {
		return false
	}
	comps := splitAny(path.Clean("/"+repoPath), func(c byte) bool { return c == '/' })
	return len(comps) == 0 || strings.EqualFold(comps[0], "UNC") && len(comps) < 3
}

// Clean returns the canonical spelling of an absolute OS path: for
// Windows `C:\data`, `C:\` for a drive, `\\server\share\dir`, with `\\?\`
// removed; for Unix path.Clean.
func (r Rules) Clean(p string) (string, error) {
	rp, err := r.ToRepo(p)
	if err != nil {
		return "", err
	}
	op, ok := r.ToOS(rp)
	if !ok {
		return "", fmt.Errorf("%s: %w", p, ErrNotAbs)
	}
	if r.windows && strings.HasPrefix(op, `\\`) && strings.Count(op, `\`) == 4 {
		op = strings.TrimSuffix(op, `\`) // \\server\share, as users write it
	}
	return op, nil
}

// Display returns how a repository path is shown to the user: the OS
// path where there is one, else the repository path.
func (r Rules) Display(repoPath string) string {
	if op, ok := r.ToOS(repoPath); ok {
		return op
	}
	return repoPath
}

// Fold returns s in the form in which the rules compare names: upper case
// on Windows (as NTFS compares), s itself on Unix.
func (r Rules) Fold(s string) string {
	if r.windows {
		return strings.ToUpper(s)
	}
	return s
}

// Equal tells whether two names or paths are the same under the rules.
func (r Rules) Equal(a, b string) bool {
	if r.windows {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// Within tells whether the repository path p is root or lies below it,
// on whole components.
func (r Rules) Within(p, root string) bool {
	if root == "/" || r.Equal(p, root) {
		return true
	}
	root = strings.TrimSuffix(root, "/")
	return len(p) > len(root) && p[len(root)] == '/' && r.Equal(p[:len(root)], root)
}

// Arg maps a path a user gave to name a place in a snapshot (ls, diff,
// dump, restore patterns) to a repository path: an absolute OS path under
// the rules is mapped with ToRepo; anything else is a repository path
// ("/C/data", or "data" for "/data"). Under Windows rules `\` separates too.
func (r Rules) Arg(p string) string {
	if r.windows {
		if rp, err := r.ToRepo(p); err == nil {
			return rp
		}
		p = strings.ReplaceAll(p, `\`, "/")
	}
	return path.Clean("/" + p)
}

// Pattern maps a filter pattern written under the rules to one over
// repository paths: under Windows rules `\` becomes "/" and a pattern
// that starts with an absolute path (`C:\data\cache`) is anchored at its
// repository path (/C/data/cache). A trailing separator is kept.
func (r Rules) Pattern(p string) string {
	if !r.windows {
		return p
	}
	dirOnly := strings.HasSuffix(p, `\`) || strings.HasSuffix(p, "/")
	if rp, err := r.ToRepo(p); err == nil {
		if dirOnly && rp != "/" {
			rp += "/"
		}
		return rp
	}
	return strings.ReplaceAll(p, `\`, "/")
}

// maxShort is the longest Windows path used without the \\?\ prefix: the
// 260 of MAX_PATH less room for an 8.3 name, the limit CreateDirectory
// keeps (Go's os package uses the same).
const maxShort = 247

// Long returns the form of a clean absolute OS path that the system opens
// whatever its length: under Windows rules, a path longer than MAX_PATH
// allows gets the \\?\ prefix (\\?\UNC\ for a share). Other paths, and
// every path under Unix rules, are returned as they are.
func (r Rules) Long(osPath string) string {
	if !r.windows || len(osPath) <= maxShort || strings.HasPrefix(osPath, `\\?\`) {
		return osPath
	}
	if strings.HasPrefix(osPath, `\\`) {
		return `\\?\UNC\` + osPath[2:]
	}
	return `\\?\` + osPath
}

// SamePaths tells whether two snapshots' lists of paths name the same
// places: element by element, without case when both are Windows paths
// (C:\Data and c:\data are one source there).
func SamePaths(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	r := ForPaths(a)
	if ForPaths(b) != r {
		return false
	}
	for i := range a {
		if !r.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// HasPath tells whether a snapshot's list of paths holds p, as "latest:PATH"
// names it: exactly under Unix rules; for Windows paths in any spelling
// that cleans to one of them, without case (latest:c:/data for C:\data).
func HasPath(paths []string, p string) bool {
	r := ForPaths(paths)
	if r.windows {
		if c, err := r.Clean(p); err == nil {
			p = c
		}
	}
	for _, v := range paths {
		if r.Equal(v, p) {
			return true
		}
	}
	return false
}

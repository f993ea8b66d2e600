package pathmap

import (
	"path/filepath"
	"strings"
	"syscall"
)

// Native is the rules of the platform the program runs on.
var Native = Windows

// Abs returns the canonical absolute OS path of p (Clean), resolving a
// relative path against the current directory, with each existing
// component spelt as the filesystem spells it: c:\USERS\me is backed up
// as C:\Users\me, so the tree, the parent and the manifest agree whatever
// case the user typed.
func Abs(p string) (string, error) {
	if !Windows.IsAbs(p) {
		a, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		p = a
	}
	c, err := Windows.Clean(p)
	if err != nil {
		return "", err
	}
	return spelling(c), nil
}

// spelling asks the filesystem for the name of each component of the
// clean path p, from the volume down, as far as they exist.
func spelling(p string) string {
	rp, err := Windows.ToRepo(p)
	if err != nil {
		return p
	}
	comps := strings.Split(strings.TrimPrefix(rp, "/"), "/")
	skip := 1 // the drive
	if strings.HasPrefix(p, `\\`) {
		skip = 3 // UNC, server, share
	}
	for i := skip; i < len(comps); i++ {
		if strings.ContainsAny(comps[i], "*?") {
			break
		}
		dir, _ := Windows.ToOS("/" + strings.Join(comps[:i+1], "/"))
		name, err := syscall.UTF16PtrFromString(Windows.Long(dir))
		if err != nil {
			break
		}
		var fd syscall.Win32finddata
		h, err := syscall.FindFirstFile(name, &fd)
		if err != nil {
			break
		}
		syscall.FindClose(h)
		if found := syscall.UTF16ToString(fd.FileName[:]); Windows.Equal(found, comps[i]) {
			comps[i] = found
		}
	}
	out, ok := Windows.ToOS("/" + strings.Join(comps, "/"))
	if !ok {
		return p
	}
	if strings.HasPrefix(out, `\\`) && strings.Count(out, `\`) == 4 {
		out = strings.TrimSuffix(out, `\`)
	}
	return out
}

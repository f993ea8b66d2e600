package soak

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// entry is what a restore must give back for one path.
type entry struct {
	Kind string // file, dir, link
	Mode fs.FileMode
	Size int64
	Hash string // SHA-256 of a file's content; a link's target
	id   statID // to reuse Hash when the file has not changed (not compared)
}

func (e entry) String() string {
	return fmt.Sprintf("%s %o %d %.16s", e.Kind, e.Mode, e.Size, e.Hash)
}

func (e entry) same(o entry) bool {
	return e.Kind == o.Kind && e.Mode == o.Mode && e.Size == o.Size && e.Hash == o.Hash
}

// manifest maps a path relative to the tree's root to its entry.
type manifest map[string]entry

// takeManifest describes every entry below root. A regular file whose
// identity (inode, size, mtime, ctime) equals the one in prev keeps prev's
// hash; any other is read and hashed. ctime cannot be set from user space,
// so a file written since prev was taken is always read again.
func takeManifest(root string, prev manifest) (manifest, int64, error) {
	m := manifest{}
	var hashed int64
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		e := entry{Mode: info.Mode().Perm()}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.Kind, e.Hash = "link", target
		case info.IsDir():
			e.Kind = "dir"
		case info.Mode().IsRegular():
			e.Kind, e.Size, e.id = "file", info.Size(), identity(info)
			if old, ok := prev[rel]; ok && old.Kind == "file" && e.id.valid && old.id == e.id {
				e.Hash = old.Hash
				break
			}
			h, err := hashFile(p)
			if err != nil {
				return err
			}
			e.Hash = h
			hashed += e.Size
		default:
			return fmt.Errorf("%s: unexpected file type %s", p, info.Mode().Type())
		}
		m[rel] = e
		return nil
	})
	return m, hashed, err
}

func hashFile(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// diff lists how got differs from want: at most a few paths, then a count.
// "" means equal.
func diff(got, want manifest) string {
	var d []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			d = append(d, "missing "+p)
		case !g.same(w):
			d = append(d, fmt.Sprintf("differs %s (restored %s, backed up %s)", p, g, w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			d = append(d, "extra "+p)
		}
	}
	sort.Strings(d)
	if len(d) > 8 {
		d = append(d[:8], fmt.Sprintf("… %d more", len(d)-8))
	}
	return strings.Join(d, "; ")
}

func (m manifest) bytes() int64 {
	var n int64
	for _, e := range m {
		n += e.Size
	}
	return n
}

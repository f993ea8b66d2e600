package cache

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// DirInfo describes the copies of one repository in a cache directory.
type DirInfo struct {
	RepositoryID string
	Path         string
	Files        int
	Bytes        int64
	LastUsed     time.Time // the newest copy's time (a process sets it when it uses a tree pack)
}

// Dirs lists the repositories' copies under base, oldest use first.
func Dirs(base string) ([]DirInfo, error) {
	entries, err := os.ReadDir(base)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []DirInfo
	for _, e := range entries {
		if !e.IsDir() || !validName(e.Name()) {
			continue
		}
		d := DirInfo{RepositoryID: e.Name(), Path: filepath.Join(base, e.Name(), "cache")}
		if info, err := os.Stat(d.Path); err != nil || !info.IsDir() {
			continue
		} else {
			d.LastUsed = info.ModTime()
		}
		err := filepath.WalkDir(d.Path, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return nil
			}
			info, err := de.Info()
			if err != nil {
				return nil
			}
			d.Files++
			d.Bytes += info.Size()
			if info.ModTime().After(d.LastUsed) {
				d.LastUsed = info.ModTime()
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].LastUsed.Before(out[j].LastUsed) })
	return out, nil
}

package mount

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// CheckPlace tells why dir cannot be a mount point of the repository at
// repository (a local path, "" when it is not one): it must be an existing
// directory, and neither inside the repository nor holding it (the mount
// would hide the repository from the process that serves it).
func CheckPlace(dir, repository string) error {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("mount point %s does not exist: create it first (mkdir %s)", dir, dir)
	case err != nil:
		return fmt.Errorf("mount point: %w", err)
	case !fi.IsDir():
		return fmt.Errorf("mount point %s is not a directory", dir)
	}
	if repository == "" {
		return nil
	}
	d, err := realPath(dir)
	if err != nil {
		return err
	}
	r, err := realPath(repository)
	if err != nil {
		return err
	}
	switch {
	case within(d, r):
		return fmt.Errorf("mount point %s is inside the repository %s: mount it elsewhere", dir, repository)
	case within(r, d):
		return fmt.Errorf("the repository %s is inside the mount point %s: the mount would hide it from stillpoint itself; mount it elsewhere", repository, dir)
	}
	return nil
}

func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real, nil
	}
	return abs, nil
}

// within tells whether p is dir or below it.
func within(p, dir string) bool {
	if p == dir {
		return true
	}
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

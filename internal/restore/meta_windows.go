package restore

import (
	"fmt"
	"os"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

func (rs *restorer) special(dst string, n *repo.Node) error {
	if n.Type == repo.NodeSymlink {
		return os.Symlink(n.LinkTarget, dst)
	}
	return fmt.Errorf("%s cannot be restored on windows", n.Type)
}

func (rs *restorer) setMeta(p string, n *repo.Node) error {
	dst := rs.dest(p)
	if n.Type == repo.NodeSymlink {
		return nil
	}
	_ = os.Chmod(dst, os.FileMode(n.Mode&0o777))
	t := time.Unix(0, n.Mtime)
	return os.Chtimes(dst, t, t)
}

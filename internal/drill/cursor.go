package drill

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cursor is where the rotating pack read-back continues: the bucket N of
// M that the next drill reads. It lives in a small file of the cache
// directory; a missing or unreadable file starts the rotation at 1, and a
// file written for another M starts it again.
type cursor struct{ path string }

func (c cursor) next(buckets int) int {
	if c.path == "" {
		return 1
	}
	b, err := os.ReadFile(c.path)
	if err != nil {
		return 1
	}
	n, m, ok := strings.Cut(strings.TrimSpace(string(b)), "/")
	bn, err1 := strconv.Atoi(n)
	bm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || bm != buckets || bn < 1 || bn > bm {
		return 1
	}
	return bn
}

// advance records that bucket done of buckets was read.
func (c cursor) advance(done, buckets int) error {
	if c.path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return err
	}
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, fmt.Appendf(nil, "%d/%d\n", done%buckets+1, buckets), 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, c.path); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}

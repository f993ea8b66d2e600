package quiesce

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// Helpers shared by the sqlite, postgres and mysql writer tests: one backup
// exactly as the run does it, and copying files out through a view.

// dbBackupResult is what one backup through a writer produced.
type dbBackupResult struct {
	Frozen *Frozen
	Held   time.Duration // Freeze start to Thaw end
	Freeze time.Duration // Freeze alone
	Create time.Duration // plan.Create alone
}

// dbCoveredOf is FreezeInfo.Covered as the run builds it from a plan.
func dbCoveredOf(p *snapshot.Plan) map[string]string {
	c := map[string]string{}
	for _, sp := range p.Sources {
		if sp.Consistency != snapshot.Live {
			c[sp.Path] = string(sp.Consistency)
		}
	}
	return c
}

// dbBackupOnce runs Freeze → plan.Create → Thaw → copy every source out
// through the set's view into dst (each source under its path relative to
// root) → Release, the order of a run.
func dbBackupOnce(t *testing.T, w Writer, plan *snapshot.Plan, staging, root, dst string) dbBackupResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	fr, err := w.Freeze(ctx, FreezeInfo{RunID: "test", Covered: dbCoveredOf(plan), StagingDir: staging})
	if err != nil {
		if terr := w.Thaw(ctx); terr != nil {
			t.Errorf("thaw after failed freeze: %v", terr)
		}
		t.Fatalf("freeze %s: %v", w.Name(), err)
	}
	frozen := time.Now()
	set, err := plan.Create(ctx)
	created := time.Now()
	terr := w.Thaw(ctx)
	held := time.Since(start)
	if err != nil {
		t.Fatalf("snapshot set: %v", err)
	}
	defer func() {
		if err := set.Release(); err != nil {
			t.Errorf("release: %v", err)
		}
	}()
	if terr != nil {
		t.Fatalf("thaw %s: %v", w.Name(), terr)
	}
	v := set.View()
	for _, sp := range plan.Sources {
		rel, err := filepath.Rel(root, sp.Path)
		if err != nil {
			t.Fatal(err)
		}
		dbCopyTree(t, v, sp.Path, filepath.Join(dst, rel))
	}
	// What the run does with files a writer names as not whole: record
	// them failed, with no content to restore.
	if fr.Timeout != nil {
		for _, p := range fr.Timeout.NotWhole {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(dst, rel))
		}
	}
	// What the archiver does with substitutes: store the copy under the
	// original path.
	for orig, sub := range fr.Substitutes {
		rel, err := filepath.Rel(root, orig)
		if err != nil {
			t.Fatal(err)
		}
		dbCopyTree(t, &view.Live{}, sub, filepath.Join(dst, rel))
	}
	return dbBackupResult{Frozen: fr, Held: held, Freeze: frozen.Sub(start), Create: created.Sub(frozen)}
}

// dbCopyTree copies src (an original path) as read through v to dst:
// directories, regular files and symlinks, with their permission bits.
func dbCopyTree(t *testing.T, v view.View, src, dst string) {
	t.Helper()
	st, err := v.Lstat(src)
	if errors.Is(err, os.ErrNotExist) {
		return // read live, a rollback journal comes and goes
	}
	if err != nil {
		t.Fatalf("copy out: %v", err)
	}
	switch st.Type {
	case view.TypeDir:
		if err := os.MkdirAll(dst, os.FileMode(st.Mode&0o777)); err != nil {
			t.Fatal(err)
		}
		names, err := v.ReadDir(src)
		if err != nil {
			t.Fatalf("copy out: %v", err)
		}
		for _, n := range names {
			if n == snapshot.SnapshotDir || n == snapshot.StagingDir {
				continue
			}
			dbCopyTree(t, v, filepath.Join(src, n), filepath.Join(dst, n))
		}
		if err := os.Chmod(dst, os.FileMode(st.Mode&0o777)); err != nil {
			t.Fatal(err)
		}
	case view.TypeSymlink:
		l, err := v.Readlink(src)
		if err != nil {
			t.Fatalf("copy out: %v", err)
		}
		os.Remove(dst)
		if err := os.Symlink(l, dst); err != nil {
			t.Fatal(err)
		}
	case view.TypeRegular:
		in, err := v.Open(src)
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		if err != nil {
			t.Fatalf("copy out: %v", err)
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, os.FileMode(st.Mode&0o777))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			t.Fatalf("copy out %s: %v", src, err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

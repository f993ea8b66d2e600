package quiesce

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// This file holds what the database writers (postgres, mysql, sqlite)
// share: how a path is covered by the snapshot set, and the check that a
// server's files are all in one volume snapshot.

// dbOneInstant tells whether a FreezeInfo.Covered level is a snapshot of a
// whole filesystem at one instant: "volume", "application" (a VSS set), or
// "crash" (a btrfs snapshot whose writers were not held, as a power cut
// would leave it). Each holds
// a database's files together, which is what a database needs: a writer
// that froze it has no write in flight, and one that did not leaves what
// the database recovers from after a crash.
func dbOneInstant(level string) bool {
	return level == "volume" || level == "application" || level == "crash"
}

// DBOption tunes the postgres and mysql writers.
type DBOption func(*dbOptions)

type dbOptions struct {
	allowUncovered bool
	checkpoint     bool
}

// AllowUncoveredFiles lets Freeze go on when the server's files are not all
// in one volume snapshot (e.g. no snapshot at all). The job layer uses it
// when a dump hook makes the real backup of the database, so the files read
// live are only a bonus and are not a restorable cluster; Freeze then adds a
// note saying so.
func AllowUncoveredFiles() DBOption {
	return func(o *dbOptions) { o.allowUncovered = true }
}

// ForceCheckpoint makes the postgres writer run CHECKPOINT in Freeze, so a
// restore has little WAL to replay. Off by default: an immediate checkpoint
// writes every dirty buffer at once, an I/O burst the application's commits
// wait behind, and the snapshot is crash-consistent without it. The mysql
// writer ignores it.
func ForceCheckpoint() DBOption {
	return func(o *dbOptions) { o.checkpoint = true }
}

func applyDBOptions(opts []DBOption) dbOptions {
	var o dbOptions
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// dbPathWithin reports whether p is prefix or below it, on whole path
// elements.
func dbPathWithin(p, prefix string) bool {
	if p == prefix {
		return true
	}
	if strings.HasSuffix(prefix, string(filepath.Separator)) { // "/" or `C:\`
		return strings.HasPrefix(p, prefix)
	}
	return strings.HasPrefix(p, prefix) && len(p) > len(prefix) && p[len(prefix)] == filepath.Separator
}

// dbPathForms returns p cleaned and, when it differs, with symlinks resolved:
// a source or a server may name the same directory through a symlink.
func dbPathForms(p string) []string {
	p = filepath.Clean(p)
	out := []string{p}
	if r, err := filepath.EvalSymlinks(p); err == nil && r != p {
		out = append(out, r)
	}
	return out
}

// dbCoverageOf returns the covered source holding path (the deepest one) and
// its consistency level; "" when the path is read live. path should be the
// real location (symlinks resolved): a btrfs snapshot of a source holds a
// symlink, not what it points to.
func dbCoverageOf(covered map[string]string, path string) (source, level string) {
	for src, lvl := range covered {
		for _, s := range dbPathForms(src) {
			for _, p := range dbPathForms(path) {
				if dbPathWithin(p, s) && len(src) >= len(source) {
					source, level = src, lvl
				}
			}
		}
	}
	return source, level
}

// dbClusterPath is one directory a database server needs restored together
// with the others, e.g. {"pg_wal", "/srv/pg/wal"}.
type dbClusterPath struct {
	What, Path string
}

// dbUncoveredError says which server path the snapshot set misses and what to
// do about it.
type dbUncoveredError struct {
	Server string // "PostgreSQL", "MariaDB/MySQL"
	Path   dbClusterPath
	Why    string
	Fix    string
}

func (e *dbUncoveredError) Error() string {
	return fmt.Sprintf("%s %s %s %s; %s", e.Server, e.Path.What, e.Path.Path, e.Why, e.Fix)
}

// errDBNoSnapshot is wrapped when no path of a server is in any snapshot.
var errDBNoSnapshot = errors.New("no snapshot covers the server's files")

// dbCheckOneVolume refuses a snapshot set that does not hold every path of a
// server in a volume snapshot, taken at one instant: a server's data files,
// its log and its tablespaces only restore together from one point in time.
// A per-file clone (reflink) or a live read is not enough, and neither are
// two snapshots of different subvolumes or filesystems, which are made one
// after the other.
func dbCheckOneVolume(server string, covered map[string]string, paths []dbClusterPath, fix string) error {
	anyCovered := false
	for _, p := range paths {
		if _, lvl := dbCoverageOf(covered, p.Path); lvl != "" {
			anyCovered = true
		}
	}
	if !anyCovered {
		return fmt.Errorf("%s: %w (%s %s is read live): copying a live %s cluster file by file is not a backup; %s",
			server, errDBNoSnapshot, paths[0].What, paths[0].Path, server, fix)
	}
	for _, p := range paths {
		src, lvl := dbCoverageOf(covered, p.Path)
		switch {
		case lvl == "":
			why := "is not in any snapshot of this run (it would be read live)"
			if _, err := os.Stat(p.Path); err != nil {
				why += fmt.Sprintf(" and is not visible here (%v: is the server on another machine?)", err)
			}
			return &dbUncoveredError{Server: server, Path: p, Why: why, Fix: fix}
		case !dbOneInstant(lvl):
			return &dbUncoveredError{Server: server, Path: p, Fix: fix,
				Why: fmt.Sprintf("is covered by source %s only with %s consistency (per-file clones differ in time; the cluster needs one point in time across all its files)", src, lvl)}
		}
	}
	first := paths[0]
	for _, p := range paths[1:] {
		same, err := dbSameDevice(first.Path, p.Path)
		if err != nil {
			return fmt.Errorf("%s: %w", server, err)
		}
		if !same {
			return &dbUncoveredError{Server: server, Path: p, Fix: fix,
				Why: fmt.Sprintf("is on another filesystem or subvolume than the %s %s: their snapshots are taken one after the other, not at one instant", first.What, first.Path)}
		}
	}
	return nil
}

// dbRealPath resolves symlinks in a server-reported directory; a path that
// cannot be resolved (missing here, server elsewhere) stays as given, and
// the coverage check then reports it.
func dbRealPath(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return filepath.Clean(p)
}

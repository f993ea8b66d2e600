package run

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/filter"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/snapshot"
	"github.com/stillpoint-backup/stillpoint/internal/view"
	"github.com/stillpoint-backup/stillpoint/internal/vss"
)

// PlanSnapshots decides, before anything is written, how each source will be
// read. A source with policy required that cannot be snapped is an error here.
// vssOpts tunes a Windows shadow copy set (nil: the defaults).
func PlanSnapshots(sources []Source, runID string, vssOpts *vss.Options) (*snapshot.Plan, error) {
	ss := make([]snapshot.Source, len(sources))
	for i, s := range sources {
		abs, err := pathmap.Abs(s.Path)
		if err != nil {
			return nil, err
		}
		ss[i] = snapshot.Source{Path: abs, Policy: s.Snapshot}
	}
	return snapshot.NewPlan(ss, snapshot.Options{RunID: runID, VSS: vssOpts, Excluded: excludedOSPaths(sources)})
}

// excludedOSPaths tells whether an OS path is excluded by a source's own
// patterns, so that a volume mounted there is not snapped; patterns that
// do not compile are reported by the backup itself.
func excludedOSPaths(sources []Source) func(string) bool {
	native := pathmap.Native
	var scoped filter.Scoped
	for _, s := range sources {
		abs, err := pathmap.Abs(s.Path)
		if err != nil {
			continue
		}
		set, err := filter.CompileAllFor(native, s.Excludes)
		root, rerr := native.ToRepo(abs)
		if err != nil || rerr != nil || len(set) == 0 {
			continue
		}
		scoped = append(scoped, filter.ScopedSet{Root: root, Set: set, Rules: native})
	}
	if len(scoped) == 0 {
		return nil
	}
	return func(osPath string) bool {
		p, err := native.ToRepo(osPath)
		return err == nil && scoped.Excluded(p, true)
	}
}

// vssWriters is what the manifest keeps of a set's VSS writers.
func vssWriters(set *snapshot.Set) []repo.VSSWriterInfo {
	var out []repo.VSSWriterInfo
	for _, w := range set.Writers() {
		out = append(out, repo.VSSWriterInfo{Name: w.Name, ID: w.ID, State: w.State, Failed: w.Failed, FailedAt: w.FailedAt,
			Failure: w.Failure, Required: w.Required, Excluded: w.Excluded, Sources: w.Sources})
	}
	return out
}

func liveSources(paths []string) []repo.SourceInfo {
	out := make([]repo.SourceInfo, len(paths))
	for i, p := range paths {
		out[i] = repo.SourceInfo{Path: p, Provider: "none", Consistency: string(snapshot.Live)}
	}
	return out
}

// setSources describes how each source was read, and returns a test for
// whether a path lies in a snapped source. held says that the writers were
// held for the set: its crash-consistent snapshots are then one point in time.
func setSources(set *snapshot.Set, held bool) ([]repo.SourceInfo, func(string) bool) {
	created := time.Now().UTC().Add(-set.Window)
	var out []repo.SourceInfo
	var snappedRoots []string
	for _, sp := range set.Sources {
		si := repo.SourceInfo{Path: sp.Path, Provider: sp.Provider, Consistency: string(sp.Consistency), Note: sp.Note}
		if held && sp.Consistency == snapshot.Crash {
			si.Consistency = string(snapshot.Volume)
		}
		if sp.Provider != "none" {
			si.Created = created
			si.FreezeMs = float64(set.Window.Microseconds()) / 1000
			snappedRoots = append(snappedRoots, repoPath(sp.Path))
		}
		out = append(out, si)
	}
	return out, func(p string) bool {
		for _, r := range snappedRoots {
			if pathmap.Native.Within(p, r) {
				return true
			}
		}
		return false
	}
}

// sourceReaders holds each source's open-file reader, and the readers for
// the second pass over deferred files.
type sourceReaders struct {
	roots      []string
	first      []*livefile.Reader
	secondOnce sync.Once
	second     []*livefile.Reader
}

func (s *sourceReaders) add(root string, r *livefile.Reader) {
	s.roots = append(s.roots, root)
	s.first = append(s.first, r)
}

// repoPath is the repository path of a clean absolute OS path (the path
// itself on Unix), the form in which the archiver names the files.
func repoPath(p string) string {
	if rp, err := pathmap.Native.ToRepo(p); err == nil {
		return rp
	}
	return p
}

// index finds the source holding p, a repository path (the longest root
// that contains it).
func (s *sourceReaders) index(p string) int {
	best, bestLen := 0, -1
	for i, r := range s.roots {
		if pathmap.Native.Within(p, r) && len(r) > bestLen {
			best, bestLen = i, len(r)
		}
	}
	return best
}

// reader returns the reader for p; for the second pass it is made on first
// use from a fresh scan: by the end of the run other processes may have
// closed the files.
func (s *sourceReaders) reader(p string, secondPass bool) *livefile.Reader {
	i := s.index(p)
	if !secondPass {
		return s.first[i]
	}
	s.secondOnce.Do(func() {
		open, err := livefile.ScanOpenForWrite()
		if err != nil {
			open = nil // keep the first scan
		}
		for _, r := range s.first {
			s.second = append(s.second, r.SecondPass(open))
		}
	})
	return s.second[i]
}

func (s *sourceReaders) close() {
	for _, r := range s.first {
		r.Close()
	}
}

// fileReader reads files of snapped sources and writers' copies directly
// (they cannot change while read) and everything else with its source's
// open-file strategy.
type fileReader struct {
	readers *sourceReaders
	snapped func(string) bool
}

func (fr *fileReader) ReadFile(ctx context.Context, v view.View, p string, before *view.Stat, secondPass bool, attempt archiver.Attempt) archiver.ReadResult {
	if res, ok := notWholeRead(v, p); ok {
		return res // its writer did not freeze it and no snapshot holds it whole
	}
	if fr.snapped(p) {
		return archiver.DirectReader{}.ReadFile(ctx, v, p, before, secondPass, attempt)
	}
	rd := fr.readers.reader(p, secondPass)
	listed := before // the walk's lstat saves the reader one of its own
	if secondPass {
		listed = nil // from long ago: the file was busy then
	}
	res := rd.ReadListed(ctx, v, p, listed, func(f view.File, st *view.Stat) error {
		_, err := attempt(f, st)
		return err
	})
	out := archiver.ReadResult{Outcome: res.Outcome, Reason: res.Reason, Detail: res.Detail, Stored: res.Stored, Deferred: res.Deferred, Err: res.Err}
	if res.Holder != nil {
		out.Holder = fmt.Sprintf("%s[%d]", res.Holder.Comm, res.Holder.Pid)
	}
	return out
}

// writeFileLog writes one line per file that is not whole: its outcome
// letter, the path, the reason and the process that held it.
func writeFileLog(dir string, snap *repo.Snapshot, problems []archiver.Problem) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%s-%s.log", snap.Time.UTC().Format("20060102T150405Z"), snap.ID.Short())
	path := filepath.Join(dir, name)
	var b strings.Builder
	fmt.Fprintf(&b, "# stillpoint file log: snapshot %s, %s, paths %s\n", snap.ID, snap.Time.Format(time.RFC3339), strings.Join(snap.Paths, " "))
	fmt.Fprintf(&b, "# letter path\treason\tholder\terror (C changed, O skipped-open, F failed, T stale)\n")
	for _, p := range problems {
		fmt.Fprintf(&b, "%c %s\t%s\t%s\t%s\n", p.Outcome.Letter(), escapeTabs(p.Path), p.Reason, p.Holder, escapeTabs(p.Error))
	}
	return path, os.WriteFile(path, []byte(b.String()), 0o600)
}

func escapeTabs(s string) string {
	return strings.NewReplacer("\t", `\t`, "\n", `\n`).Replace(s)
}

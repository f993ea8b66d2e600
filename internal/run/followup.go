package run

import (
	"context"
	"errors"
	"fmt"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// ExtraFollowUpOf is the manifest's Extra key of a follow-up snapshot: the
// id of the snapshot whose files it backed up again.
const ExtraFollowUpOf = "followup_of"

// RetryFile is a file a follow-up backs up again.
type RetryFile struct {
	Path string
	// Counted is how the parent counted the file: failed or skipped-open
	// (the retry queue knows). The zero value, ok, takes the outcome of
	// its node in the parent, a stale one as failed.
	Counted outcome.Outcome
}

// FollowUp backs up again only the given files, through the same snapshot
// and open-file machinery as Backup, and writes a snapshot that is parent
// with those files replaced: its tree is the parent's except for them,
// its outcome counts are the parent's with their new outcomes, and its
// manifest names the parent under Extra[ExtraFollowUpOf]. A file gone
// since is dropped from it.
//
// o describes the whole job, as for Backup (the snapshot's paths are its
// sources'); o.Plan should be made of FollowUpSources(o.Sources, files),
// so that only the volumes holding the files are snapped. A nil parent is
// the newest snapshot of the host and the sources' paths. Hooks, writers
// and retention run as in Backup.
func FollowUp(ctx context.Context, r *repo.Repository, o BackupOptions, parent *repo.Snapshot, files []RetryFile) (*BackupResult, error) {
	if len(files) == 0 {
		return nil, errors.New("a follow-up needs files to back up again")
	}
	o.Force = false
	b := newBackupRun(r, o)
	b.followUp = &followUp{files: files}
	if err := b.plan(); err != nil {
		return nil, err
	}
	lock, err := r.Lock(ctx, false, "backup")
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	defer b.close()
	b.parent = parent
	if err := b.open(ctx); err != nil {
		return nil, err
	}
	if b.parent == nil {
		return nil, fmt.Errorf("no snapshot of %v from host %s to follow up", b.paths, b.o.Host)
	}
	return b.sequence(ctx)
}

// FollowUpSources are the sources that hold at least one of the files:
// those a follow-up of them snaps (a file lies in the source of the
// longest path that contains it).
func FollowUpSources(sources []Source, files []RetryFile) []Source {
	roots := make([]string, len(sources))
	for i, s := range sources {
		abs, err := pathmap.Abs(s.Path)
		if err != nil {
			abs = s.Path
		}
		roots[i] = repoPath(abs)
	}
	used := make([]bool, len(sources))
	for _, f := range files {
		best, bestLen := -1, -1
		p := repoPath(f.Path)
		for i, r := range roots {
			if pathmap.Native.Within(p, r) && len(r) > bestLen {
				best, bestLen = i, len(r)
			}
		}
		if best >= 0 {
			used[best] = true
		}
	}
	var out []Source
	for i, s := range sources {
		if used[i] {
			out = append(out, s)
		}
	}
	return out
}

// followUp is what makes a run a follow-up: the files it reads again.
type followUp struct {
	files []RetryFile
}

func (f *followUp) paths() []string {
	out := make([]string, len(f.files))
	for i, rf := range f.files {
		out[i] = rf.Path
	}
	return out
}

// fill turns the manifest s of what the archiver read again into the
// parent's snapshot with those files replaced: stats, sources and the
// outcome counts it returns.
func (f *followUp) fill(s *repo.Snapshot, parent *repo.Snapshot, ares *archiver.Result) outcome.Counts {
	counted := map[string]outcome.Outcome{}
	var retried []string
	for _, rf := range f.files {
		p := pathmap.Native.Display(repoPath(rf.Path))
		counted[p] = rf.Counted
		retried = append(retried, repoPath(rf.Path))
	}
	counts := parent.OutcomeCounts()
	st := parent.Stats
	for p, old := range ares.Previous {
		if old == nil {
			continue
		}
		was := old.Outcome
		if was == outcome.Stale {
			// a stale node was counted as what kept it from being read
			was = outcome.Failed
			if c := counted[p]; c == outcome.SkippedOpen {
				was = c
			}
		}
		counts[was]--
		switch old.Type {
		case repo.NodeFile:
			st.Files--
			st.Bytes -= int64(old.Size)
		case repo.NodeDir:
		default:
			st.Others--
		}
	}
	for o, n := range ares.Outcomes {
		counts[o] += n
	}
	for o, n := range counts {
		if n <= 0 {
			delete(counts, o)
		}
	}
	st.Files += ares.Stats.Files
	st.Bytes += ares.Stats.Bytes
	st.Others += ares.Stats.Others
	st.Dirs += ares.Stats.Dirs
	st.FilesRead, st.BytesRead = ares.Stats.FilesRead, ares.Stats.BytesRead
	s.Stats = st

	// the sources the files lie in are described as read now, the others
	// as the parent read them
	now := map[string]repo.SourceInfo{}
	for _, si := range s.Sources {
		for _, p := range retried {
			if pathmap.Native.Within(p, repoPath(si.Path)) {
				now[si.Path] = si
			}
		}
	}
	var sources []repo.SourceInfo
	for _, si := range parent.Sources {
		if n, ok := now[si.Path]; ok {
			si = n
			delete(now, si.Path)
		}
		sources = append(sources, si)
	}
	for _, si := range s.Sources {
		if _, ok := now[si.Path]; ok {
			sources = append(sources, si)
		}
	}
	s.Sources = sources
	if s.Extra == nil {
		s.Extra = map[string]string{}
	}
	s.Extra[ExtraFollowUpOf] = parent.ID.String()
	return counts
}

// unchanged is the number of files of the follow-up's snapshot taken from
// the parent unread: those it did not look at, and those it looked at and
// found unchanged.
func (f *followUp) unchanged(s *repo.Snapshot, ares *archiver.Result) int64 {
	return s.Stats.Files - ares.Stats.Files + ares.FilesUnchanged
}

// IsFollowUp tells whether s is a follow-up, and of which snapshot.
func IsFollowUp(s *repo.Snapshot) (string, bool) {
	id, ok := s.Extra[ExtraFollowUpOf]
	return id, ok
}

// FollowUpPaths are the files' paths, for retryq.Queue.Update.
func FollowUpPaths(files []RetryFile) []string {
	return (&followUp{files: files}).paths()
}

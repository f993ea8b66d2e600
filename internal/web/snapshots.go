package web

import (
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/inspect"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// SnapshotInfo is one snapshot as the snapshots page and API show it.
type SnapshotInfo struct {
	Repository  string         `json:"repository"`
	ID          string         `json:"id"`
	ShortID     string         `json:"short_id"`
	Time        time.Time      `json:"time"`
	Host        string         `json:"host"`
	Paths       []string       `json:"paths"`
	Tags        []string       `json:"tags"`
	Files       int64          `json:"files"`
	Bytes       int64          `json:"bytes"`
	Outcomes    outcome.Counts `json:"outcomes"`
	Partial     bool           `json:"partial"`
	Consistency string         `json:"consistency"`
	Sources     []SourceInfo   `json:"sources"`
	// Drill is the newest restore drill of the snapshot, nil when never drilled.
	Drill *DrillInfo `json:"drill"`
}

// SourceInfo says how one source of a snapshot was read.
type SourceInfo struct {
	Path        string  `json:"path"`
	Provider    string  `json:"provider"`
	Consistency string  `json:"consistency"`
	FreezeMs    float64 `json:"freeze_ms,omitempty"`
	Note        string  `json:"note,omitempty"`
}

// DrillInfo is the verdict of a snapshot's newest drill.
type DrillInfo struct {
	Time      time.Time `json:"time"`
	Level     string    `json:"level"`
	OK        bool      `json:"ok"`
	Verifiers []string  `json:"verifiers"`
}

// Entry is one entry of a snapshot directory.
type Entry struct {
	Name       string          `json:"name"`
	Path       string          `json:"path"` // repository path, /srv/app/x
	Type       string          `json:"type"` // file, dir, symlink, …
	Mode       string          `json:"mode"` // octal permission bits
	Size       uint64          `json:"size"`
	Mtime      time.Time       `json:"mtime"`
	Outcome    outcome.Outcome `json:"outcome"`
	Reason     string          `json:"reason,omitempty"`
	Holder     string          `json:"holder,omitempty"`
	LinkTarget string          `json:"link_target,omitempty"`
}

// listing is the snapshots of every repository, read for one request,
// and what could not be read.
type listing struct {
	snaps  []SnapshotInfo
	errors []string
}

func snapshotInfo(name string, s *repo.Snapshot, d *repo.DrillResult) SnapshotInfo {
	info := SnapshotInfo{
		Repository: name, ID: s.ID.String(), ShortID: s.ID.Short(), Time: s.Time, Host: s.Host,
		Paths: s.Paths, Tags: s.Tags, Files: s.Stats.Files, Bytes: s.Stats.Bytes,
		Outcomes: s.OutcomeCounts(), Partial: s.Partial, Consistency: s.Consistency,
		Sources: []SourceInfo{},
	}
	if info.Paths == nil {
		info.Paths = []string{}
	}
	if info.Tags == nil {
		info.Tags = []string{}
	}
	for _, src := range s.Sources {
		info.Sources = append(info.Sources, SourceInfo{Path: src.Path, Provider: src.Provider, Consistency: src.Consistency, FreezeMs: src.FreezeMs, Note: src.Note})
	}
	if d != nil {
		info.Drill = &DrillInfo{Time: d.Time, Level: d.Level, OK: d.OK, Verifiers: d.Verifiers()}
	}
	return info
}

// listSnapshots reads the manifests (and drill results) of every
// repository, newest first. A repository that cannot be read is named in
// the errors and the others are listed.
func (s *Server) listSnapshots(ctx context.Context) listing {
	var l listing
	repos, err := s.src.Repositories(ctx)
	if err != nil {
		l.errors = append(l.errors, err.Error())
	}
	for _, r := range repos {
		snaps, bad, err := r.Repo.Snapshots(ctx)
		if err != nil {
			l.errors = append(l.errors, fmt.Sprintf("repository %s: %v", r.Name, err))
			continue
		}
		for _, b := range bad {
			l.errors = append(l.errors, fmt.Sprintf("repository %s: %v", r.Name, b))
		}
		drills, _, err := r.Repo.Drills(ctx)
		if err != nil {
			l.errors = append(l.errors, fmt.Sprintf("repository %s: drill results not shown: %v", r.Name, err))
		}
		latest := repo.LatestDrills(snaps, drills)
		for _, sn := range snaps {
			l.snaps = append(l.snaps, snapshotInfo(r.Name, sn, latest[sn.ID]))
		}
	}
	sort.SliceStable(l.snaps, func(i, j int) bool { return l.snaps[i].Time.After(l.snaps[j].Time) })
	return l
}

// found is a snapshot resolved from a URL, with its repository.
type found struct {
	repo  Repository
	snap  *repo.Snapshot
	rules pathmap.Rules
}

// findSnapshot resolves ref (an id, a unique prefix, latest…) in the
// repositories; a prefix found in two repositories is ambiguous.
func (s *Server) findSnapshot(ctx context.Context, ref string) (*found, error) {
	repos, err := s.src.Repositories(ctx)
	if err != nil {
		return nil, err
	}
	// the pages link by full id: one manifest read instead of all of them
	if id, err := repo.ParseID(ref); err == nil {
		for _, r := range repos {
			sn, err := r.Repo.LoadSnapshot(ctx, id)
			if err == nil {
				return &found{repo: r, snap: sn, rules: pathmap.ForPaths(sn.Paths)}, nil
			}
			if !backend.IsNotFound(err) {
				return nil, fmt.Errorf("repository %s: %w", r.Name, err)
			}
		}
	}
	var hit *found
	for _, r := range repos {
		snaps, _, err := r.Repo.Snapshots(ctx)
		if err != nil {
			return nil, fmt.Errorf("repository %s: %w", r.Name, err)
		}
		if len(snaps) == 0 {
			continue
		}
		sn, err := repo.FindSnapshot(snaps, ref)
		if err != nil {
			if strings.Contains(err.Error(), "ambiguous") {
				return nil, &httpError{code: 400, err: err}
			}
			continue
		}
		if hit != nil {
			return nil, &httpError{code: 400, err: fmt.Errorf("snapshot %q is in repositories %s and %s: use the full id", ref, hit.repo.Name, r.Name)}
		}
		hit = &found{repo: r, snap: sn, rules: pathmap.ForPaths(sn.Paths)}
	}
	if hit == nil {
		return nil, &httpError{code: 404, err: fmt.Errorf("no snapshot %q: %w", ref, ErrNotFound)}
	}
	return hit, nil
}

// lookup returns the node at the repository path p of the snapshot.
func (f *found) lookup(ctx context.Context, p string) (string, *repo.Node, error) {
	p, err := inspect.Resolve(ctx, f.repo.Repo, f.snap.Tree, p, f.rules)
	if err != nil {
		return "", nil, err
	}
	n, err := inspect.Lookup(ctx, f.repo.Repo, f.snap.Tree, p)
	var nf *inspect.NotFoundError
	if errors.As(err, &nf) {
		return p, nil, &httpError{code: 404, err: fmt.Errorf("snapshot %s: %w", f.snap.ID.Short(), err)}
	}
	return p, n, err
}

// list returns the entries of the directory node n at p.
func (f *found) list(ctx context.Context, p string, n *repo.Node) ([]Entry, error) {
	entries := []Entry{}
	if n.Subtree.IsNull() {
		return entries, nil
	}
	t, err := f.repo.Repo.LoadTree(ctx, n.Subtree)
	if err != nil {
		return nil, fmt.Errorf("directory %s of snapshot %s: %w", p, f.snap.ID.Short(), err)
	}
	for _, c := range t.Nodes {
		entries = append(entries, entry(path.Join(p, c.Name), c))
	}
	// directories first, then by name, as file managers show them
	sort.SliceStable(entries, func(i, j int) bool {
		return entries[i].Type == "dir" && entries[j].Type != "dir"
	})
	return entries, nil
}

func entry(p string, n *repo.Node) Entry {
	return Entry{
		Name: n.Name, Path: p, Type: n.Type.String(), Mode: fmt.Sprintf("%04o", n.Mode), Size: n.Size,
		Mtime: time.Unix(0, n.Mtime).UTC(), Outcome: n.Outcome, Reason: n.Reason, Holder: n.Holder, LinkTarget: n.LinkTarget,
	}
}

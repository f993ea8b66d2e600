package copier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/retention"
)

// Options say which source snapshots to copy and how.
type Options struct {
	// Refs name source snapshots (ids, unique prefixes, latest, latest:PATH,
	// latest@TAG), resolved among those Filter lets through; none: all of them.
	Refs   []string
	Filter retention.Filter
	// DryRun reads the source and says what would be sent; the target is
	// neither locked nor written.
	DryRun bool
	// Workers is how many blobs are copied at once (0: defaultWorkers).
	Workers int
	// Progress, when set, is updated while the copy runs.
	Progress *Progress
	// OnSnapshot is told of each snapshot once it is copied or skipped.
	OnSnapshot func(SnapshotResult)
	// Warn is told of manifests that cannot be read.
	Warn func(object, msg string)
}

// defaultWorkers: a blob copy is CPU work (decrypt, decompress, hash,
// compress, encrypt) and, on object storage, a request's latency; twice
// the cores keeps both busy without holding many 4 MiB blobs at once.
func defaultWorkers() int { return max(4, 2*runtime.GOMAXPROCS(0)) }

// targetIndexInterval: an index file every 8 packs (64 MiB with the
// default pack size) bounds what a rerun writes again after a kill.
const targetIndexInterval = 8

// Progress counts what a running copy has done; it is safe to read while
// the copy runs.
type Progress struct {
	Snapshots atomic.Int64 // decided: copied or skipped
	BlobsRead atomic.Int64 // read from the source
	// BlobsNotRead are data blobs an earlier copy had stored in the target
	// (found through its snapshot), so they were not read again
	BlobsNotRead atomic.Int64
	// TreesReused are directories unchanged since an earlier copy, whose
	// copy is taken whole (neither walked nor read again)
	TreesReused atomic.Int64
	BytesRead   atomic.Int64 // plaintext read from the source
	BlobsSent   atomic.Int64 // stored in the target (with DryRun: that would be)
	BytesSent   atomic.Int64 // plaintext of the blobs sent

	mu      sync.Mutex
	current string
}

// Current is the short id of the snapshot being copied.
func (p *Progress) Current() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.current
}

func (p *Progress) setCurrent(s string) {
	p.mu.Lock()
	p.current = s
	p.mu.Unlock()
}

// SnapshotResult is what became of one source snapshot.
type SnapshotResult struct {
	Source *repo.Snapshot
	// Target is the snapshot in the target: the new one, or the one that
	// made the copy unnecessary (Skipped). Zero in a dry run that would copy.
	Target  repo.ID
	Skipped bool
	Reason  string // why it was skipped
	// blobs and plaintext bytes sent for this snapshot
	BlobsSent int64
	BytesSent int64
}

// Result sums up a copy.
type Result struct {
	DryRun    bool
	Snapshots []SnapshotResult
	Copied    int
	Skipped   int
	BlobsRead int64
	BytesRead int64
	// BlobsNotRead: data blobs found in the target through an earlier copy
	// of a parent (or of the newest copied snapshot of the same host and
	// paths), so not read from the source.
	BlobsNotRead int64
	// TreesReused: directories unchanged since that copy, taken whole.
	TreesReused int64
	// BlobsSent counts data and tree blobs stored in the target, each once;
	// BytesSent their plaintext, StoredSent the bytes written to packs.
	BlobsSent     int64
	DataBlobsSent int64
	TreeBlobsSent int64
	BytesSent     int64
	StoredSent    int64
}

// ErrSameRepository refuses to copy a repository into itself.
var ErrSameRepository = errors.New("the source and the target are the same repository (they have the same repository id: one is a copy of the other's files, which a file copy keeps in step)")

// Run copies the selected snapshots of src into dst. It reads src under a
// shared lock and writes dst under another, as a backup does. On error
// the data already sent is flushed, so the next run does not send it again.
func Run(ctx context.Context, src, dst *repo.Repository, o Options) (*Result, error) {
	if src.Config().ID == dst.Config().ID {
		return nil, ErrSameRepository
	}
	if o.Progress == nil {
		o.Progress = &Progress{}
	}
	if o.Workers <= 0 {
		o.Workers = defaultWorkers()
	}
	warn := o.Warn
	if warn == nil {
		warn = func(string, string) {}
	}
	srcLock, err := src.Lock(ctx, false, "copy")
	if err != nil {
		return nil, fmt.Errorf("source repository: %w", err)
	}
	defer srcLock.Unlock()
	if !o.DryRun {
		// the lock reads the target's marks and index again: what counts
		// as present in the target is what no prune has marked since
		dstLock, err := dst.Lock(ctx, false, "copy")
		if err != nil {
			return nil, err
		}
		defer dstLock.Unlock()
	}

	srcSnaps, bad, err := src.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("source repository: list snapshots: %w", err)
	}
	for _, b := range bad {
		warn("source snapshots/"+b.Name, b.Err.Error()+"; it is not copied")
	}
	selected, err := selectSnapshots(srcSnaps, o.Refs, o.Filter)
	if err != nil {
		return nil, err
	}
	dstSnaps, bad, err := dst.Snapshots(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the target's snapshots: %w", err)
	}
	for _, b := range bad {
		warn("snapshots/"+b.Name, b.Err.Error()+"; a snapshot it holds may be copied again")
	}

	var sink target = dst
	if o.DryRun {
		sink = newDryTarget(dst)
	} else {
		dst.SetIndexInterval(targetIndexInterval)
	}
	c := &copier{
		src: src, dst: dst, copies: newCopies(dstSnaps), srcByID: map[repo.ID]*repo.Snapshot{},
		tr:  newTranslator(src, sink, o.Workers, o.Progress),
		opt: o,
	}
	for _, s := range srcSnaps {
		c.srcByID[s.ID] = s
	}
	res := &Result{DryRun: o.DryRun}
	storedBefore := dst.Stats().StoredAdded.Load()
	for _, s := range selected {
		sr, err := c.copySnapshot(ctx, s)
		if err != nil {
			if !o.DryRun {
				// what was stored is durable and indexed for the next run
				_ = dst.Flush(context.WithoutCancel(ctx))
			}
			c.sum(res, storedBefore)
			return res, fmt.Errorf("snapshot %s: %w", s.ID.Short(), err)
		}
		res.Snapshots = append(res.Snapshots, sr)
		if sr.Skipped {
			res.Skipped++
		} else {
			res.Copied++
		}
		o.Progress.Snapshots.Add(1)
		if o.OnSnapshot != nil {
			o.OnSnapshot(sr)
		}
	}
	o.Progress.setCurrent("")
	c.sum(res, storedBefore)
	return res, nil
}

type copier struct {
	src, dst *repo.Repository
	copies   *copies
	srcByID  map[repo.ID]*repo.Snapshot
	tr       *translator
	opt      Options
}

func (c *copier) sum(res *Result, storedBefore int64) {
	p := c.opt.Progress
	res.BlobsRead, res.BytesRead = p.BlobsRead.Load(), p.BytesRead.Load()
	res.BlobsNotRead, res.TreesReused = p.BlobsNotRead.Load(), p.TreesReused.Load()
	res.BlobsSent, res.BytesSent = p.BlobsSent.Load(), p.BytesSent.Load()
	res.DataBlobsSent, res.TreeBlobsSent = c.tr.dataSent.Load(), c.tr.treesSent.Load()
	res.StoredSent = c.dst.Stats().StoredAdded.Load() - storedBefore
}

func (c *copier) copySnapshot(ctx context.Context, s *repo.Snapshot) (SnapshotResult, error) {
	sr := SnapshotResult{Source: s}
	if t := c.copies.copyOf(s); t != nil {
		sr.Skipped, sr.Target = true, t.ID
		sr.Reason = fmt.Sprintf("already in the target as %s", t.ID.Short())
		return sr, nil
	}
	p := c.opt.Progress
	p.setCurrent(s.ID.Short())
	if ref, copied := c.reference(s); ref != nil {
		if _, err := c.tr.pair(ctx, ref.Tree, copied.Tree); err != nil && ctx.Err() != nil {
			return sr, ctx.Err()
		}
	}
	blobs, bytes := p.BlobsSent.Load(), p.BytesSent.Load()
	tree, err := c.tr.tree(ctx, s.Tree)
	sr.BlobsSent, sr.BytesSent = p.BlobsSent.Load()-blobs, p.BytesSent.Load()-bytes
	if err != nil {
		return sr, err
	}
	if !c.opt.DryRun {
		// packs and index before the manifest (docs/format.md, rules 2-4)
		if err := c.dst.Flush(ctx); err != nil {
			return sr, err
		}
	}
	if t := c.copies.sameContent(s, tree); t != nil {
		sr.Skipped, sr.Target = true, t.ID
		sr.Reason = fmt.Sprintf("the target has it as %s (same files, time, host and paths)", t.ID.Short())
		return sr, nil
	}
	if c.opt.DryRun {
		return sr, nil
	}
	manifest, err := c.manifest(ctx, s, tree)
	if err != nil {
		return sr, err
	}
	id, err := c.dst.SaveSnapshotJSON(ctx, manifest)
	if err != nil {
		return sr, err
	}
	sr.Target = id
	written, err := c.dst.LoadSnapshot(ctx, id)
	if err != nil {
		return sr, err
	}
	c.copies.add(written)
	return sr, nil
}

// reference finds a source snapshot copied before that s likely shares
// most data with, and its copy: s's parent, else the newest copied snapshot
// of the same host and paths.
func (c *copier) reference(s *repo.Snapshot) (ref, copied *repo.Snapshot) {
	if s.Parent != nil {
		if ps, ok := c.srcByID[*s.Parent]; ok {
			if t := c.copies.copyOf(ps); t != nil {
				return ps, t
			}
		}
	}
	for _, ps := range c.srcByID {
		if ps.ID == s.ID || ps.Host != s.Host || !pathmap.SamePaths(ps.Paths, s.Paths) || (ref != nil && !ps.Time.After(ref.Time)) {
			continue
		}
		if t := c.copies.copyOf(ps); t != nil {
			ref, copied = ps, t
		}
	}
	return ref, copied
}

// manifest is the source's manifest as stored (fields unknown to this
// version included) with the tree in the target, the parent's copy, the
// snapshot's first id as "original" and the snapshot copied as "copied_from".
func (c *copier) manifest(ctx context.Context, s *repo.Snapshot, tree repo.ID) ([]byte, error) {
	raw, err := c.src.SnapshotJSON(ctx, s.ID)
	if err != nil {
		return nil, fmt.Errorf("read the manifest from the source: %w", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("the source's manifest is damaged: %w", err)
	}
	set := func(k string, v any) {
		m[k], _ = json.Marshal(v)
	}
	set("tree", tree)
	delete(m, "parent")
	if s.Parent != nil {
		if ps, ok := c.srcByID[*s.Parent]; ok {
			if t := c.copies.copyOf(ps); t != nil {
				set("parent", t.ID)
			}
		}
	}
	if s.Original == nil {
		set("original", s.ID)
	}
	set("copied_from", repo.CopyOrigin{Repository: c.src.Config().ID, Snapshot: s.ID})
	return json.Marshal(m)
}

package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// PruneOptions say how far prune goes.
type PruneOptions struct {
	// MaxUnused is the unused space prune may leave in packs it keeps.
	MaxUnused MaxUnused
	// MaxRepackSize bounds the bytes of packs repacked in one run (0: no bound).
	MaxRepackSize int64
	// DryRun computes and reports, and changes nothing.
	DryRun bool
	// Now takes an exclusive lock, so no backup runs: everything marked is
	// swept at once.
	Now bool
	// Without are snapshots a dry run treats as removed: forget --dry-run
	// --prune shows what prune would free once forget removed them. Only
	// with DryRun (a prune that ignored a snapshot would delete its data).
	Without []ID
	// Plan is told what prune will do, before it does anything.
	Plan func(*PruneResult)
	// Track shows the progress of a phase: sample returns how much is done
	// and the total (0 while unknown); the returned function ends it.
	Track func(phase, unit string, sample func() (done, total int64)) (stop func())
	// Step names each phase as it starts.
	Step func(msg string)
}

// MaxUnused is a bound on unused space: a percentage of the repository's
// size after prune, a number of bytes, or none.
type MaxUnused struct {
	Percent   float64
	Bytes     int64
	Unlimited bool
}

// DefaultMaxUnused is 5% of the repository after prune.
var DefaultMaxUnused = MaxUnused{Percent: 5}

func (m MaxUnused) limit(sizeAfter int64) int64 {
	switch {
	case m.Unlimited:
		return -1
	case m.Bytes > 0 || m.Percent == 0:
		return m.Bytes
	}
	return int64(m.Percent / 100 * float64(sizeAfter))
}

func (m MaxUnused) String() string {
	switch {
	case m.Unlimited:
		return "unlimited"
	case m.Bytes > 0 || m.Percent == 0:
		return strconv.FormatInt(m.Bytes, 10)
	}
	return strconv.FormatFloat(m.Percent, 'f', -1, 64) + "%"
}

// ParseMaxUnused reads "5%", "unlimited" or a size ("100M", "2GiB").
func ParseMaxUnused(s string) (MaxUnused, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "unlimited":
		return MaxUnused{Unlimited: true}, nil
	case strings.HasSuffix(s, "%"):
		p, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil || !(p >= 0 && p <= 100) { // NaN fails both
			return MaxUnused{}, fmt.Errorf("--max-unused %q: a percentage is between 0%% and 100%%", s)
		}
		return MaxUnused{Percent: p}, nil
	}
	n, err := ParseSize(s)
	if err != nil {
		return MaxUnused{}, fmt.Errorf("--max-unused %q: give a percentage (5%%), a size (500M) or unlimited", s)
	}
	return MaxUnused{Bytes: n}, nil
}

// PruneResult says what prune found and did.
type PruneResult struct {
	DryRun    bool `json:"dry_run"`
	Now       bool `json:"now"`
	Snapshots int  `json:"snapshots"`
	// the repository before prune
	Packs       int   `json:"packs"`
	Bytes       int64 `json:"bytes"`
	UnusedBytes int64 `json:"unused_bytes"`
	// marked this run: packs no snapshot needs, and packs repacked
	GarbagePacks  int   `json:"garbage_packs"`
	GarbageBytes  int64 `json:"garbage_bytes"`
	RepackPacks   int   `json:"repack_packs"`
	RepackBytes   int64 `json:"repack_bytes"`         // size of the packs repacked
	RepackBlobs   int   `json:"repack_blobs"`         // used blobs copied
	RepackWritten int64 `json:"repack_written_bytes"` // size of the new packs
	NewPacks      int   `json:"new_packs"`
	// UnusedAfter is the unused space left in the packs kept.
	UnusedAfter int64 `json:"unused_after_bytes"`
	// SizeAfter is the repository's size once everything marked is swept.
	SizeAfter int64 `json:"size_after_bytes"`
	// sweep
	MarksSwept   int   `json:"marks_swept"`
	MarksPending int   `json:"marks_pending"`
	RemovedPacks int   `json:"removed_packs"`
	RemovedBytes int64 `json:"removed_bytes"`
	// KeptPacks were marked, but a snapshot written since needs them.
	KeptPacks    int   `json:"kept_packs"`
	KeptBytes    int64 `json:"kept_bytes"`
	IndexWritten int   `json:"index_files_written"`
	IndexRemoved int   `json:"index_files_removed"`
	// PendingPacks/Bytes wait in marks for the lock holders of Waiting.
	PendingPacks int        `json:"pending_packs"`
	PendingBytes int64      `json:"pending_bytes"`
	Waiting      []MarkLock `json:"waiting_for,omitempty"`
	// Notes say what a person should know (a mark removed, a sweep put off).
	Notes []string `json:"notes,omitempty"`
	// immutable repositories (retention.go): packs due for deletion that
	// the storage retains (until RetainedUntil at the latest), the index
	// files that hold them back, the files whose retention was extended,
	// and the removals the storage refused
	RetainedPacks      int      `json:"retained_packs,omitempty"`
	RetainedBytes      int64    `json:"retained_bytes,omitempty"`
	RetainedIndexFiles int      `json:"retained_index_files,omitempty"`
	RetainedUntil      string   `json:"retained_until,omitempty"`
	RetentionExtended  int      `json:"retention_extended,omitempty"`
	Refused            []string `json:"refused,omitempty"`
}

// ErrPruneNeedsCheck means prune found damage and changed nothing.
var ErrPruneNeedsCheck = errors.New("prune stops: the repository is damaged (run `stillpoint check`); nothing was deleted")

// Prune deletes what no snapshot needs, while backups go on (docs/format.md,
// Prune): it marks garbage and repacks partly used packs, then sweeps the
// marks whose lock holders are gone, its own included when no other lock
// was there. It takes its own lock.
func (r *Repository) Prune(ctx context.Context, opts PruneOptions) (*PruneResult, error) {
	var (
		lock *Lock
		err  error
	)
	if len(opts.Without) > 0 && !opts.DryRun {
		return nil, errors.New("prune: leaving snapshots out is only for a dry run")
	}
	switch {
	case opts.DryRun:
		lock, err = r.Lock(ctx, false, "prune --dry-run")
	case opts.Now:
		lock, err = r.Lock(ctx, true, "prune --now")
		var le *ErrLocked
		if errors.As(err, &le) {
			return nil, fmt.Errorf("prune --now needs the repository to itself: %w; wait for it to end, or run prune without --now, which works beside backups", err)
		}
	default:
		lock, err = r.LockPrune(ctx, "prune")
	}
	if err != nil {
		return nil, err
	}
	defer lock.Unlock()
	p := &pruner{r: r, x: r.index, opts: opts, own: lock.Session(), walked: map[ID]bool{},
		res: &PruneResult{DryRun: opts.DryRun, Now: opts.Now}}
	p.initRetention()
	if err := p.run(ctx); err != nil {
		return p.res, err
	}
	if !opts.DryRun {
		if err := p.extendRetention(ctx); err != nil {
			return p.res, err
		}
	}
	return p.res, p.refusedError()
}

type pruner struct {
	r      *Repository
	x      *Index
	opts   PruneOptions
	own    string
	res    *PruneResult
	walked map[ID]bool // snapshots walked
	onDisk map[ID]int64
	ret    *pruneRetention // immutable repositories only
}

func (p *pruner) step(msg string) {
	if p.opts.Step != nil {
		p.opts.Step(msg)
	}
}

func (p *pruner) track(phase, unit string, sample func() (int64, int64)) func() {
	if p.opts.Track == nil {
		return func() {}
	}
	return p.opts.Track(phase, unit, sample)
}

func (p *pruner) run(ctx context.Context) error {
	r := p.r
	if len(r.markProblems) > 0 {
		if p.opts.DryRun {
			return fmt.Errorf("%w: prune mark %s cannot be read (prune without --dry-run removes it)", ErrPruneNeedsCheck, r.markProblems[0])
		}
		// forgetting a mark only keeps packs: safe, and it lets backups
		// trust the index again
		for _, b := range r.markProblems {
			if err := r.be.Remove(ctx, backend.Handle{Kind: backend.Marks, Name: b.Name}); err != nil {
				return err
			}
			p.res.Notes = append(p.res.Notes, fmt.Sprintf("removed unreadable mark %s (%v): its packs are kept", b.Name, b.Err))
		}
		if _, err := r.reloadView(ctx); err != nil {
			return err
		}
		p.x = r.index
	}

	p.step("loading snapshots")
	snaps, err := p.snapshots(ctx)
	if err != nil {
		return err
	}
	p.res.Snapshots = len(snaps)
	if err := p.walk(ctx, snaps); err != nil {
		return err
	}

	p.step("planning")
	garbage, repack, err := p.plan(ctx)
	if err != nil {
		return err
	}
	for _, m := range r.marks {
		p.res.PendingPacks += len(m.Packs)
		p.res.PendingBytes += m.Bytes
	}
	if p.opts.Plan != nil {
		p.opts.Plan(p.res)
	}
	if p.opts.DryRun {
		holders, err := liveHolders(ctx, r.be, p.own)
		if err != nil {
			return err
		}
		for _, m := range r.marks {
			p.res.Waiting = append(p.res.Waiting, m.waitingFor(holders)...)
		}
		p.res.MarksPending = len(r.marks)
		return nil
	}

	if len(repack) > 0 {
		if err := p.repack(ctx, repack); err != nil {
			return err
		}
	}
	marks := r.marks
	p.res.PendingPacks, p.res.PendingBytes = 0, 0 // the sweep counts what still waits
	if len(garbage)+len(repack) > 0 {
		var ids []ID
		var bytes int64
		for _, g := range append(garbage, repack...) {
			ids = append(ids, g)
			bytes += p.onDisk[g]
		}
		p.x.setMarked(ids)
		m, err := r.writeMark(ctx, ids, bytes, p.own)
		if err != nil {
			return err
		}
		pruneHook("mark complete")
		marks = append(marks, m)
	}
	return p.sweep(ctx, marks)
}

// snapshots lists the snapshots, then loads the index files written since
// (a snapshot's index is durable before it): what they need is indexed.
func (p *pruner) snapshots(ctx context.Context) ([]*Snapshot, error) {
	snaps, bad, err := p.r.Snapshots(ctx)
	if err != nil {
		return nil, err
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("%w: %v", ErrPruneNeedsCheck, bad[0])
	}
	if len(p.opts.Without) > 0 {
		snaps = slices.DeleteFunc(snaps, func(s *Snapshot) bool { return slices.Contains(p.opts.Without, s.ID) })
	}
	badIdx, err := p.r.LoadIndex(ctx)
	if err != nil {
		return nil, err
	}
	p.r.indexProblems = append(p.r.indexProblems, badIdx...)
	if len(p.r.indexProblems) > 0 {
		// its packs would look unused
		return nil, fmt.Errorf("%w: %v", ErrPruneNeedsCheck, p.r.indexProblems[0])
	}
	return snaps, nil
}

// walk records every blob the snapshots not walked yet need.
func (p *pruner) walk(ctx context.Context, snaps []*Snapshot) error {
	w := &treeWalker{p: p}
	w.cond = sync.NewCond(&w.mu)
	for _, s := range snaps {
		if p.walked[s.ID] {
			continue
		}
		p.walked[s.ID] = true
		fresh, found := p.x.markUsed(s.Tree)
		if !found {
			return fmt.Errorf("%w: snapshot %s: its root tree %s is in no index", ErrPruneNeedsCheck, s.ID.Short(), s.Tree.Short())
		}
		if fresh {
			w.queue = append(w.queue, s.Tree)
		}
	}
	stop := p.track("walking trees", "trees", func() (int64, int64) { return w.done.Load(), 0 })
	defer stop()
	var wg sync.WaitGroup
	for range treeWalkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.work(ctx)
		}()
	}
	wg.Wait()
	if w.err != nil {
		return w.err
	}
	return ctx.Err()
}

// treeWalkers load trees in parallel: most of a tree's cost is the read.
const treeWalkers = 8

type treeWalker struct {
	p      *pruner
	mu     sync.Mutex
	cond   *sync.Cond
	queue  []ID
	active int
	err    error
	done   atomic.Int64
}

func (w *treeWalker) work(ctx context.Context) {
	for {
		w.mu.Lock()
		for len(w.queue) == 0 && w.active > 0 && w.err == nil {
			w.cond.Wait()
		}
		if len(w.queue) == 0 || w.err != nil {
			w.mu.Unlock()
			w.cond.Broadcast()
			return
		}
		id := w.queue[len(w.queue)-1]
		w.queue = w.queue[:len(w.queue)-1]
		w.active++
		w.mu.Unlock()

		subs, err := w.visit(ctx, id)

		w.mu.Lock()
		w.active--
		if err != nil && w.err == nil {
			w.err = err
		}
		w.queue = append(w.queue, subs...)
		w.mu.Unlock()
		w.cond.Broadcast()
		w.done.Add(1)
	}
}

// visit marks a tree's content used and returns its subtrees not seen yet.
func (w *treeWalker) visit(ctx context.Context, id ID) ([]ID, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := w.p.r.LoadTree(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("%w: tree %s: %v", ErrPruneNeedsCheck, id.Short(), err)
	}
	var subs []ID
	for _, n := range t.Nodes {
		for _, c := range n.DataBlobs() {
			if _, found := w.p.x.markUsed(c); !found {
				return nil, fmt.Errorf("%w: blob %s of %s is in no index", ErrPruneNeedsCheck, c.Short(), n.Name)
			}
		}
		if n.Type == NodeDir && !n.Subtree.IsNull() {
			fresh, found := w.p.x.markUsed(n.Subtree)
			if !found {
				return nil, fmt.Errorf("%w: tree %s of %s is in no index", ErrPruneNeedsCheck, n.Subtree.Short(), n.Name)
			}
			if fresh {
				subs = append(subs, n.Subtree)
			}
		}
	}
	return subs, nil
}

// plan chooses the packs to mark: garbage (no used blob) and packs to
// repack. It fills in the result's figures.
func (p *pruner) plan(ctx context.Context) (garbage, repack []ID, err error) {
	p.onDisk = map[ID]int64{}
	if err := p.r.be.List(ctx, backend.Packs, func(fi backend.FileInfo) error {
		if id, err := ParseID(fi.Name); err == nil {
			p.onDisk[id] = fi.Size
		}
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("list packs: %w", err)
	}
	x := p.x
	x.mu.RLock()
	used := make([]int64, len(x.packs))
	for _, l := range x.blobs {
		if l.used {
			used[l.pack] += int64(l.length)
		}
	}
	type cand struct {
		num          uint32
		size, unused int64
	}
	var cands []cand
	res := p.res
	var sizeAfter int64
	for num, id := range x.packs {
		size, present := p.onDisk[id]
		if x.packMarked[num] {
			if present {
				res.Packs++
				res.Bytes += size
			}
			continue // an earlier mark has it
		}
		if !present {
			if used[num] > 0 {
				x.mu.RUnlock()
				return nil, nil, fmt.Errorf("%w: pack %s holds blobs snapshots need and is missing", ErrPruneNeedsCheck, id.Short())
			}
			garbage = append(garbage, id) // its index entries go with the sweep
			res.GarbagePacks++
			continue
		}
		res.Packs++
		res.Bytes += size
		if used[num] == 0 {
			garbage = append(garbage, id)
			res.GarbagePacks++
			res.GarbageBytes += size
			res.UnusedBytes += size
			continue
		}
		unused := x.packBytes[num] - used[num]
		res.UnusedBytes += unused
		sizeAfter += size
		if unused > 0 {
			cands = append(cands, cand{num: uint32(num), size: size, unused: unused})
		}
	}
	for id, size := range p.onDisk {
		if _, indexed := x.packNum[id]; indexed {
			continue
		}
		res.Packs++
		res.Bytes += size
		if _, marked := x.marked[id]; marked {
			continue
		}
		// in no index: left by a killed run, or a running backup's (the
		// mark waits for its lock)
		garbage = append(garbage, id)
		res.GarbagePacks++
		res.GarbageBytes += size
		res.UnusedBytes += size
	}
	var packIDs = x.packs
	x.mu.RUnlock()

	// the most unused first, until what is left is within the bound
	sort.Slice(cands, func(i, j int) bool {
		a, b := cands[i], cands[j]
		return float64(a.unused)/float64(a.size) > float64(b.unused)/float64(b.size)
	})
	var unusedLeft int64
	for _, c := range cands {
		unusedLeft += c.unused
	}
	for _, c := range cands {
		limit := p.opts.MaxUnused.limit(sizeAfter)
		if limit < 0 || unusedLeft <= limit {
			break
		}
		if p.opts.MaxRepackSize > 0 && res.RepackBytes+c.size > p.opts.MaxRepackSize {
			continue
		}
		repack = append(repack, packIDs[c.num])
		res.RepackPacks++
		res.RepackBytes += c.size
		unusedLeft -= c.unused
		sizeAfter -= c.unused
	}
	res.UnusedAfter = unusedLeft
	res.SizeAfter = sizeAfter
	return garbage, repack, nil
}

// markUsed records that a snapshot needs blob id. fresh is true the first
// time; found is false when the index does not know the blob.
func (x *Index) markUsed(id ID) (fresh, found bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	l, ok := x.blobs[id]
	if !ok {
		return false, false
	}
	if l.used {
		return false, true
	}
	l.used = true
	x.blobs[id] = l
	return true, true
}

// repack copies the used blobs of packs into new packs, verified and still
// sealed as they were compressed, and writes an index file for the new
// packs. Then the old packs are marked in memory, so the index locates the
// blobs in the new packs.
func (p *pruner) repack(ctx context.Context, packs []ID) error {
	r, x := p.r, p.x
	want := map[uint32][]BlobInfo{}
	x.mu.RLock()
	for _, id := range packs {
		want[x.packNum[id]] = nil
	}
	for id, l := range x.blobs {
		if !l.used {
			continue
		}
		if list, ok := want[l.pack]; ok {
			want[l.pack] = append(list, BlobInfo{ID: id, Type: l.typ, Pack: x.packs[l.pack], Offset: l.offset, Length: l.length, RawLen: l.rawLen, Flags: l.flags})
		}
	}
	x.mu.RUnlock()

	var done, total atomic.Int64
	total.Store(p.res.RepackBytes)
	stop := p.track("repacking", "bytes", func() (int64, int64) { return done.Load(), total.Load() })
	defer stop()

	var written []packIndex
	writers := map[BlobType]*packWriter{}
	upload := func(pw *packWriter) error {
		data := pw.finish()
		if err := r.be.Save(ctx, backend.Handle{Kind: backend.Packs, Name: pw.id.String()}, data); err != nil {
			return fmt.Errorf("write pack to %s: %w", r.be.Location(), err)
		}
		written = append(written, packIndex{ID: pw.id, Size: int64(len(data)), Entries: pw.entries})
		p.res.RepackWritten += int64(len(data))
		pruneHook("repack pack written")
		return nil
	}
	var buf []byte
	for _, id := range packs {
		num := x.packNum[id]
		blobs := want[num]
		sort.Slice(blobs, func(i, j int) bool { return blobs[i].Offset < blobs[j].Offset })
		data, err := r.be.Load(ctx, backend.Handle{Kind: backend.Packs, Name: id.String()}, 0, 0)
		if err != nil {
			return fmt.Errorf("%w: read pack %s to repack it: %v", ErrPruneNeedsCheck, id.Short(), err)
		}
		aead := r.key.fileCipher(kindPack, id)
		for _, bi := range blobs {
			end := int64(bi.Offset) + int64(bi.Length)
			if end > int64(len(data)) {
				return fmt.Errorf("%w: pack %s is shorter than the index says", ErrPruneNeedsCheck, id.Short())
			}
			payload, err := aead.Open(nil, nonceAt(uint64(bi.Offset)), data[bi.Offset:end], []byte{byte(bi.Type)})
			if err != nil {
				return fmt.Errorf("%w: blob %s in pack %s cannot be decrypted", ErrPruneNeedsCheck, bi.ID.Short(), id.Short())
			}
			plain := payload
			if bi.Compressed() {
				if buf, err = r.comp.decompress(payload, int(bi.RawLen), buf[:0]); err != nil {
					return fmt.Errorf("%w: blob %s in pack %s: %v", ErrPruneNeedsCheck, bi.ID.Short(), id.Short(), err)
				}
				plain = buf
			}
			if len(plain) != int(bi.RawLen) || r.Hash(plain) != bi.ID {
				return fmt.Errorf("%w: blob %s in pack %s is damaged", ErrPruneNeedsCheck, bi.ID.Short(), id.Short())
			}
			pw := writers[bi.Type]
			if pw != nil && pw.size()+len(payload)+sealOverhead > r.cfg.PackSize {
				if err := upload(pw); err != nil {
					return err
				}
				pw = nil
			}
			if pw == nil {
				pw = newPackWriter(r.key, make([]byte, 0, r.cfg.PackSize+r.cfg.PackSize/16+4096))
				writers[bi.Type] = pw
			}
			pw.add(bi.Type, bi.ID, bi.Flags, payload, int(bi.RawLen))
			p.res.RepackBlobs++
		}
		done.Add(p.onDisk[id])
	}
	for _, t := range []BlobType{DataBlob, TreeBlob} {
		if pw := writers[t]; pw != nil && len(pw.entries) > 0 {
			if err := upload(pw); err != nil {
				return err
			}
		}
	}
	if err := p.saveIndex(ctx, written); err != nil {
		return err
	}
	pruneHook("repack index written")
	p.res.NewPacks = len(written)
	x.setMarked(packs)
	for _, pi := range written {
		x.addPack(pi, false)
	}
	return nil
}

// indexFilePacks bounds the entries of one index file prune writes.
const indexFileEntries = 64 << 10

// saveIndex writes index files for packs.
func (p *pruner) saveIndex(ctx context.Context, packs []packIndex) error {
	for len(packs) > 0 {
		n, entries := 0, 0
		for n < len(packs) && (n == 0 || entries+len(packs[n].Entries) <= indexFileEntries) {
			entries += len(packs[n].Entries)
			n++
		}
		if err := p.r.saveIndexFile(ctx, packs[:n]); err != nil {
			return err
		}
		p.res.IndexWritten++
		pruneHook("index file written")
		packs = packs[n:]
	}
	return nil
}

// sweep deletes the packs of the marks whose lock holders are gone, but
// those a snapshot written since needs.
func (p *pruner) sweep(ctx context.Context, marks []*Mark) error {
	r, x := p.r, p.x
	holders, err := liveHolders(ctx, r.be, p.own)
	if err != nil {
		return err
	}
	completed := map[ID]bool{}
	for _, m := range marks {
		if m.Completes != nil {
			completed[*m.Completes] = true
		}
	}
	var due, leftovers []*Mark
	for _, m := range marks {
		switch {
		case !m.LocksListed && completed[m.ID]:
			// its completion was written; only its removal was missed
			leftovers = append(leftovers, m)
			continue
		case !m.LocksListed:
			// a prune was stopped between the two writes: list the locks now
			c, err := r.writeCompleteMark(ctx, m, p.own)
			if err != nil {
				return err
			}
			p.res.Notes = append(p.res.Notes, fmt.Sprintf("completed mark %s left by a stopped prune", m.ID.Short()))
			m = c
		}
		if w := m.waitingFor(holders); len(w) > 0 {
			p.res.MarksPending++
			p.res.PendingPacks += len(m.Packs)
			p.res.PendingBytes += m.Bytes
			p.res.Waiting = append(p.res.Waiting, w...)
			continue
		}
		due = append(due, m)
	}
	for _, m := range leftovers {
		if err := r.be.Remove(ctx, backend.Handle{Kind: backend.Marks, Name: m.ID.String()}); err != nil {
			return err
		}
	}
	if len(due) == 0 {
		return nil
	}

	// the snapshots of now, after the locks were seen gone
	p.step("checking snapshots written since")
	snaps, err := p.snapshots(ctx)
	if err != nil {
		return err
	}
	if err := p.walk(ctx, snaps); err != nil {
		return err
	}

	del := map[ID]bool{}
	for _, m := range due {
		for _, id := range m.Packs {
			del[id] = true
		}
	}
	x.mu.RLock()
	inDel := make([]bool, len(x.packs))
	for num, id := range x.packs {
		inDel[num] = del[id]
	}
	keep := map[uint32]bool{}
	for _, l := range x.blobs {
		// located in a pack to delete: no unmarked pack holds it
		if l.used && inDel[l.pack] {
			keep[l.pack] = true
		}
	}
	for num := range keep {
		delete(del, x.packs[num])
		p.res.KeptPacks++
		p.res.KeptBytes += x.packSize[num]
	}
	var affected []string
	for name, nums := range x.files {
		for _, n := range nums {
			if inDel[n] && del[x.packs[n]] {
				affected = append(affected, name)
				break
			}
		}
	}
	x.mu.RUnlock()
	sort.Strings(affected)
	rewrite := affected
	if p.ret != nil {
		var rewriteOnly []string
		if affected, rewriteOnly, err = p.holdRetained(ctx, del, affected); err != nil {
			return err
		}
		rewrite = append(slicesClone(affected), rewriteOnly...)
	}
	if p.res.KeptPacks > 0 {
		p.res.Notes = append(p.res.Notes, fmt.Sprintf("kept %d marked packs that snapshots written since need", p.res.KeptPacks))
	}

	// 1. the index without the deleted packs: new files first, then the old removed
	p.step("rewriting the index")
	var survivors []packIndex
	seen := map[ID]bool{}
	entries := 0
	for _, name := range rewrite {
		var werr error
		err := r.walkIndexFile(ctx, name, func(pi packIndex) {
			if werr != nil || del[pi.ID] || seen[pi.ID] || p.skipSurvivor(pi.ID) {
				return
			}
			seen[pi.ID] = true
			pi.Entries = slices.Clone(pi.Entries)
			survivors = append(survivors, pi)
			entries += len(pi.Entries)
			if entries >= indexFileEntries {
				werr = p.saveIndex(ctx, survivors)
				survivors, entries = survivors[:0], 0
			}
		})
		if err == nil {
			err = werr
		}
		if err != nil {
			return fmt.Errorf("rewrite index/%s: %w", shortName(name), err)
		}
	}
	if err := p.saveIndex(ctx, survivors); err != nil {
		return err
	}
	if err := r.lockErr(); err != nil {
		return fmt.Errorf("remove rewritten index files: %w", err)
	}
	for _, name := range affected {
		if err := r.be.Remove(ctx, backend.Handle{Kind: backend.Indexes, Name: name}); err != nil {
			if held := p.packsOfIndexFile(name); p.refusedRemoval(err, held...) {
				for _, id := range held {
					delete(del, id) // the index file that names it stays
				}
				p.ret.rewriteOnly[name] = true
				continue
			}
			return fmt.Errorf("remove index/%s: %w", shortName(name), err)
		}
		if p.ret != nil {
			p.ret.removed[name] = true
		}
		p.res.IndexRemoved++
		pruneHook("index file removed")
	}
	if err := backend.SyncRemovals(ctx, r.be, backend.Indexes); err != nil {
		return err
	}

	// 2. the packs
	var ids []ID
	for id := range del {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	var removed atomic.Int64
	stop := p.track("deleting", "packs", func() (int64, int64) { return removed.Load(), int64(len(ids)) })
	err = p.removePacks(ctx, ids, &removed)
	stop()
	if err != nil {
		return err
	}
	if err := backend.SyncRemovals(ctx, r.be, backend.Packs); err != nil {
		return err
	}

	// 3. the marks
	for _, m := range due {
		if p.markHeld(m) {
			continue // a pack of it is retained: a later prune sweeps it
		}
		if err := r.be.Remove(ctx, backend.Handle{Kind: backend.Marks, Name: m.ID.String()}); err != nil {
			return err
		}
		if m.Completes != nil {
			if err := r.be.Remove(ctx, backend.Handle{Kind: backend.Marks, Name: m.Completes.String()}); err != nil {
				return err
			}
		}
		p.res.MarksSwept++
		pruneHook("mark removed")
	}
	return backend.SyncRemovals(ctx, r.be, backend.Marks)
}

// packRemovers remove packs in parallel: on remote storage each removal
// is a round trip.
const packRemovers = 4

func (p *pruner) removePacks(ctx context.Context, ids []ID, removed *atomic.Int64) error {
	if err := p.r.lockErr(); err != nil {
		return fmt.Errorf("remove packs: %w", err)
	}
	work := make(chan ID)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range min(packRemovers, len(ids)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				err := p.r.be.Remove(ctx, backend.Handle{Kind: backend.Packs, Name: id.String()})
				mu.Lock()
				refused := err != nil && p.refusedRemoval(err, id) // reported at the end
				if err != nil && !refused && firstErr == nil {
					firstErr = fmt.Errorf("remove pack %s: %w", id.Short(), err)
				}
				if size, ok := p.onDisk[id]; err == nil && ok {
					p.res.RemovedPacks++
					p.res.RemovedBytes += size
				}
				mu.Unlock()
				removed.Add(1)
				pruneHook("pack removed")
			}
		}()
	}
	for _, id := range ids {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed || ctx.Err() != nil {
			break
		}
		work <- id
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// pruneHook marks the points between prune's writes and removals. The kill
// test sets STILLPOINT_TEST_PRUNE_KILL_AT=N to kill the process (SIGKILL
// on Unix) at the N-th point it passes, and STILLPOINT_TEST_PRUNE_TRACE=1
// to have each point named on stderr; it does nothing otherwise.
var pruneHook = func() func(string) {
	n, err := strconv.Atoi(os.Getenv("STILLPOINT_TEST_PRUNE_KILL_AT"))
	trace := os.Getenv("STILLPOINT_TEST_PRUNE_TRACE") != ""
	if (err != nil || n <= 0) && !trace {
		return func(string) {}
	}
	var count atomic.Int64
	return func(point string) {
		c := count.Add(1)
		if trace {
			fmt.Fprintf(os.Stderr, "stillpoint: test hook: point %d %q\n", c, point)
		}
		if c == int64(n) {
			fmt.Fprintf(os.Stderr, "stillpoint: test hook: killed at %q (point %d)\n", point, n)
			self, _ := os.FindProcess(os.Getpid())
			_ = self.Kill()
			select {}
		}
	}
}()

package copier

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// source is what the copy reads: blobs, decrypted and verified against
// their ids in the source.
type source interface {
	LoadTree(ctx context.Context, id repo.ID) (*repo.Tree, error)
	LookupBlob(id repo.ID) (repo.BlobInfo, bool)
	OpenPack(id repo.ID) *repo.PackReader
}

// target is what the copy writes to: SaveBlob stores a blob unless the
// target counts it as stored (in a pack no prune has marked) or being stored.
type target interface {
	Hash(data []byte) repo.ID
	Known(id repo.ID) bool
	SaveBlob(ctx context.Context, t repo.BlobType, id repo.ID, data []byte) (added bool, err error)
	LoadTree(ctx context.Context, id repo.ID) (*repo.Tree, error)
	LookupBlob(id repo.ID) (repo.BlobInfo, bool)
}

// translator copies trees and data blobs, each once per run, and
// remembers the id each has in the target.
type translator struct {
	src source
	dst target
	sem chan struct{} // one slot per blob being copied
	// walkers: one slot per subtree walked beside its parent. A tree is
	// one request on object storage; more walkers keep requests in flight
	// in trees of many small directories, and hold more decoded trees.
	walkers chan struct{}
	prog    *Progress

	mu      sync.Mutex
	data    map[repo.ID]repo.ID   // source data blob → target id
	pending map[repo.ID]*inFlight // data blobs being copied
	trees   map[repo.ID]repo.ID   // source tree → target tree
	// hints: source data blob → its id in the target, learnt from an
	// earlier copy (pair); used only while the target counts it as stored
	hints  map[repo.ID]repo.ID
	paired map[repo.ID]bool // source trees paired already: whether whole
	seeded map[repo.ID]bool // trees whose copy pair found whole, not used yet

	dataSent, treesSent atomic.Int64
}

// treeWalkers bounds the subtrees walked at once beside their parents.
const treeWalkers = 16

type inFlight struct {
	done chan struct{}
	id   repo.ID
	err  error
}

func newTranslator(src source, dst target, workers int, prog *Progress) *translator {
	return &translator{src: src, dst: dst, sem: make(chan struct{}, workers), walkers: make(chan struct{}, treeWalkers), prog: prog,
		data: map[repo.ID]repo.ID{}, pending: map[repo.ID]*inFlight{}, trees: map[repo.ID]repo.ID{},
		hints: map[repo.ID]repo.ID{}, paired: map[repo.ID]bool{}, seeded: map[repo.ID]bool{}}
}

// tree copies the tree id of the source and everything below it, and
// returns its id in the target. Data blobs are copied by up to cap(sem)
// goroutines over the whole walk, subtrees walked by up to treeWalkers.
func (t *translator) tree(ctx context.Context, id repo.ID) (repo.ID, error) {
	t.mu.Lock()
	done, ok := t.trees[id]
	if t.seeded[id] {
		delete(t.seeded, id)
		t.prog.TreesReused.Add(1)
	}
	t.mu.Unlock()
	if ok {
		return done, nil
	}
	loaded, err := t.src.LoadTree(ctx, id)
	if err != nil {
		return repo.ID{}, fmt.Errorf("read tree %s from the source: %w", id.Short(), err)
	}
	// the ids are replaced in a copy: the loaded tree may be shared (a cache)
	tr := &repo.Tree{Nodes: make([]*repo.Node, len(loaded.Nodes))}
	for k, n := range loaded.Nodes {
		cp := *n
		cp.Content = slices.Clone(n.Content)
		if len(n.Streams) > 0 {
			cp.Streams = slices.Clone(n.Streams)
			for i := range cp.Streams {
				cp.Streams[i].Content = slices.Clone(n.Streams[i].Content)
			}
		}
		tr.Nodes[k] = &cp
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel()
	}
	// claim the blobs not copied yet, and copy them a span of a pack at
	// a time: one read for the blobs of many small files
	var (
		uses    []use
		claimed = map[repo.ID][]claim{} // by source pack
	)
	for _, slot := range dataSlots(tr) {
		c := *slot
		nid, f, mine := t.resolve(c)
		if f == nil {
			*slot = nid
			continue
		}
		uses = append(uses, use{slot: slot, f: f})
		if !mine {
			continue
		}
		bi, ok := t.src.LookupBlob(c)
		if !ok {
			t.complete(c, f, repo.ID{}, fmt.Errorf("read from the source: %w", &repo.BlobError{ID: c, Err: repo.ErrBlobNotFound}))
			continue
		}
		claimed[bi.Pack] = append(claimed[bi.Pack], claim{bi: bi, f: f})
	}
	jobs := spans(claimed)
	for k, sp := range jobs {
		select {
		case t.sem <- struct{}{}:
		case <-ctx.Done():
			// every claim is completed, or others waiting for it would hang
			for _, rest := range jobs[k:] {
				for _, c := range rest {
					t.complete(c.bi.ID, c.f, repo.ID{}, ctx.Err())
				}
			}
			jobs = nil
		}
		if jobs == nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-t.sem }()
			t.copySpan(ctx, sp)
		}()
	}
	for _, n := range tr.Nodes {
		if n.Subtree.IsNull() {
			continue
		}
		subtree := func() {
			sub, err := t.tree(ctx, n.Subtree)
			if err != nil {
				fail(err)
				return
			}
			n.Subtree = sub // each walker its own node
		}
		// walk the subtree beside this one when a slot is free, else here:
		// a walker never waits for a slot, so walkers cannot deadlock
		select {
		case t.walkers <- struct{}{}:
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-t.walkers }()
				subtree()
			}()
		default:
			subtree()
		}
		if ctx.Err() != nil {
			break
		}
	}
	wg.Wait()
	for _, u := range uses {
		if firstErr != nil {
			break
		}
		select {
		case <-u.f.done:
			if u.f.err != nil {
				fail(u.f.err)
			} else {
				*u.slot = u.f.id
			}
		case <-ctx.Done():
		}
	}
	if firstErr == nil && ctx.Err() != nil {
		firstErr = ctx.Err()
	}
	if firstErr != nil {
		return repo.ID{}, firstErr
	}
	// the nodes keep their names, so their order; the encoding is canonical
	data := repo.EncodeTree(tr)
	nid := t.dst.Hash(data)
	added, err := t.dst.SaveBlob(ctx, repo.TreeBlob, nid, data)
	if err != nil {
		return repo.ID{}, fmt.Errorf("store tree %s: %w", id.Short(), err)
	}
	if added {
		t.treesSent.Add(1)
		t.prog.BlobsSent.Add(1)
		t.prog.BytesSent.Add(int64(len(data)))
	}
	t.mu.Lock()
	t.trees[id] = nid
	t.mu.Unlock()
	return nid, nil
}

// use is a node's slot for a data blob id (of its content or of one of
// its alternate data streams) that waits for the blob's copy.
type use struct {
	slot *repo.ID
	f    *inFlight
}

// dataSlots returns a pointer to every data blob id of the tree's nodes.
func dataSlots(tr *repo.Tree) []*repo.ID {
	var out []*repo.ID
	for _, n := range tr.Nodes {
		for i := range n.Content {
			out = append(out, &n.Content[i])
		}
		for j := range n.Streams {
			for i := range n.Streams[j].Content {
				out = append(out, &n.Streams[j].Content[i])
			}
		}
	}
	return out
}

// claim is a blob this walker copies.
type claim struct {
	bi repo.BlobInfo
	f  *inFlight
}

// resolve returns a data blob's id in the target when it is known, else
// the copy to wait for; mine says the caller must make that copy.
func (t *translator) resolve(id repo.ID) (nid repo.ID, f *inFlight, mine bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if nid, ok := t.data[id]; ok {
		return nid, nil, false
	}
	if f, ok := t.pending[id]; ok {
		return repo.ID{}, f, false
	}
	if h, ok := t.hints[id]; ok && t.dst.Known(h) {
		t.data[id] = h
		t.prog.BlobsNotRead.Add(1)
		return h, nil, false
	}
	f = &inFlight{done: make(chan struct{})}
	t.pending[id] = f
	return repo.ID{}, f, true
}

// complete records the copy of a claimed blob and wakes who waits for it.
func (t *translator) complete(id repo.ID, f *inFlight, nid repo.ID, err error) {
	t.mu.Lock()
	delete(t.pending, id)
	if err == nil {
		t.data[id] = nid
	}
	t.mu.Unlock()
	f.id, f.err = nid, err
	close(f.done)
}

// Spans of packs read at once: blobs closer than spanGap are read in one
// request (the gap read for nothing), up to spanMax bytes.
const (
	spanGap = 256 << 10
	spanMax = 16 << 20
)

// spans groups the claims of each pack into ranges read at once.
func spans(byPack map[repo.ID][]claim) [][]claim {
	var out [][]claim
	for _, cs := range byPack {
		sort.Slice(cs, func(i, j int) bool { return cs[i].bi.Offset < cs[j].bi.Offset })
		begin := 0
		for k := 1; k <= len(cs); k++ {
			if k < len(cs) {
				prevEnd := int64(cs[k-1].bi.Offset) + int64(cs[k-1].bi.Length)
				end := int64(cs[k].bi.Offset) + int64(cs[k].bi.Length)
				if int64(cs[k].bi.Offset)-prevEnd <= spanGap && end-int64(cs[begin].bi.Offset) <= spanMax {
					continue
				}
			}
			out = append(out, cs[begin:k])
			begin = k
		}
	}
	return out
}

// copySpan reads one span of a source pack, and copies each of its claimed
// blobs: decrypted and verified with the source's key, stored with the
// target's. When the span cannot be read (a truncated pack), each blob is
// read alone, so what is intact is still copied.
func (t *translator) copySpan(ctx context.Context, cs []claim) {
	first, last := cs[0].bi, cs[len(cs)-1].bi
	start := int64(first.Offset)
	pr := t.src.OpenPack(first.Pack)
	span, spanErr := pr.ReadRange(ctx, start, int64(last.Offset)+int64(last.Length)-start)
	for _, c := range cs {
		nid, err := t.copyBlob(ctx, pr, c.bi, span, start, spanErr)
		t.complete(c.bi.ID, c.f, nid, err)
	}
}

func (t *translator) copyBlob(ctx context.Context, pr *repo.PackReader, bi repo.BlobInfo, span []byte, start int64, spanErr error) (repo.ID, error) {
	var sealed []byte
	if spanErr == nil {
		sealed = span[int64(bi.Offset)-start : int64(bi.Offset)-start+int64(bi.Length)]
	} else {
		var err error
		if sealed, err = pr.ReadRange(ctx, int64(bi.Offset), int64(bi.Length)); err != nil {
			return repo.ID{}, fmt.Errorf("read from the source: %w", &repo.BlobError{ID: bi.ID, Pack: bi.Pack, Err: err})
		}
	}
	plain, err := pr.Blob(bi, sealed)
	if err != nil {
		return repo.ID{}, fmt.Errorf("read from the source: %w", err)
	}
	t.prog.BlobsRead.Add(1)
	t.prog.BytesRead.Add(int64(len(plain)))
	nid := t.dst.Hash(plain)
	added, err := t.dst.SaveBlob(ctx, repo.DataBlob, nid, plain)
	if err != nil {
		return repo.ID{}, fmt.Errorf("store data blob %s: %w", bi.ID.Short(), err)
	}
	if added {
		t.dataSent.Add(1)
		t.prog.BlobsSent.Add(1)
		t.prog.BytesSent.Add(int64(len(plain)))
	}
	return nid, nil
}

// dryTarget is a target that stores nothing: it counts a blob as sent
// when the target does not have it and it was not counted before.
type dryTarget struct {
	target
	mu   sync.Mutex
	seen map[repo.ID]bool
}

func newDryTarget(t target) *dryTarget { return &dryTarget{target: t, seen: map[repo.ID]bool{}} }

func (d *dryTarget) SaveBlob(_ context.Context, _ repo.BlobType, id repo.ID, _ []byte) (bool, error) {
	if d.target.Known(id) {
		return false, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen[id] {
		return false, nil
	}
	d.seen[id] = true
	return true, nil
}

// pair learns the target ids of the data blobs of the source tree src
// from dst, the tree an earlier copy made of it, without reading any data:
// a file's blobs are taken for each other's copies where both trees have
// the file with the same name, type, size, times and number of blobs, and
// each pair of blobs the same length. Nodes that differ are left out, and
// a hint is used only while the target counts its blob as stored, so a
// wrong or stale pair costs reads, never data.
//
// It tells whether dst is src's copy whole: every node alike but for the
// ids, and every blob below it stored in the target. Then src is not
// walked again: its copy is dst. Errors only end the pairing.
func (t *translator) pair(ctx context.Context, src, dst repo.ID) (bool, error) {
	t.mu.Lock()
	whole, done := t.paired[src]
	t.mu.Unlock()
	if done {
		return whole, nil
	}
	st, err := t.src.LoadTree(ctx, src)
	if err != nil {
		return false, err
	}
	dt, err := t.dst.LoadTree(ctx, dst)
	if err != nil {
		return false, err
	}
	whole = len(st.Nodes) == len(dt.Nodes) && t.dst.Known(dst)
	for _, n := range st.Nodes {
		d := dt.Find(n.Name)
		if d == nil || d.Type != n.Type || n.Subtree.IsNull() != d.Subtree.IsNull() {
			whole = false
			continue
		}
		if !n.Subtree.IsNull() {
			sub, err := t.pair(ctx, n.Subtree, d.Subtree)
			if err != nil {
				return false, err
			}
			whole = whole && sub && sameNode(n, d)
			continue
		}
		if d.Size != n.Size || d.Mtime != n.Mtime || d.Ctime != n.Ctime || len(d.Content) != len(n.Content) {
			whole = false
			continue
		}
		whole = whole && sameNode(n, d)
		for i, c := range n.Content {
			sb, ok1 := t.src.LookupBlob(c)
			db, ok2 := t.dst.LookupBlob(d.Content[i])
			if !ok1 || !ok2 || sb.RawLen != db.RawLen {
				whole = false
				continue
			}
			whole = whole && t.dst.Known(d.Content[i])
			t.mu.Lock()
			t.hints[c] = d.Content[i]
			t.mu.Unlock()
		}
	}
	t.mu.Lock()
	t.paired[src] = whole
	if _, ok := t.trees[src]; whole && !ok {
		t.trees[src] = dst
		t.seeded[src] = true
	}
	t.mu.Unlock()
	return whole, nil
}

// sameNode tells whether two nodes are alike in everything but their ids.
func sameNode(a, b *repo.Node) bool {
	if a.Name != b.Name || a.Type != b.Type || a.Mode != b.Mode || a.Size != b.Size || a.Mtime != b.Mtime ||
		a.Ctime != b.Ctime || a.UID != b.UID || a.GID != b.GID || a.Inode != b.Inode || a.Device != b.Device ||
		a.Links != b.Links || a.Rdev != b.Rdev || a.LinkTarget != b.LinkTarget || a.Outcome != b.Outcome ||
		a.Reason != b.Reason || a.Holder != b.Holder || len(a.Xattrs) != len(b.Xattrs) || len(a.Content) != len(b.Content) {
		return false
	}
	for i := range a.Xattrs {
		if a.Xattrs[i].Name != b.Xattrs[i].Name || !bytes.Equal(a.Xattrs[i].Value, b.Xattrs[i].Value) {
			return false
		}
	}
	// streams' blob ids are not paired: a node with streams is copied
	if a.Attrs != b.Attrs || a.Created != b.Created || a.SDParts != b.SDParts || !bytes.Equal(a.SD, b.SD) ||
		len(a.Streams) > 0 || len(b.Streams) > 0 {
		return false
	}
	return true
}

package copier

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// source is what the copy reads: blobs, decrypted and verified against
// their ids in the source.
type source interface {
	LoadBlob(ctx context.Context, id repo.ID) ([]byte, error)
	LoadTree(ctx context.Context, id repo.ID) (*repo.Tree, error)
	LookupBlob(id repo.ID) (repo.BlobInfo, bool)
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
	paired map[repo.ID]bool // source trees paired already

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
		hints: map[repo.ID]repo.ID{}, paired: map[repo.ID]bool{}}
}

// tree copies the tree id of the source and everything below it, and
// returns its id in the target. Subtrees are walked one after another;
// data blobs are copied by up to cap(sem) goroutines over the whole walk.
func (t *translator) tree(ctx context.Context, id repo.ID) (repo.ID, error) {
	t.mu.Lock()
	done, ok := t.trees[id]
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
walk:
	for _, n := range tr.Nodes {
		for i, c := range n.Content {
			select {
			case t.sem <- struct{}{}:
			case <-ctx.Done():
				break walk
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() { <-t.sem }()
				nid, err := t.dataBlob(ctx, c)
				if err != nil {
					fail(err)
					return
				}
				n.Content[i] = nid // each goroutine its own element
			}()
		}
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

// dataBlob copies one data blob unless this run did already, and returns
// its id in the target. A blob asked for while it is being copied is
// waited for.
func (t *translator) dataBlob(ctx context.Context, id repo.ID) (repo.ID, error) {
	t.mu.Lock()
	if nid, ok := t.data[id]; ok {
		t.mu.Unlock()
		return nid, nil
	}
	if f, ok := t.pending[id]; ok {
		t.mu.Unlock()
		select {
		case <-f.done:
			return f.id, f.err
		case <-ctx.Done():
			return repo.ID{}, ctx.Err()
		}
	}
	f := &inFlight{done: make(chan struct{})}
	t.pending[id] = f
	t.mu.Unlock()

	f.id, f.err = t.copyData(ctx, id)
	t.mu.Lock()
	delete(t.pending, id)
	if f.err == nil {
		t.data[id] = f.id
	}
	t.mu.Unlock()
	close(f.done)
	return f.id, f.err
}

func (t *translator) copyData(ctx context.Context, id repo.ID) (repo.ID, error) {
	t.mu.Lock()
	hint, ok := t.hints[id]
	t.mu.Unlock()
	if ok && t.dst.Known(hint) {
		t.prog.BlobsNotRead.Add(1)
		return hint, nil
	}
	plain, err := t.src.LoadBlob(ctx, id)
	if err != nil {
		return repo.ID{}, fmt.Errorf("read from the source: %w", err)
	}
	t.prog.BlobsRead.Add(1)
	t.prog.BytesRead.Add(int64(len(plain)))
	nid := t.dst.Hash(plain)
	added, err := t.dst.SaveBlob(ctx, repo.DataBlob, nid, plain)
	if err != nil {
		return repo.ID{}, fmt.Errorf("store data blob %s: %w", id.Short(), err)
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
// wrong or stale pair costs reads, never data. Errors only end the pairing.
func (t *translator) pair(ctx context.Context, src, dst repo.ID) error {
	t.mu.Lock()
	done := t.paired[src]
	t.paired[src] = true
	t.mu.Unlock()
	if done {
		return nil
	}
	st, err := t.src.LoadTree(ctx, src)
	if err != nil {
		return err
	}
	dt, err := t.dst.LoadTree(ctx, dst)
	if err != nil {
		return err
	}
	for _, n := range st.Nodes {
		d := dt.Find(n.Name)
		if d == nil || d.Type != n.Type {
			continue
		}
		if !n.Subtree.IsNull() && !d.Subtree.IsNull() {
			if err := t.pair(ctx, n.Subtree, d.Subtree); err != nil {
				return err
			}
			continue
		}
		if d.Size != n.Size || d.Mtime != n.Mtime || d.Ctime != n.Ctime || len(d.Content) != len(n.Content) {
			continue
		}
		for i, c := range n.Content {
			sb, ok1 := t.src.LookupBlob(c)
			db, ok2 := t.dst.LookupBlob(d.Content[i])
			if !ok1 || !ok2 || sb.RawLen != db.RawLen {
				continue
			}
			t.mu.Lock()
			t.hints[c] = d.Content[i]
			t.mu.Unlock()
		}
	}
	return nil
}

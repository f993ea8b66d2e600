package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// Immutable repositories (docs/format.md, Immutable repositories): every
// file of a retained kind is written with a retention date; prune leaves
// alone what is still retained, and extends the retention of what the
// snapshots still need.

// MaxImmutableDays bounds --immutable: nobody can shorten a retention in
// COMPLIANCE mode, so a slip of the keyboard (3650 for 365) would be paid
// for over ten years.
const MaxImmutableDays = 3650

// retentionWorkers ask for and extend retention dates in parallel: each is
// one small round trip.
const retentionWorkers = 8

// retentionNow is the clock of retention decisions. The tests set
// STILLPOINT_TEST_CLOCK_OFFSET (a Go duration) to move it, so that a day
// of retention can be made to pass, or nearly, in a test; it is the real
// clock otherwise. The server keeps its own clock: what it refuses, it
// refuses whatever this one says.
var retentionNow = func() func() time.Time {
	d, err := time.ParseDuration(os.Getenv("STILLPOINT_TEST_CLOCK_OFFSET"))
	if err != nil || d == 0 {
		return time.Now
	}
	return func() time.Time { return time.Now().Add(d) }
}()

// Period is the retention of a file written or extended now.
func (i *Immutability) Period() time.Duration { return time.Duration(i.Days) * 24 * time.Hour }

// margin: a needed file's retention is extended once less than this is
// left of it, so a prune at least every Days/2 keeps every needed file
// retained for at least Days/2 more at any moment.
func (i *Immutability) margin() time.Duration { return i.Period() / 2 }

func (i *Immutability) writeRetention() backend.WriteRetention {
	return backend.WriteRetention{Mode: i.Mode, Period: i.Period(), Now: retentionNow}
}

// retainWrites has every later write of be carry the repository's
// retention. A store without object lock (a copy of the repository on a
// disk) keeps nothing: the repository opens and works, unprotected.
func retainWrites(be backend.Backend, cfg *Config) {
	if cfg.Immutable == nil {
		return
	}
	if rt, ok := backend.AsRetainer(be); ok {
		rt.RetainWrites(cfg.Immutable.writeRetention())
	}
}

// checkObjectLock makes sure that be keeps the retention of an immutable
// repository, before init writes anything.
func checkObjectLock(ctx context.Context, be backend.Backend, im *Immutability) error {
	rt, ok := backend.AsRetainer(be)
	if !ok {
		return fmt.Errorf("--immutable needs an S3 bucket with object lock, and %s is not in one: only the storage can refuse a deletion", be.Location())
	}
	ol, err := rt.ObjectLock(ctx)
	if err != nil {
		return fmt.Errorf("--immutable: %w", err)
	}
	if !ol.Enabled {
		return fmt.Errorf("--immutable: the bucket of %s has no object lock; object lock is chosen when a bucket is created "+
			"(`aws s3api create-bucket --bucket NAME --object-lock-enabled-for-bucket`, `mc mb --with-lock`, or the server's console); "+
			"AWS can also turn it on for an existing versioned bucket (`aws s3api put-object-lock-configuration`)", be.Location())
	}
	if ol.Default.Period > 0 {
		return fmt.Errorf("--immutable: the bucket of %s has a default retention (%s, %s): stillpoint sets the retention of each file itself, "+
			"and its lock files and prune's marks must stay removable; remove the bucket's default retention rule (keep object lock enabled)",
			be.Location(), ol.Default.Mode, ol.Default.Period)
	}
	return nil
}

// Immutable returns the repository's retention, nil when it has none.
func (r *Repository) Immutable() *Immutability { return r.cfg.Immutable }

// retainer is the store's Retainer in an immutable repository, else nil.
func (r *Repository) retainer() backend.Retainer {
	if r.cfg.Immutable == nil {
		return nil
	}
	rt, _ := backend.AsRetainer(r.be)
	return rt
}

// checkRetained returns a *backend.RetainedError when h is retained now,
// so that a removal is not even tried.
func (r *Repository) checkRetained(ctx context.Context, h backend.Handle) error {
	rt := r.retainer()
	if rt == nil {
		return nil
	}
	ret, err := rt.Retention(ctx, h)
	switch {
	case backend.IsNotFound(err):
		return nil
	case err != nil:
		return err
	case ret.Retained(retentionNow()):
		return &backend.RetainedError{Handle: h, Retention: ret}
	}
	return nil
}

// retentions asks for the retention of every handle, in parallel. A
// missing file has none.
func retentions(ctx context.Context, rt backend.Retainer, hs []backend.Handle) ([]backend.Retention, error) {
	out := make([]backend.Retention, len(hs))
	err := forEach(ctx, len(hs), func(i int) error {
		ret, err := rt.Retention(ctx, hs[i])
		if err != nil && !backend.IsNotFound(err) {
			return err
		}
		out[i] = ret
		return nil
	})
	return out, err
}

// forEach calls fn(0..n-1) on retentionWorkers goroutines; the first
// error stops it.
func forEach(ctx context.Context, n int, fn func(i int) error) error {
	work := make(chan int)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for range min(retentionWorkers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		mu.Lock()
		stop := first != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// pruneRetention is what prune keeps track of in an immutable repository.
type pruneRetention struct {
	rt  backend.Retainer
	im  *Immutability
	now time.Time
	// held are packs due for deletion that stay: retained themselves, or
	// named by a retained index file. Their marks stay too.
	held map[ID]bool
	// covered are packs named by an index file that the sweep neither
	// rewrites nor removes: a rewrite need not list them again.
	covered map[ID]bool
	// rewriteOnly are retained index files whose other packs the sweep
	// wrote into a new one; removed, the index files it removed
	rewriteOnly, removed map[string]bool
	// until is the latest retention date that held a pack back
	until time.Time
	// refused are removals the store refused although prune saw their
	// retention passed (a clock off the server's, another prune's
	// extension): reported as prune's error
	refused []error
}

func (p *pruner) initRetention() {
	rt := p.r.retainer()
	if rt == nil {
		return
	}
	p.ret = &pruneRetention{rt: rt, im: p.r.cfg.Immutable, now: retentionNow(), held: map[ID]bool{},
		rewriteOnly: map[string]bool{}, removed: map[string]bool{}}
}

func (pr *pruneRetention) hold(id ID, until time.Time) {
	pr.held[id] = true
	if until.After(pr.until) {
		pr.until = until
	}
}

// holdRetained takes out of del the packs the store still retains, and
// those named by a retained index file (an index file is removed before
// the packs it names, so a pack waits for its index files). It returns
// the index files to remove (not retained), and the retained ones that
// name packs due for deletion: their other packs are written into a new
// index file, so that they stop needing the retained one, which then is
// no longer extended and expires.
func (p *pruner) holdRetained(ctx context.Context, del map[ID]bool, affected []string) (remove, rewriteOnly []string, err error) {
	pr := p.ret
	var ids []ID
	for id := range del {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	hs := make([]backend.Handle, len(ids))
	for i, id := range ids {
		hs[i] = backend.Handle{Kind: backend.Packs, Name: id.String()}
	}
	rets, err := retentions(ctx, pr.rt, hs)
	if err != nil {
		return nil, nil, fmt.Errorf("retention of the packs to delete: %w", err)
	}
	var heldPacks int
	for i, ret := range rets {
		if ret.Retained(pr.now) {
			delete(del, ids[i])
			pr.hold(ids[i], ret.Until)
			heldPacks++
			p.res.RetainedPacks++
			p.res.RetainedBytes += p.onDisk[ids[i]]
		}
	}

	x := p.x
	x.mu.RLock()
	files := make(map[string][]ID, len(x.files))
	for name, nums := range x.files {
		for _, n := range nums {
			files[name] = append(files[name], x.packs[n])
		}
	}
	x.mu.RUnlock()
	names := func(file string) bool {
		for _, id := range files[file] {
			if del[id] {
				return true
			}
		}
		return false
	}
	asked := map[string]bool{}
	retained := map[string]bool{}
	for {
		var ask []string
		for _, name := range affected {
			if !asked[name] && names(name) {
				ask = append(ask, name)
			}
		}
		if len(ask) == 0 {
			break
		}
		hs := make([]backend.Handle, len(ask))
		for i, name := range ask {
			hs[i] = backend.Handle{Kind: backend.Indexes, Name: name}
			asked[name] = true
		}
		rets, err := retentions(ctx, pr.rt, hs)
		if err != nil {
			return nil, nil, fmt.Errorf("retention of the index files to rewrite: %w", err)
		}
		for i, ret := range rets {
			if !ret.Retained(pr.now) {
				continue
			}
			retained[ask[i]] = true
			p.res.RetainedIndexFiles++
			for _, id := range files[ask[i]] {
				if del[id] {
					delete(del, id)
					pr.hold(id, ret.Until)
					p.res.RetainedPacks++
					p.res.RetainedBytes += p.onDisk[id]
				}
			}
		}
	}
	for _, name := range affected {
		switch {
		case retained[name]:
			rewriteOnly = append(rewriteOnly, name)
			pr.rewriteOnly[name] = true
		case names(name):
			remove = append(remove, name)
		}
	}
	rewritten := map[string]bool{}
	for _, name := range append(slicesClone(remove), rewriteOnly...) {
		rewritten[name] = true
	}
	pr.covered = map[ID]bool{}
	for name, ids := range files {
		if !rewritten[name] {
			for _, id := range ids {
				pr.covered[id] = true
			}
		}
	}
	if p.res.RetainedPacks > 0 {
		p.res.RetainedUntil = pr.until.UTC().Format(time.RFC3339)
		byIndex := ""
		if n := p.res.RetainedPacks - heldPacks; n > 0 {
			byIndex = fmt.Sprintf(" (%d of them because a retained index file names them)", n)
		}
		p.res.Notes = append(p.res.Notes, fmt.Sprintf("%d packs (%d bytes) no snapshot needs are retained by the storage's object lock until %s at the latest%s: they are not deleted now; a prune after that date deletes them",
			p.res.RetainedPacks, p.res.RetainedBytes, p.res.RetainedUntil, byIndex))
	}
	return remove, rewriteOnly, nil
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// skipSurvivor tells whether the rewrite of an index file leaves out pack
// id: held back (its retained index file still names it) or named by an
// index file that stays.
func (p *pruner) skipSurvivor(id ID) bool {
	return p.ret != nil && (p.ret.held[id] || p.ret.covered[id])
}

// refusedRemoval records a removal the store refused for its retention;
// it returns false for any other error.
func (p *pruner) refusedRemoval(err error, packs ...ID) bool {
	if p.ret == nil || !errors.Is(err, backend.ErrRetained) {
		return false
	}
	var re *backend.RetainedError
	until := time.Time{}
	if errors.As(err, &re) {
		until = re.Until
	}
	for _, id := range packs {
		p.ret.hold(id, until)
	}
	p.ret.refused = append(p.ret.refused, err)
	p.res.Refused = append(p.res.Refused, err.Error())
	return true
}

// packsOfIndexFile lists the packs an index file names.
func (p *pruner) packsOfIndexFile(name string) []ID {
	x := p.x
	x.mu.RLock()
	defer x.mu.RUnlock()
	var ids []ID
	for _, n := range x.files[name] {
		ids = append(ids, x.packs[n])
	}
	return ids
}

// markHeld tells whether a mark names a pack held back: it stays for a
// later prune.
func (p *pruner) markHeld(m *Mark) bool {
	if p.ret == nil {
		return false
	}
	for _, id := range m.Packs {
		if p.ret.held[id] {
			return true
		}
	}
	return false
}

// refusedError is prune's error when the store refused removals.
func (p *pruner) refusedError() error {
	if p.ret == nil || len(p.ret.refused) == 0 {
		return nil
	}
	return fmt.Errorf("the storage refused to delete %d files still retained by its object lock (the first: %w); they and their marks are kept for a later prune (is this machine's clock behind the server's?)",
		len(p.ret.refused), p.ret.refused[0])
}

// extendRetention extends the retention of what the snapshots need — the
// config, the keys, the packs holding blobs they use and the index files
// that locate those packs — when less than the margin of it is left, to
// now plus the period. Snapshot files keep the retention they were
// written with: extending them would make them impossible to forget.
func (p *pruner) extendRetention(ctx context.Context) error {
	pr := p.ret
	if pr == nil {
		return nil
	}
	p.step("extending retention")
	hs := []backend.Handle{{Kind: backend.Config, Name: "config"}}
	if err := p.r.be.List(ctx, backend.Keys, func(fi backend.FileInfo) error {
		hs = append(hs, backend.Handle{Kind: backend.Keys, Name: fi.Name})
		return nil
	}); err != nil {
		return fmt.Errorf("list keys: %w", err)
	}
	hs = append(hs, p.neededFiles()...)

	now := retentionNow()
	target := backend.Retention{Mode: pr.im.Mode, Until: pr.im.writeRetention().Until()}
	var mu sync.Mutex
	var failed []error
	err := forEach(ctx, len(hs), func(i int) error {
		ret, err := pr.rt.Retention(ctx, hs[i])
		if backend.IsNotFound(err) {
			return nil
		}
		if err == nil && ret.Until.After(now.Add(pr.im.margin())) {
			return nil
		}
		if err == nil {
			err = pr.rt.SetRetention(ctx, hs[i], target)
		}
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed = append(failed, err)
			return nil
		}
		p.res.RetentionExtended++
		return nil
	})
	if err != nil {
		return err
	}
	if p.res.RetentionExtended > 0 {
		p.res.Notes = append(p.res.Notes, fmt.Sprintf("extended the retention of %d files the snapshots need to %s", p.res.RetentionExtended, target.Until.Format(time.RFC3339)))
	}
	if len(failed) > 0 {
		return fmt.Errorf("the retention of %d files the snapshots need could not be extended (the first: %w); the next prune tries again", len(failed), failed[0])
	}
	return nil
}

// neededFiles are the packs holding a blob the snapshots use, and the
// index files that locate them: every clean one (naming no pack of a
// mark) that names such a pack, and a marked one only where it is the
// only index file naming such a pack (the sweep writes those into a clean
// file, after which the marked one is left to expire).
func (p *pruner) neededFiles() []backend.Handle {
	x := p.x
	x.mu.RLock()
	defer x.mu.RUnlock()
	live := make([]bool, len(x.packs))
	for _, l := range x.blobs {
		if l.used {
			live[l.pack] = true
		}
	}
	var hs []backend.Handle
	for num, id := range x.packs {
		if live[num] && !p.ret.held[id] {
			hs = append(hs, backend.Handle{Kind: backend.Packs, Name: id.String()})
		}
	}
	dirty := func(nums []uint32) bool {
		for _, n := range nums {
			if x.packMarked[n] || p.ret.held[x.packs[n]] {
				return true
			}
		}
		return false
	}
	inClean := make([]bool, len(x.packs))
	var dirtyFiles []string
	for name, nums := range x.files {
		if p.ret.removed[name] || p.ret.rewriteOnly[name] {
			continue // gone, or what it locates was written again
		}
		if dirty(nums) {
			dirtyFiles = append(dirtyFiles, name)
			continue
		}
		needed := false
		for _, n := range nums {
			inClean[n] = true
			needed = needed || live[n]
		}
		if needed {
			hs = append(hs, backend.Handle{Kind: backend.Indexes, Name: name})
		}
	}
	for _, name := range dirtyFiles {
		for _, n := range x.files[name] {
			if live[n] && !inClean[n] {
				hs = append(hs, backend.Handle{Kind: backend.Indexes, Name: name})
				break
			}
		}
	}
	return hs
}

package repo

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// The tests here back up with a small stand-in for the archiver that keeps
// the same rules: a file's content is reused from its parent when every
// blob is Known, other blobs go through SaveBlob's dedup, trees too.

type fileSet map[string][]byte

const testChunk = 16 << 10

func pruneTestConfig() Config {
	cfg := DefaultConfig
	cfg.PackSize = 128 << 10 // many packs from little data
	cfg.Compression = "off"
	return cfg
}

func newPruneRepo(t *testing.T) (*backend.Mem, Credential) {
	t.Helper()
	be := backend.NewMem()
	cred := Credential{KeyFile: NewKeyFileSecret()}
	if _, err := Init(bg, be, cred, pruneTestConfig()); err != nil {
		t.Fatal(err)
	}
	return be, cred
}

func openRepo(t testing.TB, be backend.Backend, cred Credential) *Repository {
	t.Helper()
	r, err := Open(bg, be, cred)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// backupRun is one backup in progress: locked, view loaded.
type backupRun struct {
	r    *Repository
	lock *Lock
}

func startBackup(t testing.TB, be backend.Backend, cred Credential) *backupRun {
	t.Helper()
	r := openRepo(t, be, cred)
	l, err := r.Lock(bg, false, "backup")
	if err != nil {
		t.Fatal(err)
	}
	return &backupRun{r: r, lock: l}
}

// save stores files as a snapshot; content unchanged from parent (same
// bytes) is reused when Known, as the archiver does.
func (b *backupRun) save(files fileSet, parent *Snapshot) (*Snapshot, error) {
	r := b.r
	prev := map[string]*Node{}
	if parent != nil {
		// as the archiver: a parent that cannot be read (forgotten and
		// pruned since) only costs speed
		if t, err := r.LoadTree(bg, parent.Tree); err == nil {
			for _, n := range t.Nodes {
				prev[n.Name] = n
			}
		}
	}
	tree := &Tree{}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		data := files[name]
		// the content's hash stands in for the mtime the archiver compares
		h := r.Hash(data)
		mtime := int64(binary.LittleEndian.Uint64(h[:8]))
		n := &Node{Name: name, Type: NodeFile, Mode: 0o644, Size: uint64(len(data))}
		if old := prev[name]; old != nil && old.Size == n.Size && old.Mtime == mtime {
			reuse := true
			for _, id := range old.Content {
				if !r.Known(id) {
					reuse = false
				}
			}
			if reuse {
				n.Content = old.Content
			}
		}
		n.Mtime = mtime
		if n.Content == nil {
			for off := 0; off < len(data); off += testChunk {
				chunk := data[off:min(off+testChunk, len(data))]
				id := r.Hash(chunk)
				if _, err := r.SaveBlob(bg, DataBlob, id, chunk); err != nil {
					return nil, err
				}
				n.Content = append(n.Content, id)
			}
		}
		tree.Nodes = append(tree.Nodes, n)
	}
	root, err := r.SaveTree(bg, tree)
	if err != nil {
		return nil, err
	}
	if err := r.Flush(bg); err != nil {
		return nil, err
	}
	s := &Snapshot{Time: time.Now(), Host: "h", Paths: []string{"/"}, Tree: root}
	if _, err := r.SaveSnapshot(bg, s); err != nil {
		return nil, err
	}
	return s, nil
}

func (b *backupRun) done() { b.lock.Unlock() }

func backupOnce(t testing.TB, be backend.Backend, cred Credential, files fileSet, parent *Snapshot) *Snapshot {
	t.Helper()
	b := startBackup(t, be, cred)
	defer b.done()
	s, err := b.save(files, parent)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// restoreEqual reads snapshot id through a freshly opened repository and
// compares it with want.
func restoreEqual(t testing.TB, be backend.Backend, cred Credential, id ID, want fileSet) {
	t.Helper()
	if err := restoreCompare(be, cred, id, want); err != nil {
		t.Fatal(err)
	}
}

func restoreCompare(be backend.Backend, cred Credential, id ID, want fileSet) error {
	r, err := Open(bg, be, cred)
	if err != nil {
		return err
	}
	s, err := r.LoadSnapshot(bg, id)
	if err != nil {
		return err
	}
	tree, err := r.LoadTree(bg, s.Tree)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", id.Short(), err)
	}
	if len(tree.Nodes) != len(want) {
		return fmt.Errorf("snapshot %s has %d files, want %d", id.Short(), len(tree.Nodes), len(want))
	}
	for _, n := range tree.Nodes {
		var got []byte
		for _, c := range n.Content {
			b, err := r.LoadBlob(bg, c)
			if err != nil {
				return fmt.Errorf("snapshot %s file %s: %w", id.Short(), n.Name, err)
			}
			got = append(got, b...)
		}
		if !bytes.Equal(got, want[n.Name]) {
			return fmt.Errorf("snapshot %s file %s differs", id.Short(), n.Name)
		}
	}
	return nil
}

// mustCheck runs check --read-data: no error, and no warning either but
// those an interrupted run may leave (packs in no index) when allowed.
func mustCheck(t testing.TB, be backend.Backend, cred Credential, allowInterrupted ...bool) *CheckResult {
	t.Helper()
	r := openRepo(t, be, cred)
	res, err := r.Check(bg, CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	warn := res.Warnings
	if len(allowInterrupted) > 0 && allowInterrupted[0] && len(warn) == 1 && strings.Contains(warn[0].Message, "in no index") {
		warn = nil
	}
	if !res.OK() || len(warn) > 0 {
		t.Fatalf("check: errors %v, warnings %v", res.Errors, res.Warnings)
	}
	return res
}

func forget(t testing.TB, be backend.Backend, s *Snapshot) {
	t.Helper()
	if err := be.Remove(bg, backend.Handle{Kind: backend.Snapshots, Name: s.ID.String()}); err != nil {
		t.Fatal(err)
	}
}

func prune(t testing.TB, be backend.Backend, cred Credential, opts PruneOptions) *PruneResult {
	t.Helper()
	r := openRepo(t, be, cred)
	res, err := r.Prune(bg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func count(t testing.TB, be backend.Backend, k backend.Kind) (n int, size int64) {
	t.Helper()
	if err := be.List(bg, k, func(fi backend.FileInfo) error {
		n++
		size += fi.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n, size
}

func randomFiles(rng *rand.Rand, n, size int) fileSet {
	fs := fileSet{}
	for i := range n {
		b := make([]byte, size/2+rng.IntN(size))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		fs[fmt.Sprintf("f%03d", i)] = b
	}
	return fs
}

// mutate changes a few files of fs (new bytes), returns a copy.
func mutate(rng *rand.Rand, fs fileSet, k int) fileSet {
	out := fileSet{}
	for n, b := range fs {
		out[n] = b
	}
	names := make([]string, 0, len(fs))
	for n := range fs {
		names = append(names, n)
	}
	sort.Strings(names)
	for range k {
		n := names[rng.IntN(len(names))]
		b := append([]byte(nil), out[n]...)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		out[n] = b
	}
	// a file whose content comes back (reverted): after forget it is in
	// marked packs, which a backup must not trust
	v := rng.IntN(3)
	b := make([]byte, 3*testChunk)
	for j := range b {
		b[j] = byte(j*7 + v)
	}
	out["revert"] = b
	return out
}

func TestPruneQuietRepositoryFreesAtOnce(t *testing.T) {
	be, cred := newPruneRepo(t)
	rng := rand.New(rand.NewPCG(1, 2))
	a := randomFiles(rng, 20, 40<<10)
	sa := backupOnce(t, be, cred, a, nil)
	b := mutate(rng, a, 10)
	sb := backupOnce(t, be, cred, b, sa)
	_, before := count(t, be, backend.Packs)
	forget(t, be, sa)

	res := prune(t, be, cred, PruneOptions{MaxUnused: DefaultMaxUnused})
	if res.GarbagePacks == 0 || res.RemovedPacks == 0 || res.MarksSwept != 1 || res.MarksPending != 0 {
		t.Fatalf("nothing freed on a quiet repository: %+v", res)
	}
	if n, _ := count(t, be, backend.Marks); n != 0 {
		t.Fatalf("%d marks left after a sweep", n)
	}
	_, after := count(t, be, backend.Packs)
	if after >= before {
		t.Fatalf("packs %d bytes before prune, %d after", before, after)
	}
	restoreEqual(t, be, cred, sb.ID, b)
	mustCheck(t, be, cred)
	// a second prune finds nothing
	res = prune(t, be, cred, PruneOptions{MaxUnused: DefaultMaxUnused})
	if res.GarbagePacks != 0 || res.RepackPacks != 0 || res.RemovedPacks != 0 {
		t.Fatalf("second prune still found work: %+v", res)
	}
}

// A dry run without some snapshots (forget --dry-run --prune) reports what
// prune would free once they are gone, and changes nothing; a prune that
// is no dry run refuses to leave snapshots out.
func TestPruneDryRunWithoutSnapshots(t *testing.T) {
	be, cred := newPruneRepo(t)
	rng := rand.New(rand.NewPCG(5, 6))
	a := randomFiles(rng, 20, 40<<10)
	sa := backupOnce(t, be, cred, a, nil)
	b := mutate(rng, a, 10)
	sb := backupOnce(t, be, cred, b, sa)
	packs, bytes := count(t, be, backend.Packs)

	res := prune(t, be, cred, PruneOptions{MaxUnused: DefaultMaxUnused, DryRun: true})
	if res.GarbagePacks != 0 || res.RepackPacks != 0 {
		t.Fatalf("with every snapshot there is nothing to free: %+v", res)
	}
	res = prune(t, be, cred, PruneOptions{MaxUnused: DefaultMaxUnused, DryRun: true, Without: []ID{sa.ID}})
	if res.Snapshots != 1 || res.GarbagePacks+res.RepackPacks == 0 || res.UnusedBytes == 0 {
		t.Fatalf("without the first snapshot its packs are unused: %+v", res)
	}
	if n, size := count(t, be, backend.Packs); n != packs || size != bytes {
		t.Fatalf("a dry run changed the packs: %d (%d bytes) before, %d (%d bytes) after", packs, bytes, n, size)
	}
	if n, _ := count(t, be, backend.Marks); n != 0 {
		t.Fatalf("a dry run wrote %d marks", n)
	}

	r := openRepo(t, be, cred)
	if _, err := r.Prune(bg, PruneOptions{MaxUnused: DefaultMaxUnused, Without: []ID{sa.ID}}); err == nil {
		t.Fatal("a prune that is no dry run left a snapshot out")
	}
	if n, _ := count(t, be, backend.Packs); n != packs {
		t.Fatalf("the refused prune changed the packs: %d before, %d after", packs, n)
	}
	restoreEqual(t, be, cred, sa.ID, a)
	restoreEqual(t, be, cred, sb.ID, b)
}

func TestPruneRepacksDownToMaxUnused(t *testing.T) {
	be, cred := newPruneRepo(t)
	rng := rand.New(rand.NewPCG(3, 4))
	// small files: many per pack, so packs end up partly used
	a := randomFiles(rng, 200, 4<<10)
	sa := backupOnce(t, be, cred, a, nil)
	b := mutate(rng, a, 60)
	sb := backupOnce(t, be, cred, b, sa)
	forget(t, be, sa)

	dry := prune(t, be, cred, PruneOptions{MaxUnused: MaxUnused{Percent: 0}, DryRun: true})
	if dry.RepackPacks == 0 {
		t.Fatalf("dry run repacks nothing: %+v", dry)
	}
	if n, _ := count(t, be, backend.Marks); n != 0 {
		t.Fatal("dry run wrote a mark")
	}
	var planned *PruneResult
	res := prune(t, be, cred, PruneOptions{MaxUnused: MaxUnused{Percent: 0}, Plan: func(p *PruneResult) { c := *p; planned = &c }})
	if planned == nil || planned.RepackPacks != dry.RepackPacks || planned.GarbagePacks != dry.GarbagePacks {
		t.Fatalf("plan %+v differs from the dry run %+v", planned, dry)
	}
	if res.RepackBlobs == 0 || res.NewPacks == 0 || res.RemovedPacks < res.RepackPacks {
		t.Fatalf("repack did not happen: %+v", res)
	}
	if res.UnusedAfter != 0 {
		t.Fatalf("max-unused 0%% left %d bytes unused", res.UnusedAfter)
	}
	restoreEqual(t, be, cred, sb.ID, b)
	mustCheck(t, be, cred)
	// nothing unused is left: the next prune has nothing to do
	res = prune(t, be, cred, PruneOptions{MaxUnused: MaxUnused{Percent: 0}})
	if res.RepackPacks != 0 || res.GarbagePacks != 0 {
		t.Fatalf("second prune: %+v", res)
	}
}

// prune says what it will do before it changes anything, shows progress
// on each phase, repacks down to the default 5% of the repository after
// prune, and copies at most --max-repack-size.
func TestPrunePlanPhasesAndLimits(t *testing.T) {
	be, cred := newPruneRepo(t)
	rng := rand.New(rand.NewPCG(11, 12))
	a := randomFiles(rng, 200, 4<<10)
	sa := backupOnce(t, be, cred, a, nil)
	b := mutate(rng, a, 60)
	sb := backupOnce(t, be, cred, b, sa)
	forget(t, be, sa)
	packs, bytes := count(t, be, backend.Packs)

	var events []string
	finals := map[string][2]int64{}
	opts := PruneOptions{MaxUnused: DefaultMaxUnused}
	opts.Plan = func(p *PruneResult) {
		events = append(events, "plan")
		if n, size := count(t, be, backend.Packs); n != packs || size != bytes || p.GarbagePacks+p.RepackPacks == 0 {
			t.Errorf("plan %+v told after packs changed (%d packs, %d bytes; before %d, %d) or with nothing to do", p, n, size, packs, bytes)
		}
		if n, _ := count(t, be, backend.Marks); n != 0 {
			t.Errorf("plan told after a mark was written")
		}
	}
	opts.Step = func(msg string) { events = append(events, msg) }
	opts.Track = func(phase, unit string, sample func() (int64, int64)) func() {
		events = append(events, phase)
		return func() {
			if _, seen := finals[phase]; !seen {
				d, n := sample()
				finals[phase] = [2]int64{d, n}
			}
		}
	}
	res := prune(t, be, cred, opts)
	want := []string{"loading snapshots", "walking trees", "planning", "plan", "repacking",
		"checking snapshots written since", "walking trees", "rewriting the index", "deleting"}
	if got := strings.Join(events, " | "); got != strings.Join(want, " | ") {
		t.Errorf("phases:\n got %s\nwant %s", got, strings.Join(want, " | "))
	}
	for _, phase := range []string{"repacking", "deleting"} {
		if f := finals[phase]; f[1] == 0 || f[0] != f[1] {
			t.Errorf("%s ended at %d of %d", phase, f[0], f[1])
		}
	}
	if finals["walking trees"][0] == 0 {
		t.Error("walking trees counted no tree")
	}
	if res.RepackPacks == 0 || res.UnusedAfter > res.SizeAfter*5/100 {
		t.Errorf("default --max-unused: %d bytes unused left of %d after prune (more than 5%%), %d packs repacked", res.UnusedAfter, res.SizeAfter, res.RepackPacks)
	}
	restoreEqual(t, be, cred, sb.ID, b)
	mustCheck(t, be, cred)

	// a second history; repacking all of it would copy more than the bound
	c := mutate(rng, b, 60)
	sc := backupOnce(t, be, cred, c, sb)
	forget(t, be, sb)
	full := prune(t, be, cred, PruneOptions{MaxUnused: MaxUnused{}, DryRun: true})
	bound := full.RepackBytes / 2
	res = prune(t, be, cred, PruneOptions{MaxUnused: MaxUnused{}, MaxRepackSize: bound})
	if res.RepackPacks == 0 || res.RepackBytes > bound || res.RepackPacks >= full.RepackPacks {
		t.Errorf("--max-repack-size %d: repacked %d packs, %d bytes (without the bound %d packs, %d bytes)",
			bound, res.RepackPacks, res.RepackBytes, full.RepackPacks, full.RepackBytes)
	}
	restoreEqual(t, be, cred, sc.ID, c)
	mustCheck(t, be, cred)
}

func TestPruneMaxRepackSize(t *testing.T) {
	be, cred := newPruneRepo(t)
	rng := rand.New(rand.NewPCG(5, 6))
	a := randomFiles(rng, 200, 4<<10)
	sa := backupOnce(t, be, cred, a, nil)
	b := mutate(rng, a, 60)
	backupOnce(t, be, cred, b, sa)
	forget(t, be, sa)
	res := prune(t, be, cred, PruneOptions{MaxUnused: MaxUnused{Percent: 0}, MaxRepackSize: 300 << 10, DryRun: true})
	if res.RepackBytes > 300<<10 || res.RepackPacks == 0 {
		t.Fatalf("--max-repack-size 300K: repacks %d bytes in %d packs", res.RepackBytes, res.RepackPacks)
	}
	unl := prune(t, be, cred, PruneOptions{MaxUnused: MaxUnused{Unlimited: true}, DryRun: true})
	if unl.RepackPacks != 0 {
		t.Fatalf("--max-unused unlimited repacks %d packs", unl.RepackPacks)
	}
}

// A backup that started before the mark may use marked blobs: the sweep
// waits for it and keeps what its snapshot needs. A backup that starts
// after the mark does not deduplicate against marked packs.
func TestPruneBackupsAcrossMarkAndSweep(t *testing.T) {
	be, cred := newPruneRepo(t)
	rng := rand.New(rand.NewPCG(7, 8))
	a := randomFiles(rng, 12, 40<<10)
	sa := backupOnce(t, be, cred, a, nil)
	b := mutate(rng, a, 6)
	sb := backupOnce(t, be, cred, b, sa)

	early := startBackup(t, be, cred) // its view has a's blobs as stored
	forget(t, be, sa)
	res := prune(t, be, cred, PruneOptions{MaxUnused: DefaultMaxUnused})
	if res.GarbagePacks == 0 || res.MarksPending != 1 || res.RemovedPacks != 0 || len(res.Waiting) != 1 {
		t.Fatalf("first prune: want a pending mark waiting for the backup, got %+v", res)
	}
	if n, _ := count(t, be, backend.Marks); n != 1 {
		t.Fatalf("%d marks, want 1", n)
	}
	// the early backup dedups against a's blobs (only marked packs hold
	// them), a late one must store them again
	late := startBackup(t, be, cred)
	for name, data := range a {
		id := late.r.Hash(data[:min(testChunk, len(data))])
		if late.r.Known(id) && !bytes.Equal(data, b[name]) {
			t.Fatalf("a backup that started after the mark treats marked blob %s (of %s) as stored", id.Short(), name)
		}
		if !early.r.Known(id) {
			t.Fatalf("the early backup's view lost blob %s", id.Short())
		}
	}
	c := mutate(rng, a, 2) // mostly a's content again
	sc, err := early.save(c, sb)
	if err != nil {
		t.Fatal(err)
	}
	if early.r.Stats().Blobs.Load() > 2*int64(len(a))+1 {
		t.Fatalf("early backup stored %d blobs: it did not dedup", early.r.Stats().Blobs.Load())
	}
	d := mutate(rng, a, 3)
	sd, err := late.save(d, sb)
	if err != nil {
		t.Fatal(err)
	}
	late.done()

	// the mark still waits for the early backup, also after unlock
	// --remove-all: it keeps a live holder's lock
	if _, err := RemoveLocks(bg, be, UnlessLive); err != nil {
		t.Fatal(err)
	}
	res = prune(t, be, cred, PruneOptions{MaxUnused: DefaultMaxUnused})
	if res.RemovedPacks != 0 || res.MarksPending != 1 {
		t.Fatalf("swept while a listed backup ran: %+v", res)
	}
	early.done()
	res = prune(t, be, cred, PruneOptions{MaxUnused: DefaultMaxUnused})
	if res.MarksSwept == 0 || res.KeptPacks == 0 || res.RemovedPacks == 0 {
		t.Fatalf("second prune should sweep, keep what snapshot c needs and delete the rest: %+v", res)
	}
	for _, x := range []struct {
		s  *Snapshot
		fs fileSet
	}{{sb, b}, {sc, c}, {sd, d}} {
		restoreEqual(t, be, cred, x.s.ID, x.fs)
	}
	mustCheck(t, be, cred)
	if n, _ := count(t, be, backend.Marks); n != 0 {
		t.Fatalf("%d marks left", n)
	}
}

func TestPruneNowRefusedWhileBackupRuns(t *testing.T) {
	be, cred := newPruneRepo(t)
	rng := rand.New(rand.NewPCG(9, 10))
	a := randomFiles(rng, 4, 40<<10)
	sa := backupOnce(t, be, cred, a, nil)
	backupOnce(t, be, cred, mutate(rng, a, 2), sa)
	forget(t, be, sa)
	b := startBackup(t, be, cred)
	r := openRepo(t, be, cred)
	_, err := r.Prune(bg, PruneOptions{Now: true})
	var le *ErrLocked
	if !errors.As(err, &le) || !strings.Contains(err.Error(), `"backup"`) || !strings.Contains(err.Error(), "without --now") {
		t.Fatalf("prune --now beside a backup: %v", err)
	}
	b.done()
	res := prune(t, be, cred, PruneOptions{Now: true, MaxUnused: DefaultMaxUnused})
	if res.RemovedPacks == 0 || res.MarksPending != 0 {
		t.Fatalf("prune --now: %+v", res)
	}
	mustCheck(t, be, cred)
}

func TestTwoPrunesExcludeEachOther(t *testing.T) {
	be, cred := newPruneRepo(t)
	r := openRepo(t, be, cred)
	l, err := r.LockPrune(bg, "prune")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	r2 := openRepo(t, be, cred)
	if _, err := r2.LockPrune(bg, "prune"); err == nil {
		t.Fatal("a second prune lock was granted")
	}
	b, err := r2.Lock(bg, false, "backup")
	if err != nil {
		t.Fatalf("a backup was refused beside a prune: %v", err)
	}
	b.Unlock()
}

// A mark left without its locks (a prune stopped between the two writes)
// is completed by the next prune and swept.
func TestPruneCompletesAnIncompleteMark(t *testing.T) {
	be, cred := newPruneRepo(t)
	rng := rand.New(rand.NewPCG(11, 12))
	a := randomFiles(rng, 8, 40<<10)
	sa := backupOnce(t, be, cred, a, nil)
	b := mutate(rng, a, 8)
	sb := backupOnce(t, be, cred, b, sa)
	forget(t, be, sa)
	r := openRepo(t, be, cred)
	var garbage []ID
	for id := range r.Index().Packs() {
		garbage = append(garbage, id)
	}
	// mark every pack, as a stopped prune could not (it marks only
	// garbage) but the sweep must still keep what b needs
	if err := r.saveMark(bg, &Mark{Time: time.Now(), Packs: garbage}); err != nil {
		t.Fatal(err)
	}
	late := startBackup(t, be, cred)
	for _, data := range b {
		if late.r.Known(late.r.Hash(data[:testChunk])) {
			t.Fatal("a blob of an incompletely marked pack counts as stored")
		}
	}
	late.done()
	res := prune(t, be, cred, PruneOptions{MaxUnused: MaxUnused{Unlimited: true}})
	if res.MarksSwept == 0 || res.KeptPacks == 0 {
		t.Fatalf("%+v", res)
	}
	restoreEqual(t, be, cred, sb.ID, b)
	mustCheck(t, be, cred)
}

// crashing is a backend that stops taking writes and removals after a
// number of them, as a killed process would.
type crashing struct {
	backend.Backend
	left    atomic.Int64
	crashed atomic.Bool
}

var errCrashed = errors.New("crashed")

func (c *crashing) step() error {
	if c.left.Add(-1) < 0 {
		c.crashed.Store(true)
		return errCrashed
	}
	return nil
}

func (c *crashing) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.Backend.Save(ctx, h, data)
}

func (c *crashing) Remove(ctx context.Context, h backend.Handle) error {
	if err := c.step(); err != nil {
		return err
	}
	return c.Backend.Remove(ctx, h)
}

func cloneMem(t testing.TB, from *backend.Mem) *backend.Mem {
	t.Helper()
	to := backend.NewMem()
	for _, k := range backend.Kinds {
		var names []string
		if err := from.List(bg, k, func(fi backend.FileInfo) error {
			names = append(names, fi.Name)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			h := backend.Handle{Kind: k, Name: n}
			data, err := backend.ReadAll(bg, from, h)
			if err != nil {
				t.Fatal(err)
			}
			if err := to.Save(bg, h, data); err != nil {
				t.Fatal(err)
			}
		}
	}
	return to
}

// Every write and removal of prune, in turn, is the last one: after each
// crash check passes, the snapshots restore, and the next prune finishes.
func TestPruneCrashAtEveryStep(t *testing.T) {
	be, cred := newPruneRepo(t)
	rng := rand.New(rand.NewPCG(13, 14))
	a := randomFiles(rng, 120, 6<<10)
	sa := backupOnce(t, be, cred, a, nil)
	b := mutate(rng, a, 40)
	sb := backupOnce(t, be, cred, b, sa)
	c := mutate(rng, b, 40)
	sc := backupOnce(t, be, cred, c, sb)
	forget(t, be, sa)
	forget(t, be, sc)
	opts := PruneOptions{MaxUnused: MaxUnused{Percent: 0}}
	for n := int64(1); ; n++ {
		mem := cloneMem(t, be)
		cb := &crashing{Backend: mem}
		r := openRepo(t, cb, cred)
		cb.left.Store(n + 1) // the lock file is the first write
		_, err := r.Prune(bg, opts)
		if !cb.crashed.Load() {
			if err != nil {
				t.Fatal(err)
			}
			if n < 10 {
				t.Fatalf("prune finished after %d writes: the test does not reach repack and deletion", n)
			}
			t.Logf("prune crashed at each of its %d writes and removals", n-1)
			return
		}
		if _, err := RemoveLocks(bg, mem, AllLocks); err != nil {
			t.Fatal(err)
		}
		mustCheck(t, mem, cred, true)
		restoreEqual(t, mem, cred, sb.ID, b)
		res := prune(t, mem, cred, opts)
		if res.MarksPending != 0 {
			t.Fatalf("crash at %d: the next prune left %d marks", n, res.MarksPending)
		}
		mustCheck(t, mem, cred)
		restoreEqual(t, mem, cred, sb.ID, b)
		if np, _ := count(t, mem, backend.Packs); np == 0 {
			t.Fatal("no packs left")
		}
	}
}

// Backups in a loop, forget and prune in loops: every snapshot left
// restores exactly, and check is clean.
func TestPruneConcurrentWithBackups(t *testing.T) {
	be, cred := newPruneRepo(t)
	const clients = 3
	var (
		mu    sync.Mutex
		want  = map[ID]fileSet{}
		order []*Snapshot
		stop  atomic.Bool
		wg    sync.WaitGroup
		errs  = make(chan error, 16)
	)
	deadline := time.Now().Add(3 * time.Second)
	if testing.Short() {
		deadline = time.Now().Add(time.Second)
	}
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 99))
			fs := randomFiles(rng, 30, 8<<10)
			var parent *Snapshot
			for !stop.Load() {
				fs = mutate(rng, fs, 3)
				b := startBackup(t, be, cred)
				s, err := b.save(fs, parent)
				b.done()
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				want[s.ID], order = fs, append(order, s)
				mu.Unlock()
				parent = s
			}
		}()
	}
	var prunes, swept, kept atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			// forget all but the newest 4
			mu.Lock()
			for len(order) > 4 {
				forget(t, be, order[0])
				delete(want, order[0].ID)
				order = order[1:]
			}
			mu.Unlock()
			r := openRepo(t, be, cred)
			res, err := r.Prune(bg, PruneOptions{MaxUnused: MaxUnused{Percent: 1}})
			if err != nil {
				errs <- fmt.Errorf("prune: %w", err)
				return
			}
			prunes.Add(1)
			swept.Add(int64(res.RemovedPacks))
			kept.Add(int64(res.KeptPacks))
		}
	}()
	for time.Now().Before(deadline) && len(errs) == 0 {
		time.Sleep(50 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	prune(t, be, cred, PruneOptions{MaxUnused: MaxUnused{Percent: 1}})
	for id, fs := range want {
		restoreEqual(t, be, cred, id, fs)
	}
	mustCheck(t, be, cred)
	t.Logf("%d snapshots kept, %d prunes removed %d packs and kept %d marked packs that new snapshots needed", len(want), prunes.Load(), swept.Load(), kept.Load())
	if prunes.Load() < 2 || swept.Load() == 0 {
		t.Fatalf("the test did not exercise prune: %d prunes, %d packs removed", prunes.Load(), swept.Load())
	}
}

// A backup opened before a mark and locked after it must see the mark:
// the view is read again once the lock is visible.
func TestLockReadsMarksAgain(t *testing.T) {
	be, cred := newPruneRepo(t)
	rng := rand.New(rand.NewPCG(15, 16))
	a := randomFiles(rng, 6, 40<<10)
	sa := backupOnce(t, be, cred, a, nil)
	b := mutate(rng, a, 6)
	backupOnce(t, be, cred, b, sa)
	forget(t, be, sa)
	opened := openRepo(t, be, cred) // before the mark
	first := a["f000"][:testChunk]
	if !opened.Known(opened.Hash(first)) {
		t.Fatal("test bug: a's blob is not known before prune")
	}
	holder := startBackup(t, be, cred) // keeps the mark pending
	if res := prune(t, be, cred, PruneOptions{MaxUnused: DefaultMaxUnused}); res.MarksPending != 1 {
		t.Fatalf("want a pending mark: %+v", res)
	}
	l, err := opened.Lock(bg, false, "backup")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Unlock()
	if opened.Known(opened.Hash(first)) {
		t.Fatal("a backup opened before the mark and locked after it trusts a marked pack")
	}
	holder.done()
}

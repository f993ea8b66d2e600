package repo

import (
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// lockingMem is a memory store with object lock as S3 keeps it: a Save
// carries the retention set by RetainWrites, a removal of a retained file
// is refused, a retention is never shortened. Its clock (the server's) is
// apart from the repository's, as a server's is.
type lockingMem struct {
	*backend.Mem
	lock backend.ObjectLock

	mu          sync.Mutex
	now         time.Time
	write       *backend.WriteRetention
	ret         map[backend.Handle]backend.Retention
	unretained  map[backend.Kind]int // Saves without a retention
	refusedDels int
}

var _ backend.Retainer = (*lockingMem)(nil)

func newLockingMem(now time.Time) *lockingMem {
	return &lockingMem{Mem: backend.NewMem(), lock: backend.ObjectLock{Enabled: true}, now: now,
		ret: map[backend.Handle]backend.Retention{}, unretained: map[backend.Kind]int{}}
}

func (m *lockingMem) ObjectLock(context.Context) (backend.ObjectLock, error) { return m.lock, nil }

func (m *lockingMem) RetainWrites(w backend.WriteRetention) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.write = &w
}

func (m *lockingMem) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if err := m.Mem.Save(ctx, h, data); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.write != nil && backend.RetainedKind(h.Kind) {
		m.ret[h] = backend.Retention{Mode: m.write.Mode, Until: m.write.Until()}
	} else {
		m.unretained[h.Kind]++
	}
	return nil
}

func (m *lockingMem) Remove(ctx context.Context, h backend.Handle) error {
	m.mu.Lock()
	r := m.ret[h]
	if r.Retained(m.now) {
		m.refusedDels++
		m.mu.Unlock()
		return &backend.RetainedError{Handle: h, Retention: r}
	}
	delete(m.ret, h)
	m.mu.Unlock()
	return m.Mem.Remove(ctx, h)
}

func (m *lockingMem) Retention(ctx context.Context, h backend.Handle) (backend.Retention, error) {
	if _, err := m.Stat(ctx, h); err != nil {
		return backend.Retention{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ret[h], nil
}

func (m *lockingMem) SetRetention(ctx context.Context, h backend.Handle, r backend.Retention) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r.Until.Before(m.ret[h].Until) {
		return errors.New("refused: an earlier date than the object's")
	}
	m.ret[h] = r
	return nil
}

func (m *lockingMem) until(h backend.Handle) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ret[h].Until
}

// clocks moves the repository's and the server's clocks together (server
// behind by lag).
type clocks struct {
	t     *testing.T
	m     *lockingMem
	start time.Time
}

func newClocks(t *testing.T, m *lockingMem) *clocks {
	c := &clocks{t: t, m: m, start: m.now}
	old := retentionNow
	t.Cleanup(func() { retentionNow = old })
	c.at(0, 0)
	return c
}

const day = 24 * time.Hour

// at sets the repository's clock to start+d and the server's to
// start+d-lag.
func (c *clocks) at(d, lag time.Duration) time.Time {
	now := c.start.Add(d)
	retentionNow = func() time.Time { return now }
	c.m.mu.Lock()
	c.m.now = now.Add(-lag)
	c.m.mu.Unlock()
	return now
}

func immutableRepo(t *testing.T, days int) (*lockingMem, Credential, *clocks) {
	t.Helper()
	m := newLockingMem(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	c := newClocks(t, m)
	cfg := pruneTestConfig()
	cfg.Immutable = &Immutability{Days: days, Mode: backend.Compliance}
	cred := Credential{KeyFile: NewKeyFileSecret()}
	if _, err := Init(bg, m, cred, cfg); err != nil {
		t.Fatal(err)
	}
	return m, cred, c
}

func handles(t *testing.T, be backend.Backend, k backend.Kind) []backend.Handle {
	t.Helper()
	var hs []backend.Handle
	if err := be.List(bg, k, func(fi backend.FileInfo) error {
		hs = append(hs, backend.Handle{Kind: k, Name: fi.Name})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return hs
}

func TestImmutableInitChecksTheStore(t *testing.T) {
	cfg := pruneTestConfig()
	cfg.Immutable = &Immutability{Days: 7, Mode: backend.Compliance}
	cred := Credential{KeyFile: NewKeyFileSecret()}
	plain := backend.NewMem()
	if _, err := Init(bg, plain, cred, cfg); err == nil || !strings.Contains(err.Error(), "object lock") {
		t.Fatalf("init --immutable on a store without object lock: %v", err)
	}
	if n, _ := count(t, plain, backend.Keys); n != 0 {
		t.Fatalf("a refused init wrote %d keys", n)
	}
	off := newLockingMem(time.Now())
	off.lock.Enabled = false
	if _, err := Init(bg, off, cred, cfg); err == nil || !strings.Contains(err.Error(), "--object-lock-enabled-for-bucket") {
		t.Fatalf("init --immutable on a bucket without object lock: %v", err)
	}
	def := newLockingMem(time.Now())
	def.lock.Default = backend.WriteRetention{Mode: backend.Governance, Period: day}
	if _, err := Init(bg, def, cred, cfg); err == nil || !strings.Contains(err.Error(), "default retention") {
		t.Fatalf("init --immutable on a bucket with a default retention: %v", err)
	}
	for _, bad := range []string{`"immutable":{"days":0,"mode":"COMPLIANCE"}`, `"immutable":{"days":7,"mode":"LOOSE"}`} {
		data := `{"version":1,"id":"x","chunker":{"algorithm":"jc-v1.0.0","min":1,"avg":2,"max":3},"compression":"off","pack_size":10,` + bad + `}`
		if _, err := parseConfig([]byte(data)); err == nil {
			t.Fatalf("config with %s accepted", bad)
		}
	}
}

func TestImmutableWritesAreRetained(t *testing.T) {
	m, cred, c := immutableRepo(t, 10)
	want := c.at(0, 0).Add(10 * day)
	rng := rand.New(rand.NewPCG(1, 2))
	backupOnce(t, m, cred, randomFiles(rng, 6, 40<<10), nil)
	for _, k := range []backend.Kind{backend.Config, backend.Keys, backend.Packs, backend.Indexes, backend.Snapshots} {
		hs := handles(t, m, k)
		if len(hs) == 0 {
			t.Fatalf("no %s written", k)
		}
		for _, h := range hs {
			if u := m.until(h); u.Before(want) || u.After(want.Add(2*time.Second)) {
				t.Errorf("%s retained until %v, want %v", h, u, want)
			}
		}
	}
	if m.unretained[backend.Locks] == 0 {
		t.Error("the backup's lock was written with a retention")
	}
	for k, n := range m.unretained {
		if backend.RetainedKind(k) {
			t.Errorf("%d %s files written without a retention", n, k)
		}
	}
	// a lock is removable at once
	if n, _ := count(t, m, backend.Locks); n != 0 {
		t.Fatalf("%d locks left", n)
	}
}

func TestImmutableForgetAndPrune(t *testing.T) {
	m, cred, c := immutableRepo(t, 10)
	rng := rand.New(rand.NewPCG(3, 4))
	files1 := randomFiles(rng, 6, 40<<10)
	s1 := backupOnce(t, m, cred, files1, nil)
	files2 := randomFiles(rng, 6, 40<<10)
	s2 := backupOnce(t, m, cred, files2, nil)
	s1Snap := backend.Handle{Kind: backend.Snapshots, Name: s1.ID.String()}
	s1Until := m.until(s1Snap)

	// a snapshot in its retention cannot be forgotten: refused before the
	// store is asked, and said so
	r := openRepo(t, m, cred)
	removed, err := r.ForgetSnapshots(bg, []ID{s1.ID})
	if !errors.Is(err, backend.ErrRetained) || !strings.Contains(err.Error(), "retained until "+s1Until.Format(time.RFC3339)) || len(removed) != 0 {
		t.Fatalf("forget of a retained snapshot: %v, %v", removed, err)
	}
	if m.refusedDels != 0 {
		t.Fatalf("forget tried %d removals the store refused", m.refusedDels)
	}

	// day 6: less than half of the 10 days left: prune extends what the
	// snapshots need, not the snapshot files
	now := c.at(6*day, 0)
	res := prune(t, m, cred, PruneOptions{MaxUnused: DefaultMaxUnused})
	if res.RetentionExtended == 0 {
		t.Fatalf("day 6: nothing extended: %+v", res)
	}
	for _, k := range []backend.Kind{backend.Config, backend.Keys, backend.Packs, backend.Indexes} {
		for _, h := range handles(t, m, k) {
			if u := m.until(h); u.Before(now.Add(10 * day)) {
				t.Errorf("day 6: %s retained until %v, want at least %v", h, u, now.Add(10*day))
			}
		}
	}
	if u := m.until(s1Snap); !u.Equal(s1Until) {
		t.Errorf("snapshot file's retention moved from %v to %v", s1Until, u)
	}
	// a dry run changes no date
	c.at(6*day, 0)
	before := m.until(backend.Handle{Kind: backend.Config, Name: "config"})
	if res := prune(t, m, cred, PruneOptions{MaxUnused: DefaultMaxUnused, DryRun: true}); res.RetentionExtended != 0 {
		t.Errorf("a dry run extended %d files", res.RetentionExtended)
	}
	if u := m.until(backend.Handle{Kind: backend.Config, Name: "config"}); !u.Equal(before) {
		t.Errorf("a dry run moved the config's retention from %v to %v", before, u)
	}
	// a second prune the same day has nothing to extend
	if res := prune(t, m, cred, PruneOptions{MaxUnused: DefaultMaxUnused}); res.RetentionExtended != 0 {
		t.Errorf("second prune on day 6 extended %d files", res.RetentionExtended)
	}

	// day 11: the snapshot's own retention has passed, forget works; its
	// packs were extended to day 16: prune keeps them and says until when
	c.at(11*day, 0)
	r = openRepo(t, m, cred)
	if removed, err := r.ForgetSnapshots(bg, []ID{s1.ID}); err != nil || len(removed) != 1 {
		t.Fatalf("day 11: forget: %v, %v", removed, err)
	}
	packsBefore, _ := count(t, m, backend.Packs)
	res = prune(t, m, cred, PruneOptions{MaxUnused: DefaultMaxUnused})
	if res.RetainedPacks == 0 || res.RemovedPacks != 0 || res.RetainedUntil == "" {
		t.Fatalf("day 11: prune of retained garbage: %+v", res)
	}
	if !strings.Contains(strings.Join(res.Notes, "\n"), "retained by the storage's object lock until "+res.RetainedUntil) {
		t.Fatalf("day 11: prune does not say until when: %q", res.Notes)
	}
	if m.refusedDels != 0 {
		t.Fatalf("day 11: prune tried %d removals the store refused", m.refusedDels)
	}
	if n, _ := count(t, m, backend.Packs); n != packsBefore {
		t.Fatalf("day 11: %d packs, want %d", n, packsBefore)
	}
	if n, _ := count(t, m, backend.Marks); n == 0 {
		t.Fatal("day 11: the mark of the retained packs is gone")
	}
	mustCheck(t, m, cred)
	restoreEqual(t, m, cred, s2.ID, files2)

	// day 17, the server's clock a day behind: prune takes the date for
	// passed, the store refuses, prune says so and fails; nothing is lost
	c.at(17*day, day)
	r = openRepo(t, m, cred)
	res, err = r.Prune(bg, PruneOptions{MaxUnused: DefaultMaxUnused})
	if err == nil || !errors.Is(err, backend.ErrRetained) || len(res.Refused) == 0 || m.refusedDels == 0 {
		t.Fatalf("day 17, server behind: %+v, %v", res, err)
	}
	if !strings.Contains(err.Error(), "refused") {
		t.Fatalf("day 17: the error does not say the storage refused: %v", err)
	}
	mustCheck(t, m, cred, true)
	restoreEqual(t, m, cred, s2.ID, files2)

	// clocks agree again: the packs go, then the marks
	c.at(17*day, 0)
	res = prune(t, m, cred, PruneOptions{MaxUnused: DefaultMaxUnused})
	if res.RemovedPacks == 0 || res.RetainedPacks != 0 {
		t.Fatalf("day 17: %+v", res)
	}
	if n, _ := count(t, m, backend.Marks); n != 0 {
		t.Fatalf("day 17: %d marks left", n)
	}
	mustCheck(t, m, cred)
	restoreEqual(t, m, cred, s2.ID, files2)
}

// An index file that names a garbage pack and a live one is needed (and
// extended) only until the sweep has written the live one's entries into
// a new file; then it is left to expire, and the garbage goes: the
// extension never keeps garbage forever.
func TestImmutableIndexFileExpiresOnceRewritten(t *testing.T) {
	m, cred, c := immutableRepo(t, 10)
	rng := rand.New(rand.NewPCG(5, 6))
	shared := randomFiles(rng, 4, 30<<10)
	s1 := backupOnce(t, m, cred, shared, nil)
	// the same content under other names: s2 writes only its tree, and
	// s1's index file names s1's tree pack (garbage once s1 is gone) and
	// the data both use
	s2files := fileSet{}
	for k, v := range shared {
		s2files["copy-"+k] = v
	}
	s2 := backupOnce(t, m, cred, s2files, nil)
	opts := PruneOptions{MaxUnused: MaxUnused{Unlimited: true}}
	c.at(6*day, 0)
	prune(t, m, cred, opts) // everything extended to day 16
	c.at(11*day, 0)
	r := openRepo(t, m, cred)
	if _, err := r.ForgetSnapshots(bg, []ID{s1.ID}); err != nil {
		t.Fatal(err)
	}
	var retainedIdx int
	removedOn := 0
	for d := 11; d <= 40 && removedOn == 0; d++ {
		c.at(time.Duration(d)*day, 0)
		res := prune(t, m, cred, opts)
		retainedIdx += res.RetainedIndexFiles
		if res.RemovedPacks > 0 {
			removedOn = d
		}
		if m.refusedDels != 0 {
			t.Fatalf("day %d: %d refused removals", d, m.refusedDels)
		}
		mustCheck(t, m, cred)
		restoreEqual(t, m, cred, s2.ID, s2files)
	}
	if removedOn == 0 {
		t.Fatal("the garbage of s1 was never deleted: its index file is extended forever")
	}
	if retainedIdx == 0 {
		t.Fatal("no index file held the garbage back: the test did not reach its case")
	}
	// the tree pack's own retention ends on day 16; its index file was
	// extended for the last time before that (to day 26 at most), then
	// rewritten and left to expire
	if removedOn > 27 {
		t.Fatalf("the garbage went on day %d, want by day 27", removedOn)
	}
	if n, _ := count(t, m, backend.Marks); n != 0 {
		t.Fatalf("%d marks left", n)
	}
}

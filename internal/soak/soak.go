package soak

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Config says what to run. Zero fields take the defaults of bench/soak.
type Config struct {
	Bin      string        // the stillpoint binary
	Dir      string        // work directory: sources, repository, restores
	Duration time.Duration // how long clients back up and prune loops
	Clients  int
	KeepLast int   // forget --keep-last, per client (each has its own --host)
	Files    int   // files in each client's tree at the start
	MaxSize  int64 // the largest file
	Seed     uint64
	Password string
	// Init makes the repository in dir; nil runs `stillpoint init`.
	Init func(dir string) error
	// PruneLoop is the commands run one after another, again and again,
	// beside the clients (--json is added); nil is forget --keep-last
	// KeepLast --prune.
	PruneLoop [][]string
	// PrunePause is a wait after each round of PruneLoop that pruned, so
	// that backups also run while no prune does (for the throughput
	// comparison); 0 runs prunes back to back.
	PrunePause time.Duration
	// MinPrunes keeps the loops going past Duration until the prune loop
	// has run this many prunes (a slow machine runs fewer in the same
	// time), but not past MaxDuration (default: three times Duration).
	MinPrunes   int
	MaxDuration time.Duration
	// Log gets progress lines; nil discards them.
	Log func(format string, args ...any)
}

func (c *Config) defaults() {
	if c.Duration == 0 {
		c.Duration = 10 * time.Minute
	}
	if c.Clients == 0 {
		c.Clients = 4
	}
	if c.KeepLast == 0 {
		c.KeepLast = 5
	}
	if c.Files == 0 {
		c.Files = 2000
	}
	if c.MaxSize == 0 {
		c.MaxSize = 3 << 20
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	if c.Password == "" {
		c.Password = "stillpoint-soak-password"
	}
	if c.PruneLoop == nil {
		c.PruneLoop = [][]string{{"forget", "--keep-last", fmt.Sprint(c.KeepLast), "--prune"}}
	}
	if c.Log == nil {
		c.Log = func(string, ...any) {}
	}
	if c.MaxDuration < c.Duration {
		c.MaxDuration = 3 * c.Duration
	}
}

// Backup is one client's backup.
type Backup struct {
	Client    int
	Round     int
	Start     time.Duration // since the loops started
	Wall      time.Duration // of the process
	Snapshot  string
	Seconds   float64 // the backup's own duration_secs
	BytesRead int64
	FilesRead int64
	DataAdded int64
	Stored    int64
	Bytes     int64 // size of the tree
	Files     int64
	Change    Change // what the round changed before this backup
	// PruneOverlap is the part of Wall during which a prune ran.
	PruneOverlap float64
}

// MBps is the content read per second of the backup's own duration.
func (b Backup) MBps() float64 {
	if b.Seconds <= 0 {
		return 0
	}
	return float64(b.BytesRead) / 1e6 / b.Seconds
}

// PruneRun is one command of the prune loop.
type PruneRun struct {
	Command  string
	Start    time.Duration
	Wall     time.Duration
	Final    bool     // run after the loops stopped
	Removed  []string // snapshots forget removed
	Pruned   bool     // a prune ran (its summary is below)
	Result   pruneResult
	ExitCode int
}

// pruneResult is the part of prune's --json summary the report uses.
type pruneResult struct {
	Snapshots     int   `json:"snapshots"`
	Packs         int   `json:"packs"`
	Bytes         int64 `json:"bytes"`
	GarbagePacks  int   `json:"garbage_packs"`
	GarbageBytes  int64 `json:"garbage_bytes"`
	RepackPacks   int   `json:"repack_packs"`
	RepackBytes   int64 `json:"repack_bytes"`
	RepackWritten int64 `json:"repack_written_bytes"`
	MarksSwept    int   `json:"marks_swept"`
	MarksPending  int   `json:"marks_pending"`
	RemovedPacks  int   `json:"removed_packs"`
	RemovedBytes  int64 `json:"removed_bytes"`
	KeptPacks     int   `json:"kept_packs"`
	KeptBytes     int64 `json:"kept_bytes"`
	PendingPacks  int   `json:"pending_packs"`
	PendingBytes  int64 `json:"pending_bytes"`
}

// Sample is the repository's size at a moment.
type Sample struct {
	At    time.Duration
	Bytes int64
}

// Report is what a run did and found. Failures empty means it passed.
type Report struct {
	Config   Config
	Started  time.Time
	Loop     time.Duration // how long the loops really ran
	Sources  []int64       // each client's tree at the start, bytes
	Backups  []Backup
	Prunes   []PruneRun
	Sizes    []Sample
	Final    map[string]int64 // repository size after: "loops", "forget", "prune", "prune --now"
	Left     int              // snapshots listed at the end
	Restored int              // snapshots restored and compared
	Pruned   bool             // the final prune and prune --now completed
	Restore  time.Duration    // time of all restores and comparisons
	Check    time.Duration
	Failures []string
	mu       sync.Mutex
}

func (r *Report) fail(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Failures = append(r.Failures, fmt.Sprintf(format, args...))
}

func (r *Report) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.Failures) > 0
}

// runner runs the binary against the repository.
type runner struct {
	cfg  Config
	repo string
	env  []string
}

type result struct {
	args           []string
	code           int
	stdout, stderr string
	wall           time.Duration
}

func (r result) String() string {
	return fmt.Sprintf("stillpoint %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, tail(r.stdout), tail(r.stderr))
}

func tail(s string) string {
	if len(s) > 3000 {
		return "…" + s[len(s)-3000:]
	}
	return s
}

// commandTimeout bounds one command, so a hung process fails the run rather
// than stopping it.
const commandTimeout = 15 * time.Minute

// run runs one command; cache names the cache directory (one per client,
// as on separate hosts). An error is returned only when the process could
// not run; a failing command has code != 0.
func (rn *runner) run(ctx context.Context, cache string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, rn.cfg.Bin, append([]string{"--repo", rn.repo}, args...)...)
	// a new slice: the commands of all clients share rn.env
	cmd.Env = append(slices.Clip(rn.env), "STILLPOINT_CACHE_DIR="+filepath.Join(rn.cfg.Dir, "cache", cache))
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	res := result{args: args, stdout: out.String(), stderr: errb.String(), wall: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.code = ee.ExitCode()
	default:
		return res, fmt.Errorf("stillpoint %s: %w", strings.Join(args, " "), err)
	}
	return res, nil
}

// events decodes --json output, one object (or array) a line; other lines
// are skipped.
func events(out string) []json.RawMessage {
	var evs []json.RawMessage
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || (line[0] != '{' && line[0] != '[') || !json.Valid([]byte(line)) {
			continue
		}
		evs = append(evs, json.RawMessage(line))
	}
	return evs
}

// Run runs the soak in cfg.Dir (which it creates) and returns its report;
// the run passed when the report has no failures. The error is for a run
// that could not be carried out at all (the work directory, the sources).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	rep := &Report{Config: cfg, Final: map[string]int64{}}
	rn := &runner{cfg: cfg, repo: filepath.Join(cfg.Dir, "repo")}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "STILLPOINT_") {
			rn.env = append(rn.env, kv)
		}
	}
	rn.env = append(rn.env, "STILLPOINT_PASSWORD="+cfg.Password, "STILLPOINT_KEY_DIR="+filepath.Join(cfg.Dir, "keys"))
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}

	// sources
	trees := make([]*tree, cfg.Clients)
	errs := make([]error, cfg.Clients)
	var wg sync.WaitGroup
	for c := range cfg.Clients {
		trees[c] = newTree(filepath.Join(cfg.Dir, "src", fmt.Sprintf("client-%d", c)), cfg.Seed*1000+uint64(c), cfg.KeepLast, cfg.MaxSize)
		wg.Go(func() { errs[c] = trees[c].create(cfg.Files) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("making the sources: %w", err)
	}
	if cfg.Init != nil {
		if err := cfg.Init(rn.repo); err != nil {
			return nil, fmt.Errorf("init: %w", err)
		}
	} else {
		res, err := rn.run(ctx, "init", "init")
		if err != nil {
			return nil, err
		}
		if res.code != 0 {
			return nil, fmt.Errorf("init: %s", res)
		}
	}

	s := &soak{cfg: cfg, rn: rn, rep: rep, trees: trees, manifests: map[string]manifest{}, owner: map[string]int{},
		removed: map[string]bool{}}
	s.loops(ctx)
	s.verify(ctx)
	return rep, nil
}

type soak struct {
	cfg   Config
	rn    *runner
	rep   *Report
	trees []*tree
	start time.Time

	mu        sync.Mutex
	manifests map[string]manifest // snapshot → what it must restore to
	owner     map[string]int      // snapshot → client
	removed   map[string]bool     // snapshots forget removed
	pruning   []span              // [start, end) of each prune command that pruned, and the running one
	prunes    int                 // prune loop commands that pruned
}

type span struct{ from, to time.Duration }

func (s *soak) since() time.Duration { return time.Since(s.start) }

// loops runs the clients, the prune loop and the size sampler for the
// duration.
func (s *soak) loops(ctx context.Context) {
	s.start = time.Now()
	s.rep.Started = s.start
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	deadline, last := s.start.Add(s.cfg.Duration), s.start.Add(s.cfg.MaxDuration)
	var extended sync.Once
	stop := func() bool {
		if ctx.Err() != nil || s.rep.failed() {
			return true
		}
		now := time.Now()
		if now.Before(deadline) {
			return false
		}
		s.mu.Lock()
		prunes := s.prunes
		s.mu.Unlock()
		if prunes >= s.cfg.MinPrunes || now.After(last) {
			return true
		}
		extended.Do(func() {
			s.cfg.Log("%s: %d of %d prunes so far: the loops go on until there are %d (at most until %s)",
				s.since().Round(time.Second), prunes, s.cfg.MinPrunes, s.cfg.MinPrunes, s.cfg.MaxDuration)
		})
		return false
	}
	var wg sync.WaitGroup
	for c := range s.cfg.Clients {
		wg.Go(func() { s.client(ctx, c, stop) })
	}
	wg.Go(func() { s.pruneLoop(ctx, stop) })
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			s.sample()
			select {
			case <-ctx.Done():
				return
			case <-time.After(2 * time.Second):
			}
		}
	}()
	progress := time.NewTicker(30 * time.Second)
	defer progress.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-progress.C:
			s.mu.Lock()
			nb, np := len(s.rep.Backups), len(s.rep.Prunes)
			s.mu.Unlock()
			s.cfg.Log("%s: %d backups, %d prune loop commands, repository %s", s.since().Round(time.Second), nb, np, mib(s.repoSize()))
		}
	}
	s.rep.Loop = s.since()
	cancel()
	<-sampled
	s.rep.Final["loops"] = s.repoSize()
}

func (s *soak) sample() {
	n := s.repoSize()
	s.mu.Lock()
	s.rep.Sizes = append(s.rep.Sizes, Sample{At: s.since(), Bytes: n})
	s.mu.Unlock()
}

// repoSize is the size of the repository's files; files removed while it
// walks are skipped.
func (s *soak) repoSize() int64 {
	var n int64
	_ = filepath.WalkDir(s.rn.repo, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// client changes its tree and backs it up until stop.
func (s *soak) client(ctx context.Context, c int, stop func() bool) {
	t := s.trees[c]
	host := fmt.Sprintf("client-%d", c)
	var prev manifest
	for round := 0; !stop(); round++ {
		var ch Change
		if round > 0 {
			var err error
			if ch, err = t.change(round); err != nil {
				s.rep.fail("%s round %d: changing the tree: %v", host, round, err)
				return
			}
		}
		m, _, err := takeManifest(t.root, prev)
		if err != nil {
			s.rep.fail("%s round %d: manifest: %v", host, round, err)
			return
		}
		prev = m
		if round == 0 {
			s.mu.Lock()
			s.rep.Sources = append(s.rep.Sources, m.bytes())
			s.mu.Unlock()
		}
		b := Backup{Client: c, Round: round, Start: s.since(), Change: ch}
		res, err := s.rn.run(ctx, host, "--json", "backup", "--host", host, "--snapshot", "off", t.root)
		b.Wall = res.wall
		if err != nil {
			if ctx.Err() == nil {
				s.rep.fail("%s round %d: %v", host, round, err)
			}
			return
		}
		if res.code != 0 {
			s.rep.fail("%s round %d: backup failed: %s", host, round, res)
			return
		}
		var sum struct {
			Type       string `json:"type"`
			SnapshotID string `json:"snapshot_id"`
			Stats      struct {
				Files        int64   `json:"files"`
				Bytes        int64   `json:"bytes"`
				BytesRead    int64   `json:"bytes_read"`
				FilesRead    int64   `json:"files_read"`
				DataAdded    int64   `json:"data_added"`
				StoredAdded  int64   `json:"stored_added"`
				DurationSecs float64 `json:"duration_secs"`
			} `json:"stats"`
			Warnings []any `json:"warnings"`
			Problems []any `json:"problems"`
		}
		for _, ev := range events(res.stdout) {
			var e struct{ Type string }
			if json.Unmarshal(ev, &e) == nil && e.Type == "summary" {
				_ = json.Unmarshal(ev, &sum)
			}
		}
		if sum.SnapshotID == "" {
			s.rep.fail("%s round %d: no snapshot id in the backup's output: %s", host, round, res)
			return
		}
		if len(sum.Problems) > 0 || len(sum.Warnings) > 0 {
			s.rep.fail("%s round %d: backup %s reported problems or warnings: %s", host, round, sum.SnapshotID[:8], res)
		}
		st := sum.Stats
		b.Snapshot, b.Seconds, b.BytesRead, b.FilesRead = sum.SnapshotID, st.DurationSecs, st.BytesRead, st.FilesRead
		b.DataAdded, b.Stored, b.Bytes, b.Files = st.DataAdded, st.StoredAdded, st.Bytes, st.Files
		if st.Bytes != m.bytes() {
			s.rep.fail("%s round %d: snapshot %s holds %d bytes of files, the tree %d", host, round, sum.SnapshotID[:8], st.Bytes, m.bytes())
		}
		s.mu.Lock()
		s.rep.Backups = append(s.rep.Backups, b)
		if !s.removed[b.Snapshot] {
			s.manifests[b.Snapshot] = m
		}
		s.owner[b.Snapshot] = c
		s.mu.Unlock()
	}
}

// pruneLoop runs cfg.PruneLoop until stop.
func (s *soak) pruneLoop(ctx context.Context, stop func() bool) {
	for !stop() {
		ran := false
		for _, args := range s.cfg.PruneLoop {
			p, ok := s.pruneCommand(ctx, args, false)
			if !ok {
				return
			}
			ran = ran || p.Pruned
		}
		wait := s.cfg.PrunePause
		if !ran {
			wait = time.Second // nothing was forgotten yet: give the clients a moment
		}
		if wait > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}

// pruneCommand runs one command of the prune loop with --json and records
// it; ok is false when it failed (recorded as a failure).
func (s *soak) pruneCommand(ctx context.Context, args []string, final bool) (PruneRun, bool) {
	p := PruneRun{Command: strings.Join(args, " "), Start: s.since(), Final: final}
	s.mu.Lock()
	idx := len(s.pruning)
	if !final {
		s.pruning = append(s.pruning, span{p.Start, -1})
	}
	s.mu.Unlock()
	res, err := s.rn.run(ctx, "prune", append([]string{"--json"}, args...)...)
	p.Wall, p.ExitCode = res.wall, res.code
	if err != nil {
		s.rep.fail("%v", err)
		return p, false
	}
	for _, ev := range events(res.stdout) {
		var e struct {
			Type    string       `json:"type"`
			Removed []string     `json:"removed"`
			Result  *pruneResult `json:"result"`
		}
		if json.Unmarshal(ev, &e) != nil || e.Type != "summary" {
			continue
		}
		p.Removed = append(p.Removed, e.Removed...)
		if e.Result != nil {
			p.Pruned, p.Result = true, *e.Result
		}
	}
	s.mu.Lock()
	for _, id := range p.Removed {
		s.removed[id] = true
		delete(s.manifests, id)
	}
	if !final {
		if p.Pruned {
			s.prunes++
			s.pruning[idx].to = p.Start + p.Wall
		} else {
			s.pruning[idx].to = p.Start // forget alone: not a prune
		}
	}
	s.rep.Prunes = append(s.rep.Prunes, p)
	s.mu.Unlock()
	if res.code != 0 {
		s.rep.fail("prune loop: %s", res)
		return p, false
	}
	return p, true
}

// verify runs after the loops: a last forget, every snapshot restored and
// compared, check --read-data, prune and prune --now.
func (s *soak) verify(ctx context.Context) {
	cfg, rep := s.cfg, s.rep
	s.overlaps()
	if rep.failed() {
		cfg.Log("the loops failed; checking the repository as it is")
	}
	cfg.Log("loops ended after %s: %d backups, %d prune loop commands; a last forget", rep.Loop.Round(time.Second), len(rep.Backups), len(rep.Prunes))
	// the backups that ended after the last forget leave more than
	// KeepLast per client: a last forget (without prune) before counting
	if _, ok := s.pruneCommand(ctx, []string{"forget", "--keep-last", fmt.Sprint(cfg.KeepLast)}, true); !ok {
		return
	}
	rep.Final["forget"] = s.repoSize()

	res, err := s.rn.run(ctx, "verify", "--json", "snapshots")
	if err != nil || res.code != 0 {
		rep.fail("snapshots: %v %s", err, res)
		return
	}
	var snaps []struct {
		ID   string `json:"id"`
		Host string `json:"host"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(res.stdout)), &snaps); err != nil {
		rep.fail("snapshots --json: %v: %s", err, res)
		return
	}
	rep.Left = len(snaps)
	listed := map[string]bool{}
	perHost := map[string]int{}
	for _, sn := range snaps {
		listed[sn.ID] = true
		perHost[sn.Host]++
		c, ok := s.owner[sn.ID]
		switch {
		case !ok:
			rep.fail("snapshot %s (host %s) was written by no client", sn.ID[:8], sn.Host)
		case sn.Host != fmt.Sprintf("client-%d", c):
			rep.fail("snapshot %s has host %s, written by client-%d", sn.ID[:8], sn.Host, c)
		case s.removed[sn.ID]:
			rep.fail("snapshot %s was removed by forget and is still listed", sn.ID[:8])
		}
	}
	backups := map[int]int{}
	for _, b := range rep.Backups {
		backups[b.Client]++
		if !listed[b.Snapshot] && !s.removed[b.Snapshot] {
			rep.fail("snapshot %s of client-%d round %d is gone, and forget did not remove it", b.Snapshot[:8], b.Client, b.Round)
		}
	}
	for c := range cfg.Clients {
		host := fmt.Sprintf("client-%d", c)
		if want := min(cfg.KeepLast, backups[c]); perHost[host] != want {
			rep.fail("%s has %d snapshots, want %d (forget --keep-last %d)", host, perHost[host], want, cfg.KeepLast)
		}
	}

	// restore each, compare with its manifest
	cfg.Log("restoring and comparing %d snapshots", len(snaps))
	start := time.Now()
	for _, sn := range snaps {
		m, ok := s.manifests[sn.ID]
		if !ok {
			continue // reported above
		}
		if s.restoreAndCompare(ctx, sn.ID, s.trees[s.owner[sn.ID]].root, m) {
			rep.Restored++
		}
	}
	rep.Restore = time.Since(start)

	cfg.Log("check --read-data")
	start = time.Now()
	res, err = s.rn.run(ctx, "verify", "check", "--read-data")
	rep.Check = time.Since(start)
	if err != nil || res.code != 0 || !clean(res) {
		rep.fail("check --read-data is not clean: %v %s", err, res)
	}
	cfg.Log("prune, then prune --now")
	if _, ok := s.pruneCommand(ctx, []string{"prune"}, true); !ok {
		return
	}
	rep.Final["prune"] = s.repoSize()
	// nothing else runs: its own mark lists no lock, and the earlier ones
	// wait for locks that are gone, so one prune sweeps them all
	if n := marks(s.rn.repo); n > 0 {
		rep.fail("%d marks left by a prune that ran alone", n)
	}
	if _, ok := s.pruneCommand(ctx, []string{"prune", "--now"}, true); !ok {
		return
	}
	rep.Final["prune --now"] = s.repoSize()
	rep.Pruned = true
	if n := marks(s.rn.repo); n > 0 {
		rep.fail("%d marks left after prune --now", n)
	}
	res, err = s.rn.run(ctx, "verify", "check")
	if err != nil || res.code != 0 || !clean(res) {
		rep.fail("check after prune --now is not clean: %v %s", err, res)
	}
}

// marks counts the files in gc/ (temporary files of an unfinished write
// left out).
func marks(repo string) int {
	ents, _ := os.ReadDir(filepath.Join(repo, "gc"))
	n := 0
	for _, e := range ents {
		if !e.IsDir() && !strings.HasPrefix(e.Name(), ".tmp-") {
			n++
		}
	}
	return n
}

// clean is a check that passed and said nothing on stderr of an error or a
// warning.
func clean(r result) bool {
	return r.code == 0 && !strings.Contains(r.stderr, "error") && !strings.Contains(r.stderr, "warning")
}

func (s *soak) restoreAndCompare(ctx context.Context, id, src string, want manifest) bool {
	target := filepath.Join(s.cfg.Dir, "restore", id[:12])
	defer os.RemoveAll(target)
	res, err := s.rn.run(ctx, "verify", "restore", id, "--target", target)
	if err != nil || res.code != 0 {
		s.rep.fail("restore %s: %v %s", id[:8], err, res)
		return false
	}
	got, _, err := takeManifest(filepath.Join(target, src), nil)
	if err != nil {
		s.rep.fail("restore %s: reading the restored tree: %v", id[:8], err)
		return false
	}
	if d := diff(got, want); d != "" {
		s.rep.fail("snapshot %s does not restore as backed up: %s", id[:8], d)
		return false
	}
	return true
}

// overlaps sets each backup's PruneOverlap: the part of its wall time
// during which a prune command that pruned was running.
func (s *soak) overlaps() {
	spans := append([]span(nil), s.pruning...)
	sort.Slice(spans, func(i, j int) bool { return spans[i].from < spans[j].from })
	for i := range s.rep.Backups {
		b := &s.rep.Backups[i]
		from, to := b.Start, b.Start+b.Wall
		var in time.Duration
		for _, sp := range spans {
			lo, hi := max(from, sp.from), min(to, sp.to)
			if hi > lo {
				in += hi - lo
			}
		}
		if b.Wall > 0 {
			b.PruneOverlap = float64(in) / float64(b.Wall)
		}
	}
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// WriteRaw writes one line per backup and per prune loop command, tab
// separated, times in seconds since the loops started.
func (r *Report) WriteRaw(w io.Writer) {
	fmt.Fprintln(w, "kind\tclient\tround\tstart_s\twall_s\tsnapshot\tbackup_s\tbytes_read\tfiles_read\tdata_added\tstored_added\ttree_bytes\tprune_overlap")
	for _, b := range r.Backups {
		fmt.Fprintf(w, "backup\t%d\t%d\t%.2f\t%.2f\t%s\t%.2f\t%d\t%d\t%d\t%d\t%d\t%.2f\n", b.Client, b.Round, b.Start.Seconds(), b.Wall.Seconds(),
			b.Snapshot[:8], b.Seconds, b.BytesRead, b.FilesRead, b.DataAdded, b.Stored, b.Bytes, b.PruneOverlap)
	}
	fmt.Fprintln(w, "kind\tcommand\tfinal\tstart_s\twall_s\texit\tsnapshots_removed\tpruned\tmarks_swept\tmarks_pending\tremoved_packs\tremoved_bytes\tgarbage_packs\trepack_packs\trepack_bytes\trepack_written_bytes\tkept_packs\tpending_bytes")
	for _, p := range r.Prunes {
		x := p.Result
		fmt.Fprintf(w, "prune\t%s\t%v\t%.2f\t%.2f\t%d\t%d\t%v\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", p.Command, p.Final, p.Start.Seconds(), p.Wall.Seconds(), p.ExitCode,
			len(p.Removed), p.Pruned, x.MarksSwept, x.MarksPending, x.RemovedPacks, x.RemovedBytes, x.GarbagePacks, x.RepackPacks, x.RepackBytes, x.RepackWritten, x.KeptPacks, x.PendingBytes)
	}
	fmt.Fprintln(w, "kind\tat_s\trepository_bytes")
	for _, sm := range r.Sizes {
		fmt.Fprintf(w, "size\t%.1f\t%d\n", sm.At.Seconds(), sm.Bytes)
	}
}

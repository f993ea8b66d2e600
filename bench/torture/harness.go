//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

type config struct {
	quick       bool
	k           int
	workloads   []string
	modes       []string
	keep        bool
	workdir     string
	results     string
	commandLine string
	stillpoint  string
	// stillpointRev names the build (a commit) in the results
	stillpointRev string
	restic        string
	kopia         string

	bigFileMiB, bigRate int
	seqBlocks           int
	gitOutside          bool
	// kRare backups per cell of the workloads whose tears are rare
	// (rareTears): they show in a few percent of snapshots, if at all
	kRare int
	// rareModes are the modes the rareTears workloads run in
	rareModes []string
	// pressure: the workloads run under dirty-page pressure, the dd file
	// on the source's filesystem ("fs") or in the work directory
	pressure             []string
	pressureOn           string
	pressureMiB          int
	holdTimeout          time.Duration
	sqliteAccounts       int
	pgScale, pgRate      int
	burstMin, burstMax   time.Duration
	inactivity, maxWait  time.Duration
	warmupMin, warmupMax time.Duration
	baseline             time.Duration
	// paired: before each backup, a window of the writer alone this long
	// (started and stopped as for a backup), so that every backup's
	// stalls have the writer alone at the same moment's load to be
	// compared with
	paired   time.Duration
	timeout  time.Duration
	toolWait time.Duration
}

// A mode is one way of backing up the live data.
type mode struct {
	name  string
	title string   // for the table
	fs    string   // where the workload runs: "dir" (the work directory), "btrfs" or "xfs" (loop images)
	tool  string   // cp, restic, kopia, stillpoint
	args  []string // stillpoint backup flags
	job   string   // stillpoint job file kind: "inactivity" or "writer"
	// hold is the mode's --hold (quiesce.hold in a job file): "off" or
	// "writers"; given only to a stillpoint that has the flag
	hold string
}

var allModes = []mode{
	{name: "cp", title: "`cp -a`", fs: "dir", tool: "cp"},
	{name: "restic", title: "restic", fs: "dir", tool: "restic"},
	{name: "kopia", title: "kopia", fs: "dir", tool: "kopia"},
	{name: "read", title: "stillpoint `read`", fs: "dir", tool: "stillpoint", args: []string{"--snapshot", "off", "--open-files", "read"}},
	{name: "retry", title: "stillpoint `retry`", fs: "dir", tool: "stillpoint", args: []string{"--snapshot", "off", "--open-files", "retry"}},
	{name: "stage", title: "stillpoint `stage`", fs: "dir", tool: "stillpoint", args: []string{"--snapshot", "off", "--open-files", "stage"}},
	{name: "btrfs", title: "stillpoint btrfs", fs: "btrfs", tool: "stillpoint", args: []string{"--snapshot", "required"}, hold: "off"},
	{name: "hold", title: "stillpoint btrfs + hold", fs: "btrfs", tool: "stillpoint", args: []string{"--snapshot", "required"}, hold: "writers"},
	{name: "reflink", title: "stillpoint reflink (XFS)", fs: "xfs", tool: "stillpoint", args: []string{"--snapshot", "required"}},
	{name: "inactivity", title: "stillpoint btrfs + inactivity wait", fs: "btrfs", tool: "stillpoint", job: "inactivity", hold: "off"},
	{name: "writer", title: "stillpoint btrfs + writer", fs: "btrfs", tool: "stillpoint", job: "writer", hold: "off"},
}

var allWorkloads = []workload{&bankSQLite{journal: "delete"}, &bankSQLite{journal: "wal"}, bankFiles{}, bankGaps{}, bigFile{}, seqRewrite{}, gitChurn{}, postgresWL{}}

// rareTears are the workloads whose torn restores show in a few percent of
// crash-consistent snapshots: their cells in snapshot modes run -k-rare
// backups.
var rareTears = []string{"seq-rewrite", "git-churn"}

// promises lists, per mode, the workloads whose every restore must be a
// state the application accepts as consistent: any torn restore there fails
// the run. See docs/consistency.md for why each one holds.
//   - btrfs (no hold): crash-consistent only. The kernel's flush before a
//     snapshot does not wait for pages under writeback, so writes in
//     flight land in or out page by page: the snapshot may hold a later
//     write and miss an earlier one, which no crash-safe ordering of
//     writes protects against. Only applications that recover from such a
//     state are promised: SQLite (both journals) and PostgreSQL, which
//     sync their journal before the pages it covers. Not big-file,
//     seq-rewrite or git-churn (a later write without an earlier one), nor
//     bank-files (not crash-safe at all).
//   - hold: every process writing to the filesystem is stopped, the
//     filesystem synced, then snapped: a true point in time, every
//     completed write in and none after. What btrfs promises, and the
//     applications whose every moment is consistent: big-file,
//     seq-rewrite, git-churn (git writes an object before what refers to
//     it). Not bank-files: a stop can fall between withdrawal and deposit.
//   - reflink: each file is a point in time of its own (FICLONE excludes
//     writers while it clones); enough for the one file of big-file and
//     seq-rewrite, not for files that must agree with each other.
//   - inactivity: a btrfs snapshot without a hold, so what btrfs promises;
//     and for bank-files, whose application idles after each burst, and
//     bank-gaps, which idles just longer than the inactivity period after
//     every transfer, a snapshot taken only after 500 ms without a write,
//     and kept only if no write landed while it was made, falls between
//     transfers, with nothing in flight. When the wait ends at max-wait
//     (not quiet), stillpoint records that and only btrfs's promise holds.
//   - writer: the application is held at a consistent point (SQLite's
//     write lock, PostgreSQL's checkpoint, the pause API of bank-files,
//     big-file, seq-rewrite and git-churn) for the moment of the snapshot.
var promises = map[string][]string{
	"btrfs":      {"bank-sqlite-rollback", "bank-sqlite-wal", "postgres"},
	"hold":       {"bank-sqlite-rollback", "bank-sqlite-wal", "big-file", "seq-rewrite", "git-churn", "postgres"},
	"reflink":    {"big-file", "seq-rewrite"},
	"inactivity": {"bank-sqlite-rollback", "bank-sqlite-wal", "bank-files", "bank-gaps", "postgres"},
	"writer":     {"bank-sqlite-rollback", "bank-sqlite-wal", "bank-files", "bank-gaps", "big-file", "seq-rewrite", "git-churn", "postgres"},
}

func promised(m, wl string) bool { return slices.Contains(promises[m], wl) }

func parseConfig(args []string) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.BoolVar(&c.quick, "quick", false, "small sizes and 3 backups per workload and mode (the CI check)")
	fs.IntVar(&c.k, "k", 20, "backups per workload and mode")
	wls := fs.String("workloads", "", "comma-separated workloads (default: all)")
	ms := fs.String("modes", "", "comma-separated modes (default: all)")
	fs.BoolVar(&c.keep, "keep", false, "keep the work directory (torn restores included)")
	fs.StringVar(&c.workdir, "workdir", os.Getenv("TMPDIR"), "where the work directory is made (default $TMPDIR or /var/tmp)")
	fs.StringVar(&c.results, "results", "", "markdown results file (default: none, printed only)")
	fs.StringVar(&c.commandLine, "command", "", "the command line to print in the results")
	fs.StringVar(&c.stillpoint, "stillpoint", "stillpoint", "stillpoint binary")
	fs.StringVar(&c.stillpointRev, "stillpoint-rev", "", "the stillpoint build's commit, for the results")
	fs.StringVar(&c.restic, "restic", "", "restic binary (restic mode skipped without)")
	fs.StringVar(&c.kopia, "kopia", "", "kopia binary (kopia mode skipped without)")
	fs.IntVar(&c.bigFileMiB, "big-mib", 1024, "size of big-file in MiB")
	fs.IntVar(&c.bigRate, "big-rate", 100, "big-file block writes per second")
	fs.IntVar(&c.seqBlocks, "seq-blocks", 4096, "seq-rewrite: blocks of 4 KiB in the file")
	fs.BoolVar(&c.gitOutside, "git-outside", false, "git-churn: run the churn loop outside the repository (git -C REPO), where a hold cannot see it between commits")
	fs.IntVar(&c.kRare, "k-rare", 100, "backups per snapshot mode (btrfs, hold, reflink, inactivity, writer) of seq-rewrite and git-churn")
	rms := fs.String("rare-modes", "", "modes seq-rewrite and git-churn run in (default: all; quick: btrfs,hold)")
	pressured := fs.String("pressure", strings.Join(rareTears, ","), "workloads run under dirty-page pressure (a busy core and a dd conv=fsync loop); \"none\" for none")
	fs.StringVar(&c.pressureOn, "pressure-file", "workdir", "where the pressure's dd writes: \"workdir\" (beside the cell's loop image) or \"fs\" (the source's filesystem, outside the source)")
	fs.IntVar(&c.pressureMiB, "pressure-mib", 128, "MiB each dd of the pressure loop writes")
	fs.DurationVar(&c.holdTimeout, "hold-timeout", 2*time.Second, "--hold-timeout of the hold mode")
	fs.IntVar(&c.sqliteAccounts, "sqlite-accounts", 20000, "accounts in the SQLite bank")
	fs.IntVar(&c.pgScale, "pg-scale", 10, "pgbench scale factor")
	fs.IntVar(&c.pgRate, "pg-rate", 100, "pgbench transactions per second")
	fs.DurationVar(&c.burstMin, "burst-min", 1500*time.Millisecond, "bank-files: shortest busy burst")
	fs.DurationVar(&c.burstMax, "burst-max", 3*time.Second, "bank-files: longest busy burst")
	fs.DurationVar(&c.inactivity, "inactivity", 500*time.Millisecond, "quiesce.inactivity of the inactivity mode")
	fs.DurationVar(&c.maxWait, "max-wait", 5*time.Second, "quiesce.max-wait of the inactivity mode")
	fs.DurationVar(&c.baseline, "baseline", 10*time.Second, "how long the writers' latency is measured without a backup")
	fs.DurationVar(&c.paired, "paired", 0, "before each backup, run the writer this long alone, for a paired comparison (0: no paired windows)")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Minute, "limit of each backup and restore")
	fs.DurationVar(&c.toolWait, "tool-wait", 0, "wait this long for -restic/-kopia binaries still being built")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if c.quick {
		quick := map[string]func(){
			"k":               func() { c.k = 3 },
			"k-rare":          func() { c.kRare = 20 },
			"big-mib":         func() { c.bigFileMiB = 64 },
			"sqlite-accounts": func() { c.sqliteAccounts = 5000 },
			"pg-scale":        func() { c.pgScale = 1 },
			"baseline":        func() { c.baseline = 1500 * time.Millisecond },
			"burst-min":       func() { c.burstMin = 800 * time.Millisecond },
			"burst-max":       func() { c.burstMax = 1500 * time.Millisecond },
			"max-wait":        func() { c.maxWait = 1500 * time.Millisecond },
			// bank-gaps idles 205–240 ms after each transfer: several
			// quiet periods, and races, fit in one max-wait
			"inactivity": func() { c.inactivity = 200 * time.Millisecond },
		}
		for name, f := range quick {
			if !set[name] {
				f()
			}
		}
	}
	// the application writes for a random while before each backup starts
	c.warmupMin, c.warmupMax = 200*time.Millisecond, 700*time.Millisecond
	if c.quick {
		c.warmupMin, c.warmupMax = 100*time.Millisecond, 300*time.Millisecond
	}
	if c.workdir == "" {
		c.workdir = "/var/tmp"
	}
	if c.k < 1 || c.kRare < 1 || c.bigFileMiB < 1 || c.bigRate < 1 || c.seqBlocks < 1 || c.sqliteAccounts < 2 || c.pgScale < 1 || c.pgRate < 1 ||
		c.pressureMiB < 1 || c.burstMax < c.burstMin {
		return nil, errors.New("run: sizes and counts must be positive (and burst-max ≥ burst-min)")
	}
	if c.pressureOn != "fs" && c.pressureOn != "workdir" {
		return nil, fmt.Errorf("run: -pressure-file is fs or workdir, not %q", c.pressureOn)
	}
	var err error
	if *pressured != "none" {
		if c.pressure, err = pick(*pressured, names(allWorkloads, workload.name)); err != nil {
			return nil, err
		}
	}
	if c.workloads, err = pick(*wls, names(allWorkloads, workload.name)); err != nil {
		return nil, err
	}
	if c.modes, err = pick(*ms, names(allModes, func(m mode) string { return m.name })); err != nil {
		return nil, err
	}
	if *rms == "" && c.quick {
		// the question these workloads ask (is a btrfs snapshot a point in
		// time?), within the time of CI; writer's pause API is big-file's
		*rms = "btrfs,hold"
	}
	if c.rareModes, err = pick(*rms, names(allModes, func(m mode) string { return m.name })); err != nil {
		return nil, err
	}
	return c, nil
}

func names[T any](xs []T, name func(T) string) []string {
	var out []string
	for _, x := range xs {
		out = append(out, name(x))
	}
	return out
}

// pick parses a comma-separated selection out of all (empty: all).
func pick(list string, all []string) ([]string, error) {
	if list == "" {
		return all, nil
	}
	var out []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n == "" {
			continue
		}
		if !slices.Contains(all, n) {
			return nil, fmt.Errorf("unknown %q (known: %s)", n, strings.Join(all, ", "))
		}
		out = append(out, n)
	}
	return out, nil
}

// A backupRun is one backup of a cell, restored and verified.
type backupRun struct {
	err        string // the backup, restore or writer failed: not verified
	backup     time.Duration
	toSnapshot time.Duration
	v          verdict
	flagged    []string // files stillpoint did not class ok/ok-snapshot
	silent     bool
	unflagged  bool // torn, nothing flagged, but no promise broken (see classify)
	ops        []op // the writer's ops during the backup
	alone      []op // with -paired: the writer's ops in the alone window before
	consistent string
	// byCrash: torn, and stillpoint recorded the source as only
	// crash-consistent (see classify): flagged, not silent
	byCrash bool
	heldMs  float64 // how long stillpoint held the writers (hold or writer)
	holdMsg string  // a hold that was not a point in time: why
	wait    waitResult
}

// A cell is one workload in one mode.
type cell struct {
	wl      string
	mode    mode
	runs    []backupRun
	skipped string // why the cell did not run
	ops     []op   // baseline: the writer alone
}

type harness struct {
	cfg   *config
	self  string
	work  string
	tmpl  map[string]string
	rng   *rand.Rand
	cells []*cell
	notes []string
	// canHold: the stillpoint binary has --hold (modes then pass their hold)
	canHold bool
}

func runHarness(args []string) error {
	cfg, err := parseConfig(args)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("run needs root (loop mounts, fanotify, PostgreSQL as its own user)")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigs
		logf("interrupted: stopping, cleaning up (again to force)")
		cancel()
		<-sigs
		killTracked()
		releaseAll()
		os.Exit(130)
	}()
	defer func() { killTracked(); releaseAll() }()

	if err := os.MkdirAll(cfg.workdir, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(cfg.workdir, "stillpoint-torture.")
	if err != nil {
		return err
	}
	// the postgres user must reach data directories below it
	if err := os.Chmod(work, 0o755); err != nil {
		return err
	}
	if cfg.keep {
		defer logf("kept the work directory %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	h := &harness{cfg: cfg, self: self, work: work, tmpl: map[string]string{}, rng: rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))}
	h.canHold = hasHoldFlag(cfg.stillpoint)
	if !h.canHold {
		h.notes = append(h.notes, "this stillpoint has no --hold: the hold mode did not run, and btrfs, inactivity and writer ran without --hold off")
	}
	start := time.Now()
	// restic and kopia last: bench/torture.sh may still be building them
	wls := selectedWorkloads(cfg)
	for _, later := range []bool{false, true} {
		for _, wl := range wls {
			if err := h.runWorkload(ctx, wl, later); err != nil {
				return err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	h.sortCells()
	rep := h.report(start, time.Now())
	fmt.Print(rep)
	if cfg.results != "" {
		if err := os.WriteFile(cfg.results, []byte(rep), 0o644); err != nil {
			return err
		}
		logf("results written to %s", cfg.results)
	}
	if fails := h.failures(); len(fails) > 0 {
		for _, f := range fails {
			fmt.Fprintln(os.Stderr, "FAIL:", f)
		}
		return exitError(1)
	}
	return nil
}

// hasHoldFlag tells whether `stillpoint backup` takes --hold.
func hasHoldFlag(bin string) bool {
	out, _ := exec.Command(bin, "backup", "--help").CombinedOutput()
	return strings.Contains(string(out), "--hold")
}

// cellK is how many backups a cell of wl in m runs: -k-rare for a
// rareTears workload in a snapshot mode (a live read of it is torn almost
// every time, and -k shows that).
func (h *harness) cellK(wl workload, m mode) int {
	if slices.Contains(rareTears, wl.name()) && m.fs != "dir" {
		return h.cfg.kRare
	}
	return h.cfg.k
}

func selectedWorkloads(cfg *config) []workload {
	var out []workload
	for _, wl := range allWorkloads {
		if slices.Contains(cfg.workloads, wl.name()) {
			out = append(out, wl)
		}
	}
	return out
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// runWorkload runs the workload's cells: those of restic and kopia when
// later is set, the others (after the template and the baseline) when not.
func (h *harness) runWorkload(ctx context.Context, wl workload, later bool) error {
	if !later {
		tmpl := filepath.Join(h.work, "templates", wl.name())
		if err := os.MkdirAll(tmpl, 0o755); err != nil {
			return err
		}
		logf("%s: preparing", wl.name())
		if err := wl.template(ctx, h.cfg, tmpl); err != nil {
			return fmt.Errorf("%s: template: %w", wl.name(), err)
		}
		h.tmpl[wl.name()] = tmpl
		h.cells = append(h.cells, h.baseline(ctx, wl))
	}
	for _, m := range allModes {
		if !slices.Contains(h.cfg.modes, m.name) || (m.tool == "restic" || m.tool == "kopia") != later {
			continue
		}
		if slices.Contains(rareTears, wl.name()) && !slices.Contains(h.cfg.rareModes, m.name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		h.cells = append(h.cells, h.runCell(ctx, wl, m))
	}
	return nil
}

// sortCells puts the cells in table order: workloads, then the baseline
// and the modes as listed.
func (h *harness) sortCells() {
	rank := func(c *cell) (int, int) {
		w := slices.IndexFunc(allWorkloads, func(x workload) bool { return x.name() == c.wl })
		return w, slices.IndexFunc(allModes, func(m mode) bool { return m.name == c.mode.name })
	}
	slices.SortStableFunc(h.cells, func(a, b *cell) int {
		aw, am := rank(a)
		bw, bm := rank(b)
		if aw != bw {
			return aw - bw
		}
		return am - bm
	})
}

// toolReady waits (up to -tool-wait) for a restic or kopia binary that
// bench/torture.sh may still be building in the background; it writes
// PATH.failed when a build fails.
func (h *harness) toolReady(ctx context.Context, path string) error {
	deadline := time.Now().Add(h.cfg.toolWait)
	for next := time.Now(); ; {
		if fi, err := os.Stat(path); err == nil && fi.Mode()&0o111 != 0 {
			return nil
		}
		if _, err := os.Stat(path + ".failed"); err == nil {
			return fmt.Errorf("building %s failed", path)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not exist", path)
		}
		if time.Now().After(next) {
			logf("waiting for %s to be built", path)
			next = time.Now().Add(30 * time.Second)
		}
		sleepCtx(ctx, time.Second)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// newEnv makes the directories of a cell: the source on the mode's
// filesystem, aux outside it. release undoes it.
func (h *harness) newEnv(wl workload, m mode, cellName string) (e *wlEnv, release func(), err error) {
	dir := filepath.Join(h.work, "cells", cellName)
	e = &wlEnv{cfg: h.cfg, self: h.self, aux: filepath.Join(dir, "aux"), template: h.tmpl[wl.name()]}
	for _, d := range []string{dir, e.aux} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, nil, err
		}
	}
	removeDir := func() {
		if !h.cfg.keep {
			os.RemoveAll(dir)
		}
	}
	release = removeDir
	if m.fs == "dir" {
		e.src, e.scratch = filepath.Join(dir, "data", wl.name()), dir
		return e, release, os.MkdirAll(e.src, 0o755)
	}
	// sparse: only what is written takes space
	l, err := mountLoop(m.fs, dir, 3*h.cfg.bigFileMiB+60*h.cfg.pgScale+h.cfg.seqBlocks*blockSize>>20+h.cfg.pressureMiB+2048)
	if err != nil {
		release()
		return nil, nil, err
	}
	release = func() {
		if err := l.release(); err != nil {
			logf("%v", err)
		}
		removeDir()
	}
	e.src, e.scratch = filepath.Join(l.mnt, wl.name()), l.mnt
	if m.fs == "btrfs" {
		// its own subvolume: the btrfs provider snaps the subvolume that holds a source
		if out, err := exec.Command("btrfs", "subvolume", "create", e.src).CombinedOutput(); err != nil {
			release()
			return nil, nil, fmt.Errorf("btrfs subvolume create: %v: %s", err, out)
		}
		return e, release, nil
	}
	if err := os.MkdirAll(e.src, 0o755); err != nil {
		release()
		return nil, nil, err
	}
	return e, release, nil
}

// baseline measures the writer without any backup, on btrfs.
func (h *harness) baseline(ctx context.Context, wl workload) *cell {
	// on the loop btrfs, as in the snapshot modes it is compared with: in
	// the work directory (ext4) git-churn under the pressure took ten
	// times as long per commit
	m := mode{name: "baseline", title: "none (writer alone)", fs: "btrfs"}
	c := &cell{wl: wl.name(), mode: m}
	e, release, err := h.newEnv(wl, m, wl.name()+"-baseline")
	if err != nil {
		c.skipped = err.Error()
		return c
	}
	defer release()
	if err := setupSynced(ctx, wl, e); err != nil {
		c.skipped = "setup: " + err.Error()
		return c
	}
	defer wl.teardown(e)
	pr, err := h.startPressure(wl, e)
	if err != nil {
		c.skipped = err.Error()
		return c
	}
	defer h.stopPressure(wl, pr)
	w, err := wl.start(ctx, e, 0)
	if err != nil {
		c.skipped = err.Error()
		return c
	}
	time.Sleep(h.warmup())
	from := time.Now()
	sleepCtx(ctx, h.cfg.baseline)
	to := time.Now()
	if err := w.stop(); err != nil {
		c.skipped = err.Error()
		return c
	}
	ops, err := w.ops()
	if err != nil {
		c.skipped = err.Error()
	}
	c.ops = inWindow(ops, from, to)
	return c
}

func (h *harness) warmup() time.Duration {
	return h.cfg.warmupMin + time.Duration(h.rng.Int64N(int64(h.cfg.warmupMax-h.cfg.warmupMin)+1))
}

func sleepCtx(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func (h *harness) runCell(ctx context.Context, wl workload, m mode) *cell {
	name := wl.name() + "-" + m.name
	c := &cell{wl: wl.name(), mode: m}
	if bin := map[string]string{"restic": h.cfg.restic, "kopia": h.cfg.kopia}[m.tool]; bin != "" {
		if err := h.toolReady(ctx, bin); err != nil {
			c.skipped = err.Error()
			logf("%s: not run: %s", name, c.skipped)
			return c
		}
	} else if m.tool == "restic" || m.tool == "kopia" {
		c.skipped = "no " + m.tool + " binary given"
		logf("%s: skipped (%s)", name, c.skipped)
		return c
	}
	if m.hold == "writers" && !h.canHold {
		c.skipped = "no --hold in this stillpoint build"
		logf("%s: skipped (%s)", name, c.skipped)
		return c
	}
	k := h.cellK(wl, m)
	logf("%s: %d backups", name, k)
	e, release, err := h.newEnv(wl, m, name)
	if err != nil {
		c.skipped = err.Error()
		logf("%s: %v", name, err)
		return c
	}
	defer release()
	if err := setupSynced(ctx, wl, e); err != nil {
		c.skipped = "setup: " + err.Error()
		logf("%s: %s", name, c.skipped)
		return c
	}
	defer wl.teardown(e)
	tool, err := h.newTool(m, wl, e, filepath.Join(h.work, "cells", name))
	if err == nil {
		err = tool.init(ctx)
	}
	if err != nil {
		c.skipped = "init: " + err.Error()
		logf("%s: %s", name, c.skipped)
		return c
	}
	pr, err := h.startPressure(wl, e)
	if err != nil {
		c.skipped = err.Error()
		logf("%s: %s", name, c.skipped)
		return c
	}
	defer h.stopPressure(wl, pr)
	for i := 1; i <= k && ctx.Err() == nil; i++ {
		r := h.oneBackup(ctx, wl, m, e, tool, pr, i, filepath.Join(h.work, "cells", name))
		c.runs = append(c.runs, r)
		logf("%s #%d: %s", name, i, r.summary())
	}
	return c
}

func (h *harness) newTool(m mode, wl workload, e *wlEnv, dir string) (backupTool, error) {
	tdir := filepath.Join(dir, "tool")
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		return nil, err
	}
	switch m.tool {
	case "cp":
		return &cpTool{dir: tdir}, nil
	case "restic":
		return &resticTool{bin: h.cfg.restic, dir: tdir}, nil
	case "kopia":
		return &kopiaTool{bin: h.cfg.kopia, dir: tdir}, nil
	}
	staging := filepath.Join(dir, "staging")
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return nil, err
	}
	t := &stillpointTool{bin: h.cfg.stillpoint, dir: tdir, args: slices.Clone(m.args)}
	if m.name == "stage" {
		t.args = append(t.args, "--staging-dir", staging)
	}
	if m.hold != "" && m.job == "" && h.canHold {
		t.args = append(t.args, "--hold", m.hold)
		if m.hold == "writers" {
			t.args = append(t.args, "--hold-timeout", h.cfg.holdTimeout.String())
		}
	}
	if m.job != "" {
		t.job = filepath.Join(dir, "job.yaml")
		if err := os.WriteFile(t.job, []byte(h.jobFile(m, wl, e, staging)), 0o644); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func (h *harness) jobFile(m mode, wl workload, e *wlEnv, staging string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "version: 1\nstaging-dir: %s\nsources:\n  - path: %s\n    snapshot: required\n", yamlQuote(staging), yamlQuote(e.src))
	hold := ""
	if m.hold != "" && h.canHold {
		hold = "hold: " + m.hold
	}
	switch m.job {
	case "inactivity":
		fmt.Fprintf(&b, "quiesce: {inactivity: %s, max-wait: %s, on-timeout: snap", h.cfg.inactivity, h.cfg.maxWait)
		if hold != "" {
			b.WriteString(", " + hold)
		}
		b.WriteString("}\n")
	case "writer":
		if hold != "" {
			fmt.Fprintf(&b, "quiesce: {%s}\n", hold)
		}
		fmt.Fprintf(&b, "writers:\n  %s\n", wl.writerEntry(e))
	}
	return b.String()
}

// setupSynced sets the workload up and writes its initial data to disk, so
// that the first backup window does not pay for writing back the copy of
// the template (1 GiB for big-file): that stall is the setup's, not the
// backup's.
func setupSynced(ctx context.Context, wl workload, e *wlEnv) error {
	if err := wl.setup(ctx, e); err != nil {
		return err
	}
	return syncFS(e.src)
}

// oneBackup: start the application (and the pressure, if any), back up
// while it writes, stop it (and pause the pressure), restore, verify.
func (h *harness) oneBackup(ctx context.Context, wl workload, m mode, e *wlEnv, tool backupTool, pr *pressure, i int, dir string) backupRun {
	var r backupRun
	if h.cfg.paired > 0 {
		alone, err := h.aloneWindow(ctx, wl, e, pr, i)
		if err != nil {
			r.err = "writer alone: " + err.Error()
			return r
		}
		r.alone = alone
	}
	w, err := wl.start(ctx, e, i)
	if err != nil {
		r.err = "writer: " + err.Error()
		return r
	}
	// after the start, which may prepare data (git-churn's fresh copy)
	pr.resume()
	defer pr.pause()
	time.Sleep(h.warmup())
	bctx, cancel := context.WithTimeout(ctx, h.cfg.timeout)
	t0 := time.Now()
	br, berr := tool.backup(bctx, e.src)
	t1 := time.Now()
	cancel()
	werr := w.stop()
	pr.pause()
	ops, oerr := w.ops()
	r.ops = inWindow(ops, t0, t1)
	r.backup, r.toSnapshot, r.consistent = t1.Sub(t0), br.toSnapshot, br.consistency
	r.heldMs, r.holdMsg, r.wait = br.heldMs, br.holdMsg, br.wait
	switch {
	case berr != nil:
		r.err = "backup: " + berr.Error()
	case werr != nil:
		r.err = werr.Error()
	case oerr != nil:
		r.err = "latency log: " + oerr.Error()
	}
	if r.err != "" {
		return r
	}
	target := filepath.Join(dir, fmt.Sprintf("restore-%03d", i))
	rctx, cancel := context.WithTimeout(ctx, h.cfg.timeout)
	defer cancel()
	root, err := tool.restore(rctx, br, e.src, target)
	if err != nil {
		r.err = "restore: " + err.Error()
		return r
	}
	r.v = wl.verify(rctx, e, root)
	for f := range br.problems {
		r.flagged = append(r.flagged, f+" "+br.problems[f])
	}
	slices.Sort(r.flagged)
	r.silent, r.unflagged, r.byCrash = classify(m, r.v, br)
	if h.cfg.keep && r.v.torn && br.summary != "" {
		os.WriteFile(target+".summary.json", []byte(br.summary+"\n"), 0o644)
	}
	if !(h.cfg.keep && r.v.torn) {
		os.RemoveAll(target)
		if m.tool == "cp" {
			os.RemoveAll(filepath.Dir(root))
		}
	}
	return r
}

// aloneWindow runs the application for a window as the backup's, warmup
// and all, but without a backup: -paired long. What it times is the
// writer alone, in the same cell, right before the backup it is paired
// with. The data it writes is the next window's starting point, as any
// window's is.
func (h *harness) aloneWindow(ctx context.Context, wl workload, e *wlEnv, pr *pressure, i int) ([]op, error) {
	w, err := wl.start(ctx, e, pairedWindow+i)
	if err != nil {
		return nil, err
	}
	pr.resume()
	defer pr.pause()
	time.Sleep(h.warmup())
	t0 := time.Now()
	sleepCtx(ctx, h.cfg.paired)
	t1 := time.Now()
	if err := w.stop(); err != nil {
		return nil, err
	}
	ops, err := w.ops()
	return inWindow(ops, t0, t1), err
}

// pairedWindow numbers the latency logs of the alone windows apart from
// the backups'.
const pairedWindow = 1000

// classify decides whether a torn restore of a stillpoint mode broke a
// promise stillpoint made (silent), was torn in a way stillpoint's record
// explains (byCrash: flagged), or was torn with nothing flagged in a way
// stillpoint never promised against (unflagged). It goes by the
// consistency stillpoint recorded for the source, not by the mode:
//   - a file classed ok or ok-snapshot promises that its bytes are a state
//     that file had: a file the verifier finds torn on its own, not
//     flagged, is silent;
//   - but consistency "crash" promises only what a crash leaves: writes
//     may be in or out page by page, so a file may be no state it had and
//     files no moment; such a restore is flagged (byCrash), unless a block
//     or record is damaged, which no crash leaves either (silent);
//   - consistency "volume" with every file whole promises one moment for
//     all files: a restore that is not one moment is silent;
//   - consistency "application", or the writer mode, promises a consistent
//     application: any torn restore with nothing flagged is silent.
//
// Files read live ("live") or cloned one by one ("file") are each a state
// of their own, at different moments: files that disagree with each other
// are torn, unflagged, but no promise is broken.
func classify(m mode, v verdict, br backupResult) (silent, unflagged, byCrash bool) {
	if m.tool != "stillpoint" || !v.torn {
		return false, false, false
	}
	crash := br.consistency == "crash"
	for _, f := range v.fileTorn {
		if _, flagged := br.problems[f]; !flagged {
			if crash && !v.damaged {
				return false, false, true
			}
			return true, false, false
		}
	}
	switch {
	case len(br.problems) > 0:
		return false, false, false
	case crash:
		return false, false, true
	case br.consistency == "volume" && v.notOneMoment, br.consistency == "application", m.job == "writer":
		return true, false, false
	}
	return false, true, false
}

func (r backupRun) summary() string {
	if r.err != "" {
		return "ERROR " + r.err
	}
	s := fmt.Sprintf("backup %.1fs", r.backup.Seconds())
	if r.toSnapshot > 0 {
		s += fmt.Sprintf(", snapshot after %.2fs", r.toSnapshot.Seconds())
	}
	st := statsOf(r.ops)
	s += fmt.Sprintf(", writer %d ops, longest %s", st.n, st.max.Round(time.Microsecond))
	if len(r.alone) > 0 {
		s += fmt.Sprintf(" (alone %s)", statsOf(r.alone).max.Round(time.Microsecond))
	}
	if len(r.flagged) > 0 {
		s += ", flagged " + strings.Join(r.flagged, ", ")
	}
	if r.heldMs > 0 {
		s += fmt.Sprintf(", held %.1fms", r.heldMs)
	}
	if r.holdMsg != "" {
		s += ", hold: " + r.holdMsg
	}
	if r.wait.waited {
		s += ", " + r.wait.String()
	}
	if r.consistent != "" {
		s += ", " + r.consistent
	}
	switch {
	case r.silent:
		s += ", SILENT TORN: " + r.v.reason
	case r.v.torn:
		s += ", torn: " + r.v.reason
	default:
		s += ", whole"
	}
	return s
}

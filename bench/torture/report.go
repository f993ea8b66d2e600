//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// counts of a cell's verified runs.
type counts struct {
	verified, torn, silent, unflagged, flagged, errors int
	// brokenPromises: torn restores that break the cell's promise
	brokenPromises int
}

func (c *cell) counts() counts {
	var n counts
	for _, r := range c.runs {
		if r.err != "" {
			n.errors++
			continue
		}
		n.verified++
		if r.v.torn {
			n.torn++
		}
		if breaksPromise(c.mode, c.wl, r) {
			n.brokenPromises++
		}
		if r.silent {
			n.silent++
		}
		if r.unflagged {
			n.unflagged++
		}
		if len(r.flagged) > 0 || r.byCrash {
			n.flagged++
		}
	}
	return n
}

// failures are what make the run fail: a silent torn restore anywhere, a
// torn restore where a promise holds, a backup that could not be verified,
// a cell that could not run.
func (h *harness) failures() []string {
	var out []string
	for _, c := range h.cells {
		id := c.wl + " / " + c.mode.name
		if c.skipped != "" && !strings.HasPrefix(c.skipped, "no ") {
			out = append(out, fmt.Sprintf("%s did not run: %s", id, c.skipped))
		}
		n := c.counts()
		if n.silent > 0 {
			out = append(out, fmt.Sprintf("%s: %d silent torn restore(s)", id, n.silent))
		}
		if n.brokenPromises > 0 {
			out = append(out, fmt.Sprintf("%s promises point-in-time consistency, but %d of %d restores are torn", id, n.brokenPromises, n.verified))
		}
		// a competitor's failure is its own result; a stillpoint mode that
		// cannot be verified would hide what the check is for
		if n.errors > 0 && c.mode.tool == "stillpoint" {
			out = append(out, fmt.Sprintf("%s: %d backup(s) could not be verified", id, n.errors))
		}
	}
	return out
}

// breaksPromise: a torn restore in a promised cell. The hold mode promises
// more than a crash-consistent snapshot only when the hold made the
// snapshot a point in time; when stillpoint recorded it as crash (the hold
// timed out, or passed over a writer), it said so, and a workload that
// only the hold promises is then flagged, not a broken promise.
//
// The same holds for the inactivity wait: one that ended at max-wait, not
// quiet, is recorded so, and promises only what btrfs does.
func breaksPromise(m mode, wl string, r backupRun) bool {
	if !promised(m.name, wl) || !r.v.torn {
		return false
	}
	onlyCrash := m.hold == "writers" || (m.job == "inactivity" && !r.wait.quiet)
	return !(onlyCrash && r.byCrash && !promised("btrfs", wl))
}

func (h *harness) report(start, end time.Time) string {
	var b strings.Builder
	cfg := h.cfg
	fmt.Fprintf(&b, "## Torture results: %s\n\n", start.Format("2006-01-02"))
	if cfg.commandLine != "" {
		fmt.Fprintf(&b, "- command: `%s`\n", cfg.commandLine)
	}
	fmt.Fprintf(&b, "- %s to %s (%s); %d backups per workload and mode, %d for %s in the snapshot modes\n", start.UTC().Format("15:04"), end.UTC().Format("15:04 UTC"),
		end.Sub(start).Round(time.Second), cfg.k, cfg.kRare, strings.Join(rareTears, " and "))
	fmt.Fprintf(&b, "- machine: %d cores, %s, work directory on %s\n", runtime.NumCPU(), kernel(), fsType(h.work))
	fmt.Fprintf(&b, "- tools: %s\n", strings.Join(h.versions(), "; "))
	fmt.Fprintf(&b, "- sizes: big-file %d MiB at %d block writes/s; seq-rewrite %d blocks of 4 KiB; SQLite bank %d accounts; pgbench scale %d at %d tps; bank-files bursts %s–%s; inactivity %s (max-wait %s); hold timeout %s\n",
		cfg.bigFileMiB, cfg.bigRate, cfg.seqBlocks, cfg.sqliteAccounts, cfg.pgScale, cfg.pgRate, cfg.burstMin, cfg.burstMax, cfg.inactivity, cfg.maxWait, cfg.holdTimeout)
	if len(cfg.pressure) > 0 {
		where := "on the source's filesystem"
		if cfg.pressureOn == "workdir" {
			where = "in the work directory"
		}
		fmt.Fprintf(&b, "- dirty-page pressure for %s (baseline included): one core busy (`yes >/dev/null`) and a loop of `dd bs=1M count=%d conv=fsync` %s\n",
			strings.Join(cfg.pressure, ", "), cfg.pressureMiB, where)
	}
	for _, n := range h.notes {
		fmt.Fprintf(&b, "- NOTE: %s\n", n)
	}
	b.WriteString(`
Counts are out of the verified backups. **PIT**: the mode promises point-in-time
consistent restores for this workload (any torn restore fails the run; under hold,
not one stillpoint recorded as crash, for a workload btrfs alone does not promise).
*Silent*: torn although stillpoint's record promised otherwise (must be 0).
*Unflagged*: torn with nothing flagged, but no promise broken: each file is a state it
had, and the files are from different moments (consistency live or file), or from one
real moment at which the application was inconsistent (bank-files stopped mid-transfer).
*Flagged*: stillpoint flagged a file (changed, failed, …), or the restore was torn and
stillpoint recorded the source as only crash-consistent. *Recorded*: the consistency
stillpoint recorded for the source (with counts when it varied). Backup: median wall
time. Snapshot after: median (max) time from the start of stillpoint's run to its
snapshot (includes the inactivity wait and the writers' freeze). Held: median (max)
time stillpoint itself reports holding the application (hold or writer). Writer
latency: over every operation that overlapped a backup (baseline: the writer alone);
longest stall = the slowest single operation, or the longest pause.

| workload | mode | | torn | silent | unflagged | flagged | errors | recorded | backup s | snapshot after s | held ms | ops | p50 ms | p99 ms | longest stall ms |
|---|---|---|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|
`)
	for _, c := range h.cells {
		b.WriteString(c.row())
	}
	if cfg.paired > 0 {
		b.WriteString(h.pairedTable())
	}
	var details []string
	for _, c := range h.cells {
		shown := 0
		for i, r := range c.runs {
			if (r.v.torn || r.err != "") && shown < 3 {
				shown++
				what := "torn: " + r.v.reason
				if r.err != "" {
					what = "error: " + r.err
				} else if r.silent {
					what = "**SILENT** " + what
				}
				if len(r.flagged) > 0 {
					what += " (flagged: " + strings.Join(r.flagged, ", ") + ")"
				}
				if r.consistent != "" {
					what += " [recorded: " + r.consistent + "]"
				}
				if r.holdMsg != "" {
					what += " [hold: " + r.holdMsg + "]"
				}
				// $WORK: the paths of this run's work directory mean nothing elsewhere
				what = strings.ReplaceAll(what, h.work, "$WORK")
				details = append(details, fmt.Sprintf("- %s / %s #%d: %s", c.wl, c.mode.name, i+1, oneLine(what)))
			}
		}
		if w := c.waits(); w != "" {
			details = append(details, fmt.Sprintf("- %s / %s: %s", c.wl, c.mode.name, w))
		}
		if c.skipped != "" {
			details = append(details, fmt.Sprintf("- %s / %s: not run: %s", c.wl, c.mode.name, oneLine(strings.ReplaceAll(c.skipped, h.work, "$WORK"))))
		}
	}
	if len(details) > 0 {
		b.WriteString("\n<details><summary>torn restores and errors (at most 3 per cell), inactivity waits</summary>\n\n")
		b.WriteString(strings.Join(details, "\n"))
		b.WriteString("\n\n</details>\n")
	}
	if f := h.failures(); len(f) > 0 {
		b.WriteString("\n**FAILED:**\n\n- " + strings.Join(f, "\n- ") + "\n")
	} else {
		b.WriteString("\nNo silent torn restore; every promise held.\n")
	}
	return b.String()
}

// waits sums up a cell's inactivity waits: how many ended quiet, and how
// many snapshots were taken again because a write landed while they were
// made.
func (c *cell) waits() string {
	var waited, quiet, resnapped, runsResnapped int
	for _, r := range c.runs {
		if r.err != "" || !r.wait.waited {
			continue
		}
		waited++
		if r.wait.quiet {
			quiet++
		}
		if r.wait.resnapped > 0 {
			runsResnapped++
			resnapped += r.wait.resnapped
		}
	}
	if waited == 0 {
		return ""
	}
	return fmt.Sprintf("inactivity wait: %d of %d ended quiet (the rest at max-wait, recorded not quiet); %d snapshots released and taken again after a write landed while they were made, in %d backups",
		quiet, waited, resnapped, runsResnapped)
}

func (c *cell) row() string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }
	label := c.mode.title
	if c.skipped != "" {
		return fmt.Sprintf("| %s | %s | | not run | | | | | | | | | | | | |\n", c.wl, label)
	}
	var ops []op
	var backups, snaps, held []time.Duration
	recorded := map[string]int{}
	for _, r := range c.runs {
		ops = append(ops, r.ops...)
		if r.err == "" {
			backups = append(backups, r.backup)
			if r.toSnapshot > 0 {
				snaps = append(snaps, r.toSnapshot)
			}
			if r.heldMs > 0 {
				held = append(held, time.Duration(r.heldMs*float64(time.Millisecond)))
			}
			if r.consistent != "" {
				recorded[r.consistent]++
			}
		}
	}
	if c.mode.name == "baseline" {
		ops = c.ops
	}
	st := statsOf(ops)
	lat := fmt.Sprintf("%d | %s | %s | %s", st.n, ms(st.p50), ms(st.p99), ms(st.max))
	if st.n == 0 {
		lat = "0 | – | – | –"
	}
	if c.mode.name == "baseline" {
		return fmt.Sprintf("| %s | *%s* | | | | | | | | | | | %s |\n", c.wl, label, lat)
	}
	n := c.counts()
	frac := func(x int) string { return fmt.Sprintf("%d/%d", x, n.verified) }
	torn := frac(n.torn)
	pit := ""
	if promised(c.mode.name, c.wl) {
		pit = "PIT"
		torn = "**" + torn + "**"
	}
	silent, unflagged, flagged := "–", "–", "–"
	if c.mode.tool == "stillpoint" {
		silent, unflagged, flagged = frac(n.silent), frac(n.unflagged), frac(n.flagged)
		if n.silent > 0 {
			silent = "**" + silent + "**"
		}
	}
	snap := "–"
	if len(snaps) > 0 {
		snap = fmt.Sprintf("%.2f (%.2f)", median(snaps).Seconds(), slices.Max(snaps).Seconds())
	}
	bk := "–"
	if len(backups) > 0 {
		bk = fmt.Sprintf("%.2f", median(backups).Seconds())
	}
	hd := "–"
	if len(held) > 0 {
		hd = fmt.Sprintf("%s (%s)", ms(median(held)), ms(slices.Max(held)))
	}
	return fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %d | %s | %s | %s | %s | %s |\n",
		c.wl, label, pit, torn, silent, unflagged, flagged, n.errors, recordedText(recorded), bk, snap, hd, lat)
}

// pairedTable compares, per cell, the writer's latency during the backups
// with its latency in the window of -paired right before each of them:
// the same writer, cell and load, without a backup.
func (h *harness) pairedTable() string {
	var b strings.Builder
	fmt.Fprintf(&b, `
Paired: before each backup the writer ran %s alone; *alone* is its latency over
those windows, *backup* over the backups, in the same cell. Latencies in ms. The goal
of issue 11: longest stall during a backup at most 100 ms, p99 at most 2× alone.

| workload | mode | alone ops | alone p99 | alone longest | backup ops | backup p99 | backup longest | p99 ÷ alone | longest ≤ 100 | p99 ≤ 2× |
|---|---|--:|--:|--:|--:|--:|--:|--:|:-:|:-:|
`, h.cfg.paired)
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d.Microseconds())/1000) }
	yes := func(ok bool) string {
		if ok {
			return "yes"
		}
		return "**no**"
	}
	for _, c := range h.cells {
		if c.mode.name == "baseline" || c.skipped != "" {
			continue
		}
		var alone, during []op
		for _, r := range c.runs {
			if r.err == "" {
				alone, during = append(alone, r.alone...), append(during, r.ops...)
			}
		}
		a, d := statsOf(alone), statsOf(during)
		if a.n == 0 || d.n == 0 {
			fmt.Fprintf(&b, "| %s | %s | %d | | | %d | | | | | |\n", c.wl, c.mode.title, a.n, d.n)
			continue
		}
		ratio := float64(d.p99) / float64(max(a.p99, time.Microsecond))
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %d | %s | %s | %.1f | %s | %s |\n", c.wl, c.mode.title,
			a.n, ms(a.p99), ms(a.max), d.n, ms(d.p99), ms(d.max), ratio, yes(d.max <= 100*time.Millisecond), yes(d.p99 <= 2*a.p99))
	}
	return b.String()
}

// recordedText names the consistencies recorded in a cell: "crash", or
// "volume 98, crash 2" when they varied.
func recordedText(recorded map[string]int) string {
	if len(recorded) == 0 {
		return "–"
	}
	if len(recorded) == 1 {
		for k := range recorded {
			return k
		}
	}
	var parts []string
	for k, n := range recorded {
		parts = append(parts, fmt.Sprintf("%s %d", k, n))
	}
	slices.Sort(parts)
	return strings.Join(parts, ", ")
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "…"
	}
	return strings.ReplaceAll(s, "|", `\|`)
}

func (h *harness) versions() []string {
	v := func(label, bin string, args ...string) string {
		if bin == "" {
			return label + " (not run)"
		}
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			return label + " (version unknown)"
		}
		f := strings.Fields(string(out))
		if len(f) == 0 {
			return label
		}
		if label == "restic" && len(f) > 1 {
			return "restic " + f[1]
		}
		if label == "stillpoint" {
			return "stillpoint " + f[len(f)-1]
		}
		return label + " " + f[0]
	}
	sp := v("stillpoint", h.cfg.stillpoint, "--version")
	if h.cfg.stillpointRev != "" {
		sp += " (" + h.cfg.stillpointRev + ")"
	}
	out := []string{sp, v("restic", h.cfg.restic, "version"), v("kopia", h.cfg.kopia, "--version")}
	if pg, err := exec.Command(pgBin("postgres"), "--version").Output(); err == nil {
		out = append(out, strings.TrimSpace(string(pg)))
	}
	return append(out, runtime.Version())
}

func kernel() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "Linux"
	}
	return "Linux " + strings.TrimSpace(string(b))
}

func fsType(p string) string {
	out, err := exec.Command("findmnt", "-n", "-o", "FSTYPE", "-T", p).Output()
	if err != nil {
		return "unknown filesystem"
	}
	return strings.TrimSpace(string(out))
}

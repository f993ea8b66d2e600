// Command soak runs the prune soak of docs/benchmarks.md ("Prune while
// backups run") with a built stillpoint binary: CLIENTS backup clients, each
// over its own changing tree with its own --host, write to one repository
// for DURATION while `forget --keep-last N --prune` runs in a loop; then
// every snapshot left is restored and compared with the manifest its client
// took before the backup, check --read-data must be clean, and a last prune
// and prune --now must complete. bench/soak.sh builds and runs it.
//
//	soak -bin PATH -dir DIR [-duration 10m] [-clients 4] [-keep-last 5] [-files 2000] [-max-size 3145728] [-seed 1] [-prune-pause 0] [-results FILE]
//
// It exits 1 when any backup or prune failed or the end checks did not pass,
// after writing the report.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/soak"
)

func main() {
	var cfg soak.Config
	var results, version string
	flag.StringVar(&cfg.Bin, "bin", "", "the stillpoint `binary` (required)")
	flag.StringVar(&cfg.Dir, "dir", "", "work `directory` for the sources, the repository and restores (required; created)")
	flag.DurationVar(&cfg.Duration, "duration", 10*time.Minute, "how long the clients and the prune loop run")
	flag.IntVar(&cfg.Clients, "clients", 4, "backup clients, each with its own tree and --host")
	flag.IntVar(&cfg.KeepLast, "keep-last", 5, "forget --keep-last, per client")
	flag.IntVar(&cfg.Files, "files", 2000, "files in each client's tree at the start")
	flag.Int64Var(&cfg.MaxSize, "max-size", 3<<20, "the largest file, in bytes")
	flag.DurationVar(&cfg.PrunePause, "prune-pause", 0, "wait this long after each forget --prune that pruned (0: back to back)")
	flag.Uint64Var(&cfg.Seed, "seed", 1, "seed of the trees and their changes")
	flag.StringVar(&results, "results", "", "write the report (markdown, with the raw figures) to this `file`")
	flag.StringVar(&version, "version", "", "stillpoint's version, for the report")
	flag.Parse()
	if cfg.Bin == "" || cfg.Dir == "" || flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	cfg.Log = func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "[%s] %s\n", time.Now().Format(time.TimeOnly), fmt.Sprintf(format, args...))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	load0 := loadavg()
	rep, err := soak.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
	load1 := loadavg()
	write := func(w io.Writer, raw bool) {
		fmt.Fprintf(w, "# Prune soak, %s\n\n", rep.Started.UTC().Format("2006-01-02 15:04 UTC"))
		fmt.Fprintf(w, "stillpoint %s; %d CPUs (%s/%s); load average at the start %s, at the end %s\n\n",
			orUnknown(version), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, load0, load1)
		fmt.Fprintf(w, "```\nbench/soak.sh --duration %s --clients %d --keep-last %d --files %d --max-size %d --seed %d --prune-pause %s\n```\n\n",
			rep.Config.Duration, rep.Config.Clients, rep.Config.KeepLast, rep.Config.Files, rep.Config.MaxSize, rep.Config.Seed, rep.Config.PrunePause)
		rep.WriteMarkdown(w)
		if !raw {
			return
		}
		fmt.Fprintf(w, "\n## Raw figures\n\nTimes in seconds since the loops started; `prune_overlap` is the part of a backup's wall time during which a prune ran.\n\n```tsv\n")
		rep.WriteRaw(w)
		fmt.Fprintf(w, "```\n")
	}
	// the work directory is this machine's: not in the report
	text := func(raw bool) string {
		var b strings.Builder
		write(&b, raw)
		return strings.ReplaceAll(b.String(), cfg.Dir, "$WORK")
	}
	fmt.Print(text(false))
	if results != "" {
		if err := os.WriteFile(results, []byte(text(true)), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
			os.Exit(1)
		}
	}
	if len(rep.Failures) > 0 {
		fmt.Fprintf(os.Stderr, "soak: FAILED: %d failures\n", len(rep.Failures))
		os.Exit(1)
	}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func orUnknown(s string) string {
	if s == "" {
		return "(version unknown)"
	}
	return s
}

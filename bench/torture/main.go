//go:build linux

// Command torture is stillpoint's live-write torture benchmark: workloads that
// write while backups run, verifiers that decide whether a restored copy is a
// state the application really had, and the harness that backs them up with
// stillpoint, restic, kopia and cp in every mode and tabulates torn restores.
// See docs/consistency.md; bench/torture.sh is the usual way to run it.
//
//	torture run [flags]                 the harness (needs root)
//	torture work WORKLOAD [flags]       one application writer (started by run)
//	torture ctl pause|resume -dir AUX   pause/resume a writer at a safe point
//	torture verify WORKLOAD [flags]     judge one restored copy
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "run":
		err = runHarness(args)
	case "work":
		err = runWork(args)
	case "ctl":
		err = runCtl(args)
	case "verify":
		err = runVerify(args)
	case "-h", "--help", "help":
		usage()
		return
	default:
		usage()
		os.Exit(2)
	}
	if e, ok := err.(exitError); ok {
		os.Exit(int(e))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "torture:", err)
		os.Exit(1)
	}
}

// exitError is returned to exit with a code but no further message.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit code %d", int(e)) }

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  torture run [flags]                 run the benchmark (root; see torture run -h)
  torture work WORKLOAD [flags]       run one application writer (started by run)
  torture ctl pause|resume -dir AUX   pause or resume the writer whose files are in AUX
  torture verify WORKLOAD [flags]     judge one restored copy (see torture verify -h)
workloads: bank-sqlite-rollback, bank-sqlite-wal, bank-files, bank-gaps, big-file, seq-rewrite, git-churn, postgres
`)
}

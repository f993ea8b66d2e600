//go:build linux

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
)

// runVerify is `torture verify WORKLOAD -restored DIR -aux DIR`: judge a
// restored copy by hand (the aux directory holds the writer's logs; run
// keeps it with -keep).
func runVerify(args []string) error {
	if len(args) < 1 {
		return errors.New("usage: torture verify WORKLOAD -restored DIR -aux DIR [-big-mib N] [-seq-blocks N] [-sqlite-accounts N] [-pg-scale N]")
	}
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	restored := fs.String("restored", "", "the restored copy of the workload's directory")
	aux := fs.String("aux", "", "the writer's aux directory")
	cfg := &config{}
	fs.IntVar(&cfg.bigFileMiB, "big-mib", 1024, "size of big-file in MiB")
	fs.IntVar(&cfg.seqBlocks, "seq-blocks", 4096, "seq-rewrite: blocks of 4 KiB in the file")
	fs.IntVar(&cfg.sqliteAccounts, "sqlite-accounts", 20000, "accounts in the SQLite bank")
	fs.IntVar(&cfg.pgScale, "pg-scale", 10, "pgbench scale factor")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	for _, wl := range allWorkloads {
		if wl.name() != args[0] {
			continue
		}
		v := wl.verify(context.Background(), &wlEnv{cfg: cfg, aux: *aux}, *restored)
		if v.torn {
			fmt.Printf("torn: %s\n", v.reason)
			if len(v.fileTorn) > 0 {
				fmt.Printf("files not a state they had: %v\n", v.fileTorn)
			}
			return exitError(1)
		}
		fmt.Println("whole")
		return nil
	}
	return fmt.Errorf("verify: unknown workload %q", args[0])
}

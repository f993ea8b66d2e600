package main

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
)

func newCheckCmd(g *globals) *cobra.Command {
	var readData bool
	var subset string
	cmd := &cobra.Command{
		Use:   "check [--read-data | --read-data-subset N/M|P%|SIZE]",
		Short: "Verify the repository",
		Long: `Verify the repository's structure: indexes, packs, snapshots and trees, and that every
blob a snapshot needs is present. With --read-data every blob is read, decrypted and
hashed. Damaged objects and the snapshots they affect are named. Exit code 1 on damage.

--read-data-subset reads only some packs:
  N/M   the packs whose id's first byte modulo M is N-1 (M at most 256): the runs
        1/M, 2/M … M/M together read every pack exactly once, e.g. one a day
  P%    that share of the packs (at least one), picked at random, e.g. 10% or 2.5%
  SIZE  packs picked at random until they add up to SIZE bytes (suffix k, M, G, T)`,
		Example: `  stillpoint check
  stillpoint check --read-data-subset 1/7      # then 2/7 … 7/7 on the next days: every pack once a week
  stillpoint check --read-data`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var s repo.ReadSubset
			if cmd.Flags().Changed("read-data-subset") {
				if readData {
					return &exitError{code: exitUsage, err: errors.New("--read-data reads every pack and --read-data-subset some of them: give one of them")}
				}
				var err error
				if s, err = repo.ParseReadSubset(subset); err != nil {
					return &exitError{code: exitUsage, err: fmt.Errorf("--read-data-subset %w", err)}
				}
			}
			return runCheck(cmd.Context(), g, readData, s)
		},
	}
	cmd.Flags().BoolVar(&readData, "read-data", false, "read and verify every blob")
	cmd.Flags().StringVar(&subset, "read-data-subset", "", "read and verify the blobs of some packs: N/M, P% or SIZE (see above)")
	return cmd
}

func runCheck(ctx context.Context, g *globals, readData bool, subset repo.ReadSubset) error {
	rep := g.reporter()
	// check judges the store, not the local copies of its files
	g.access.NoCache = true
	r, err := openRepo(ctx, g)
	if err != nil {
		return err
	}
	lock, err := r.Lock(ctx, false, "check")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	res, err := r.Check(ctx, repo.CheckOptions{ReadData: readData, Subset: subset, Progress: rep.Step})
	if err != nil {
		return err
	}
	// the findings, then the verdict: the last line says how it went
	for _, w := range res.Warnings {
		rep.Warn(w.Object, "check", w.Message)
	}
	if !g.json {
		for _, e := range res.Errors {
			rep.Error(e.Object, e.Message)
		}
	}
	rep.Event(map[string]any{"type": "summary", "ok": res.OK(), "result": res})
	var read string
	switch {
	case readData:
		read = fmt.Sprintf("all data read (%d packs, %s)", res.PacksRead, report.Bytes(res.BytesRead))
	case !subset.IsZero():
		read = fmt.Sprintf("data of subset %s read (%d of %d packs, %s)", res.ReadSubset, res.PacksRead, res.Packs, report.Bytes(res.BytesRead))
	}
	if res.OK() {
		if read != "" {
			read = "; " + read
		}
		rep.Printf("no errors: structure of %s, %s, %s, %s verified%s\n", report.Count(res.Snapshots, "snapshot"),
			report.Count(res.Packs, "pack"), report.Count(res.Blobs, "blob"), report.Count(res.Trees, "tree"), read)
		return nil
	}
	if read != "" {
		rep.Printf("%s\n", read)
	}
	ids := make([]string, 0, len(res.DamagedSnapshots))
	for id := range res.DamagedSnapshots {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		rep.Printf("damaged snapshot %s: %d paths cannot be restored, e.g. %s\n", id[:8], len(res.DamagedSnapshots[id]), res.DamagedSnapshots[id][0])
	}
	return &exitError{code: exitFatal, err: fmt.Errorf("the repository has %d errors (files not named above still restore)", len(res.Errors))}
}

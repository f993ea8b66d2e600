package main

import (
	"context"
	"fmt"
	"sort"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

func newCheckCmd(g *globals) *cobra.Command {
	var readData bool
	cmd := &cobra.Command{
		Use:   "check",
		Short: "Verify the repository",
		Long: `Verify the repository's structure: indexes, packs, snapshots and trees, and that every
blob a snapshot needs is present. With --read-data every blob is read, decrypted and
hashed. Damaged objects and the snapshots they affect are named. Exit code 1 on damage.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runCheck(cmd.Context(), g, readData)
		},
	}
	cmd.Flags().BoolVar(&readData, "read-data", false, "read and verify every blob")
	return cmd
}

func runCheck(ctx context.Context, g *globals, readData bool) error {
	rep := g.reporter()
	r, err := openRepo(ctx, g)
	if err != nil {
		return err
	}
	lock, err := r.Lock(ctx, false, "check")
	if err != nil {
		return err
	}
	defer lock.Unlock()
	res, err := r.Check(ctx, repo.CheckOptions{ReadData: readData, Progress: rep.Step})
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
	what := "structure"
	if readData {
		what = "structure and all data"
	}
	if res.OK() {
		rep.Printf("no errors: %s of %d snapshots, %d packs, %d blobs, %d trees verified\n", what, res.Snapshots, res.Packs, res.Blobs, res.Trees)
		return nil
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

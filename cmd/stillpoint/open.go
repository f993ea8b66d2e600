package main

import (
	"context"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/run"
)

func openRepo(ctx context.Context, g *globals) (*repo.Repository, error) {
	r, err := run.Open(ctx, g.access)
	if err != nil {
		return nil, err
	}
	warnIndexProblems(g.reporter(), r)
	return r, nil
}

// warnIndexProblems says which index files could not be read: the blobs
// they list look missing until the damage is repaired. Every command that
// opens a repository calls it, so it also sends the repository's notes
// (a lock that append-only credentials cannot remove) to rep.
func warnIndexProblems(rep *report.Reporter, r *repo.Repository) {
	r.OnNote(func(msg string) { rep.Warn("", "note", msg) })
	damaged := func(p *repo.IndexLoadError) {
		rep.Warn("index/"+p.Name, "damaged", p.Err.Error()+"; the data it lists is treated as missing (run `stillpoint check`)")
	}
	for _, p := range r.IndexProblems() {
		damaged(p)
	}
	r.OnIndexProblem(damaged)
}

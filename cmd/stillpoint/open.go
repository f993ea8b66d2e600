package main

import (
	"context"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/run"
)

func openRepo(ctx context.Context, g *globals) (*repo.Repository, error) {
	return run.Open(ctx, g.access)
}

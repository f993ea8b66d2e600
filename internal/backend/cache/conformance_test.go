package cache_test

import (
	"context"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/backendtest"
	"github.com/stillpoint-backup/stillpoint/internal/backend/cache"
)

// The cache keeps every rule of a backend, with the copies in use: the
// repository id is given, so keys, index and snapshots are copied from
// the first Save or Load on.
func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		c, err := cache.New(backend.NewMem(), cache.Options{Dir: t.TempDir(), RepositoryID: backendtest.Name()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	})
}

// The same with every pack taken for a tree pack, so packs are copied too.
func TestConformanceTreePacks(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		c, err := cache.New(backend.NewMem(), cache.Options{Dir: t.TempDir(), RepositoryID: backendtest.Name()})
		if err != nil {
			t.Fatal(err)
		}
		return allTrees{c}
	})
}

type allTrees struct{ *cache.Cache }

func (a allTrees) Save(ctx context.Context, h backend.Handle, data []byte) error {
	return a.Cache.Save(backend.WithTreePack(ctx), h, data)
}

func (a allTrees) Load(ctx context.Context, h backend.Handle, off, n int64) ([]byte, error) {
	return a.Cache.Load(backend.WithTreePack(ctx), h, off, n)
}

func (a allTrees) LoadInto(ctx context.Context, h backend.Handle, off int64, buf []byte) error {
	return a.Cache.LoadInto(backend.WithTreePack(ctx), h, off, buf)
}

func (a allTrees) List(ctx context.Context, k backend.Kind, fn func(backend.FileInfo) error) error {
	return a.Cache.List(backend.WithTreePack(ctx), k, fn)
}

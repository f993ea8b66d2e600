//go:build linux

package e2e

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// TestPruneMemoryBounded builds, through the repository API, a repository
// of 1,000 snapshots over 2,000,000 blobs (2,000 directories of 1,000
// one-blob files; each snapshot holds 20 of the directories), forgets 100
// snapshots, and prunes it with the binary: its peak resident memory must
// stay under 500 MiB.
func TestPruneMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a repository of 2,000,000 blobs")
	}
	const (
		dirs        = 2000
		filesPerDir = 1000
		snapshots   = 1000
		perSnapshot = 20
		forgotten   = 100
		limitMiB    = 500
	)
	ctx := context.Background()
	e := newEnv(t)
	cfg := repo.DefaultConfig
	cfg.Compression = "off"
	be := backend.NewLocal(e.repo)
	cred := repo.Credential{Password: prunePassword}
	if _, err := repo.Init(ctx, be, cred, cfg); err != nil {
		t.Fatal(err)
	}
	e.extra = append(e.extra, "STILLPOINT_PASSWORD="+prunePassword)
	r, err := repo.Open(ctx, be, cred)
	if err != nil {
		t.Fatal(err)
	}
	lock, err := r.Lock(ctx, false, "test")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	dirTrees := make([]repo.ID, dirs)
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := make([]byte, 48)
			for d := w; d < dirs; d += 2 {
				tree := &repo.Tree{Nodes: make([]*repo.Node, 0, filesPerDir)}
				for f := range filesPerDir {
					binary.LittleEndian.PutUint64(data, uint64(d*filesPerDir+f))
					id := r.Hash(data)
					if _, err := r.SaveBlob(ctx, repo.DataBlob, id, data); err != nil {
						errs <- err
						return
					}
					tree.Nodes = append(tree.Nodes, &repo.Node{Name: fmt.Sprintf("f%04d", f), Type: repo.NodeFile, Mode: 0o644, Size: 48, Content: []repo.ID{id}})
				}
				id, err := r.SaveTree(ctx, tree)
				if err != nil {
					errs <- err
					return
				}
				dirTrees[d] = id
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	roots := make([]repo.ID, snapshots)
	for s := range snapshots {
		tree := &repo.Tree{}
		for k := range perSnapshot {
			d := (2*s + k) % dirs
			tree.Nodes = append(tree.Nodes, &repo.Node{Name: fmt.Sprintf("d%04d", d), Type: repo.NodeDir, Mode: 0o755, Subtree: dirTrees[d]})
		}
		tree.Sort()
		if roots[s], err = r.SaveTree(ctx, tree); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []repo.ID
	for s := range snapshots {
		snap := &repo.Snapshot{Time: time.Unix(int64(1e9+s), 0), Host: "h", Paths: []string{"/"}, Tree: roots[s]}
		id, err := r.SaveSnapshot(ctx, snap)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	lock.Unlock()
	blobs := r.Index().Len()
	r = nil
	for _, id := range ids[:forgotten] {
		if err := be.Remove(ctx, backend.Handle{Kind: backend.Snapshots, Name: id.String()}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("built %d blobs, %d snapshots in %v", blobs, snapshots, time.Since(start))
	if blobs < dirs*filesPerDir {
		t.Fatalf("test bug: %d blobs", blobs)
	}

	cmd := e.command(ctx, "--json", "prune")
	var out, errb limitedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The child's rusage would count this test process's memory: it is
	// forked from it and its maximum RSS is carried across exec. VmHWM is
	// the high-water mark of its own address space, sampled until it exits.
	var peakKiB int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
		for {
			data, err := os.ReadFile(status)
			if err != nil {
				return
			}
			for _, line := range strings.Split(string(data), "\n") {
				if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
					if n, err := strconv.ParseInt(f[1], 10, 64); err == nil && n > peakKiB {
						peakKiB = n
					}
				}
				if strings.HasPrefix(line, "State:") && strings.Contains(line, "zombie") {
					return
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	err = cmd.Wait()
	<-sampled
	if err != nil {
		t.Fatalf("prune: %v\n%s\n%s", err, out.String(), errb.String())
	}
	peak := peakKiB / 1024
	sum, _ := summary(t, out.String())["result"].(map[string]any)
	t.Logf("prune took %v, peak RSS %d MiB; removed %v packs, repacked %v", time.Since(t0), peak, sum["removed_packs"], sum["repack_packs"])
	if removed, _ := sum["removed_packs"].(float64); removed == 0 {
		t.Fatalf("prune removed nothing: %s", out.String())
	}
	if peak >= limitMiB {
		t.Fatalf("prune of %d blobs and %d snapshots peaked at %d MiB, over %d MiB", blobs, snapshots, peak, limitMiB)
	}
	e.must(t, 0, "check")
}

// limitedBuffer keeps the last 64 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.b = append(l.b, p...)
	if len(l.b) > 64<<10 {
		l.b = l.b[len(l.b)-64<<10:]
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }

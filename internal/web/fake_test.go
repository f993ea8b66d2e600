package web

import (
	"context"
	"fmt"
	"path"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// fakeSource is a daemon in memory: jobs, runs, and a RunNow that records
// its calls and adds a running run.
type fakeSource struct {
	mu       sync.Mutex
	jobs     []JobStatus
	runs     []*RunDetail // newest first
	repos    []Repository
	runNow   []string
	reposErr error
	now      time.Time // the start of runs RunNow adds
}

var _ Source = (*fakeSource)(nil)

func (f *fakeSource) Jobs(ctx context.Context) ([]JobStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.jobs), nil
}

func (f *fakeSource) job(name string) *JobStatus {
	for i := range f.jobs {
		if f.jobs[i].Name == name {
			return &f.jobs[i]
		}
	}
	return nil
}

func (f *fakeSource) Runs(ctx context.Context, job string, limit int) ([]RunSummary, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.job(job) == nil {
		return nil, fmt.Errorf("job %q: %w", job, ErrNotFound)
	}
	var out []RunSummary
	for _, r := range f.runs {
		if r.Job == job && len(out) < limit {
			out = append(out, r.RunSummary)
		}
	}
	return out, nil
}

func (f *fakeSource) Run(ctx context.Context, id string) (*RunDetail, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.runs {
		if r.ID == id {
			c := *r
			return &c, nil
		}
	}
	return nil, fmt.Errorf("run %q: %w", id, ErrNotFound)
}

func (f *fakeSource) RunNow(ctx context.Context, job string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	j := f.job(job)
	if j == nil {
		return "", fmt.Errorf("job %q: %w", job, ErrNotFound)
	}
	if j.Running != nil {
		return "", fmt.Errorf("job %q: run %s: %w", job, j.Running.ID, ErrBusy)
	}
	f.runNow = append(f.runNow, job)
	id := fmt.Sprintf("%s-manual-%d", job, len(f.runNow))
	r := &RunDetail{RunSummary: RunSummary{ID: id, Job: job, Kind: "backup", Trigger: "manual", Start: f.now, Status: StatusRunning, Outcomes: outcome.Counts{}}}
	f.runs = append([]*RunDetail{r}, f.runs...)
	j.Running = &r.RunSummary
	return id, nil
}

func (f *fakeSource) Repositories(ctx context.Context) ([]Repository, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.repos, f.reposErr
}

func (f *fakeSource) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.runNow)
}

// testFile is one file of a test snapshot.
type testFile struct {
	path    string
	data    string
	outcome outcome.Outcome
	reason  string
}

func newTestRepo(t *testing.T) *repo.Repository {
	t.Helper()
	r, err := repo.Init(context.Background(), backend.NewMem(), repo.Credential{KeyFile: repo.NewKeyFileSecret()}, repo.DefaultConfig)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// saveSnapshot stores files (and the directories on their way) as a
// snapshot of paths and returns it.
func saveSnapshot(t *testing.T, r *repo.Repository, when time.Time, paths []string, files []testFile) *repo.Snapshot {
	t.Helper()
	ctx := context.Background()
	dirs := map[string][]*repo.Node{"/": nil}
	var ensure func(d string)
	ensure = func(d string) {
		if _, ok := dirs[d]; ok {
			return
		}
		dirs[d] = nil
		ensure(path.Dir(d))
	}
	counts := outcome.Counts{}
	for _, f := range files {
		ensure(path.Dir(f.path))
		n := &repo.Node{Name: path.Base(f.path), Type: repo.NodeFile, Mode: 0o640, Mtime: when.UnixNano(), Outcome: f.outcome, Reason: f.reason, Links: 1, Size: uint64(len(f.data))}
		for i := 0; i < len(f.data); i += 5 {
			chunk := []byte(f.data[i:min(i+5, len(f.data))])
			id := r.Hash(chunk)
			if _, err := r.SaveBlob(ctx, repo.DataBlob, id, chunk); err != nil {
				t.Fatal(err)
			}
			n.Content = append(n.Content, id)
		}
		counts.Add(f.outcome)
		dirs[path.Dir(f.path)] = append(dirs[path.Dir(f.path)], n)
	}
	var save func(d string) repo.ID
	save = func(d string) repo.ID {
		tree := &repo.Tree{Nodes: slices.Clone(dirs[d])}
		for c := range dirs {
			if c != "/" && c != d && path.Dir(c) == d {
				tree.Nodes = append(tree.Nodes, &repo.Node{Name: path.Base(c), Type: repo.NodeDir, Mode: 0o755, Mtime: when.UnixNano(), Subtree: save(c)})
			}
		}
		tree.Sort()
		id, err := r.SaveTree(ctx, tree)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	root := save("/")
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	outs := map[string]int64{}
	for o, n := range counts {
		outs[o.String()] = n
	}
	s := &repo.Snapshot{Tree: root, Time: when, Host: "web-test", Paths: paths, Outcomes: outs, Partial: counts.NotWhole() > 0,
		Consistency: "file", Stats: repo.Stats{Files: int64(len(files))},
		Sources: []repo.SourceInfo{{Path: paths[0], Provider: "none", Consistency: "file"}}}
	id, err := r.SaveSnapshot(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	s.ID = id
	return s
}

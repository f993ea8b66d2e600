//go:build linux

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/metered"
)

// requestsOf reads the backup summary's requests.
func requestsOf(t *testing.T, out string) metered.Counts {
	t.Helper()
	raw, err := json.Marshal(summary(t, out)["requests"])
	if err != nil {
		t.Fatal(err)
	}
	var c metered.Counts
	if err := json.Unmarshal(raw, &c); err != nil || c.Requests == nil {
		t.Fatalf("the summary has no requests (%v):\n%s", err, out)
	}
	return c
}

// lastStats is the last line $STILLPOINT_REQUEST_STATS got.
func lastStats(t *testing.T, path, command string) metered.Counts {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	var rec struct {
		Command  string         `json:"command"`
		Requests metered.Counts `json:"requests"`
	}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Command != "stillpoint "+command {
		t.Fatalf("the last request stats are of %q, want %q", rec.Command, command)
	}
	return rec.Requests
}

func describe(c metered.Counts) string {
	var parts []string
	for _, k := range c.Kinds() {
		var ops []string
		for op, n := range c.ByKind[k] {
			ops = append(ops, op+" "+itoa(n))
		}
		sort.Strings(ops)
		parts = append(parts, k+": "+strings.Join(ops, ", "))
	}
	return itoa(c.Total) + " requests; " + strings.Join(parts, "; ")
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

// The metadata that every command reads (keys, index, snapshots, trees)
// comes from the local cache once it is warm: an unchanged backup makes a
// small, fixed number of requests, and snapshots, ls and diff load none of
// those files.
func TestS3CacheRequests(t *testing.T) {
	srv := s3Server(t)
	bucket := srv.NewBucket(t)
	e := s3Env(t, srv, bucket, "cached", srv.Admin)
	stats := filepath.Join(t.TempDir(), "requests.jsonl")
	e.extra = append(e.extra, "STILLPOINT_REQUEST_STATS="+stats)
	// data: the packs, of which only those of trees are read by these commands
	metadata := []backend.Kind{backend.Keys, backend.Indexes, backend.Snapshots, backend.Packs}

	// every directory the test needs is made before the first backup: a
	// new one beside the source's would change the time of the directory
	// above it, which the snapshot records
	u := s3Env(t, srv, bucket, "uncached", srv.Admin)
	u.extra = append(u.extra, "STILLPOINT_NO_CACHE=1")
	other := filepath.Join(t.TempDir(), "elsewhere")
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 5, 6<<20)
	// a file written just before a backup may be taken for one being
	// written during it, and read again by the next backup: let the source
	// age, so that the second backup is truly unchanged
	time.Sleep(2 * time.Second)
	e.must(t, 0, "init")
	first := requestsOf(t, e.must(t, 0, "--json", "backup", src).stdout)
	t.Logf("initial backup: %s", describe(first))
	id1 := e.snapshotIDs(t)[0]
	unchanged := requestsOf(t, e.must(t, 0, "--json", "backup", src).stdout)
	t.Logf("unchanged backup, warm cache: %s", describe(unchanged))
	for _, k := range metadata {
		if n := unchanged.Of(k, metered.OpLoad); n != 0 {
			t.Errorf("an unchanged backup with a warm cache loaded %d %s files", n, k)
		}
	}
	// what remains: the config, one listing each of keys, marks, index,
	// snapshots, the locks (before and after writing its own, which is
	// not read), its lock, the snapshot, the lock's removal
	if unchanged.Of("config", metered.OpLoad) != 1 || unchanged.Of("config", metered.OpStat) != 0 ||
		unchanged.Of("snapshots", metered.OpSave) != 1 || unchanged.Of("locks", metered.OpLoad) != 0 ||
		unchanged.Of("locks", metered.OpSave) != 1 || unchanged.Of("locks", metered.OpRemove) != 1 ||
		unchanged.Of("locks", metered.OpList) != 2 || unchanged.Of("gc", metered.OpList) != 1 || unchanged.Of("index", metered.OpList) != 1 {
		t.Errorf("an unchanged backup: %s", describe(unchanged))
	}
	// The snapshot records the directories above the source, and the
	// temporary directory's time changes whenever anything on the machine
	// makes a file there: then the root tree is stored anew, one tree pack
	// and one index file, with or without the cache. The bound is on the rest.
	written := unchanged.Of("data", metered.OpSave) + unchanged.Of("index", metered.OpSave)
	if written > 2 || unchanged.Of("data", metered.OpSave) > 1 {
		t.Errorf("an unchanged backup wrote %d packs and index files", written)
	} else if written > 0 {
		t.Logf("a directory above the source changed: the root tree was stored again (%d writes)", written)
	}
	// fewer than restic 0.19's 12 (docs/benchmarks.md, S3)
	if n := unchanged.Total - written; n > 11 {
		t.Errorf("an unchanged backup made %d requests (and %d writes of packs and index), want at most 11: %s", n, written, describe(unchanged))
	}

	mustWrite(t, filepath.Join(src, "d00", "changed.txt"), []byte("a change\n"))
	time.Sleep(2 * time.Second)
	second := requestsOf(t, e.must(t, 0, "--json", "backup", src).stdout)
	t.Logf("backup with one file new: %s", describe(second))
	ids := e.snapshotIDs(t)
	id2 := ids[len(ids)-1]

	// the same steps on a repository without the cache
	u.must(t, 0, "init")
	uFirst := requestsOf(t, u.must(t, 0, "--json", "backup", src).stdout)
	uUnchanged := requestsOf(t, u.must(t, 0, "--json", "backup", src).stdout)
	t.Logf("without the cache: initial %s; unchanged %s", describe(uFirst), describe(uUnchanged))
	t.Logf("requests per backup (initial, unchanged): with the cache %d, %d; without %d, %d",
		first.Total, unchanged.Total, uFirst.Total, uUnchanged.Total)

	// the same without the cache reads every index and snapshot file and the trees
	nocache := requestsOf(t, e.must(t, 0, "--json", "--no-cache", "backup", src).stdout)
	t.Logf("unchanged backup, --no-cache: %s", describe(nocache))
	if nocache.Of("index", metered.OpLoad) == 0 || nocache.Of("snapshots", metered.OpLoad) < 3 || nocache.Of("data", metered.OpLoad) == 0 {
		t.Errorf("--no-cache did not read the metadata from the store: %s", describe(nocache))
	}
	if nocache.Total <= unchanged.Total {
		t.Errorf("the cache saved nothing: %d requests with it, %d without", unchanged.Total, nocache.Total)
	}
	// STILLPOINT_NO_CACHE does the same
	withEnv := *e
	withEnv.extra = append(append([]string{}, e.extra...), "STILLPOINT_NO_CACHE=1")
	if n := requestsOf(t, withEnv.must(t, 0, "--json", "backup", src).stdout).Of("index", metered.OpLoad); n == 0 {
		t.Error("STILLPOINT_NO_CACHE=1 did not turn the cache off")
	}

	// snapshots, ls and diff with a warm cache (the two backups above wrote
	// their snapshots past it: the first listing copies them)
	e.must(t, 0, "snapshots")
	if c := lastStats(t, stats, "snapshots"); c.Of(backend.Snapshots, metered.OpLoad) != 2 {
		t.Errorf("snapshots after two backups without the cache: %s", describe(c))
	}
	for _, args := range [][]string{{"snapshots"}, {"ls", id2}, {"diff", id1, id2}} {
		res := e.must(t, 0, args...)
		c := lastStats(t, stats, args[0])
		t.Logf("%s: %s", args[0], describe(c))
		for _, k := range metadata {
			if n := c.Of(k, metered.OpLoad); n != 0 {
				t.Errorf("%s with a warm cache loaded %d %s files", args[0], n, k)
			}
		}
		if strings.Contains(res.stdout, "request") || strings.Contains(res.stderr, "request") {
			t.Errorf("%s talks about requests:\n%s", args[0], res)
		}
	}
	for _, args := range [][]string{{"snapshots"}, {"ls", id2}, {"diff", id1, id2}} {
		withEnv.must(t, 0, args...)
		t.Logf("%s without the cache: %s", args[0], describe(lastStats(t, stats, args[0])))
	}
	diff := e.must(t, 0, "diff", id1, id2)
	if !strings.Contains(diff.stdout, "changed.txt") {
		t.Fatalf("diff from the cache misses the new file:\n%s", diff)
	}

	// damaged copies are dropped, read again and rebuilt
	cacheRoot, err := filepath.Glob(filepath.Join(e.cacheDir, "*", "cache"))
	if err != nil || len(cacheRoot) != 1 {
		t.Fatalf("cache directories %v (%v)", cacheRoot, err)
	}
	damaged := 0
	for _, kind := range []string{"index", "snapshots", "data"} {
		files, _ := filepath.Glob(filepath.Join(cacheRoot[0], kind, "*"))
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/3] ^= 0x10
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
			damaged++
		}
	}
	if damaged < 3 {
		t.Fatalf("only %d copies in the cache", damaged)
	}
	ls := e.must(t, 0, "ls", id2)
	if !strings.Contains(ls.stdout, "changed.txt") {
		t.Fatalf("ls over damaged copies:\n%s", ls)
	}
	if c := lastStats(t, stats, "ls"); c.Of("index", metered.OpLoad) == 0 || c.Of("data", metered.OpLoad) == 0 {
		t.Errorf("damaged copies were not read again from the store: %s", describe(c))
	}
	e.must(t, 0, "ls", id2)
	if c := lastStats(t, stats, "ls"); c.Of("index", metered.OpLoad)+c.Of("snapshots", metered.OpLoad)+c.Of("data", metered.OpLoad) != 0 {
		t.Errorf("the copies were not rebuilt: %s", describe(c))
	}

	// --cache-dir names the directory; --no-cache writes nothing there
	e.must(t, 0, "--no-cache", "--cache-dir", other, "snapshots")
	if _, err := os.Stat(other); !os.IsNotExist(err) {
		t.Errorf("--no-cache made the cache directory (%v)", err)
	}
	e.must(t, 0, "--cache-dir", other, "ls", id2)
	if copies, _ := filepath.Glob(filepath.Join(other, filepath.Base(filepath.Dir(cacheRoot[0])), "cache", "snapshots", "*")); len(copies) == 0 {
		t.Errorf("no copies in --cache-dir %s", other)
	}

	// a forgotten snapshot's copy goes with it; check reads the store
	e.must(t, 0, "forget", id1)
	e.must(t, 0, "snapshots")
	if _, err := os.Stat(filepath.Join(cacheRoot[0], "snapshots", id1)); !os.IsNotExist(err) {
		t.Errorf("the copy of forgotten snapshot %s is still there (%v)", id1, err)
	}
	check := e.must(t, 0, "check")
	if !strings.HasPrefix(check.stdout, "no errors:") {
		t.Fatalf("check:\n%s", check)
	}
	if c := lastStats(t, stats, "check"); c.Of("index", metered.OpLoad) == 0 || c.Of("snapshots", metered.OpLoad) == 0 {
		t.Errorf("check read the cache, not the store: %s", describe(c))
	}

	// stillpoint cache lists the copies; --cleanup removes unused ones only
	id := filepath.Base(filepath.Dir(cacheRoot[0]))
	if out := e.must(t, 0, "cache").stdout; !strings.Contains(out, id[:12]) {
		t.Fatalf("cache does not list repository %s:\n%s", id, out)
	}
	e.must(t, 0, "cache", "--cleanup")
	if _, err := os.Stat(cacheRoot[0]); err != nil {
		t.Fatalf("cache --cleanup removed copies in use: %v", err)
	}
	if out := e.must(t, 0, "cache", "--cleanup", "--max-age", "1ns").stdout; !strings.Contains(out, "removed the copies of 1 repository ") {
		t.Fatalf("cache --cleanup --max-age 1ns:\n%s", out)
	}
	if _, err := os.Stat(cacheRoot[0]); !os.IsNotExist(err) {
		t.Fatalf("the copies are still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(cacheRoot[0]), "logs")); err != nil {
		t.Errorf("cache --cleanup removed the run logs: %v", err)
	}
	e.must(t, 0, "ls", id2)
	if c := lastStats(t, stats, "ls"); c.Of(backend.Snapshots, metered.OpLoad) == 0 {
		t.Errorf("after the cleanup ls read no snapshot from the store: %s", describe(c))
	}
}

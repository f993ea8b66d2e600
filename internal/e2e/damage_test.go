//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// openInProcess opens e's repository with the key file init wrote.
func (e *env) openInProcess(t *testing.T) *repo.Repository {
	t.Helper()
	keys, _ := filepath.Glob(filepath.Join(e.keyDir, "*.key"))
	if len(keys) != 1 {
		t.Fatalf("want one key file in %s, have %v", e.keyDir, keys)
	}
	data, err := os.ReadFile(keys[0])
	if err != nil {
		t.Fatal(err)
	}
	secret, err := repo.DecodeKeyFile(data)
	if err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(context.Background(), backend.NewLocal(e.repo), repo.Credential{KeyFile: secret})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// fileBlobs maps every file path of a snapshot to its content blobs.
func fileBlobs(t *testing.T, r *repo.Repository, tree repo.ID) map[string][]repo.ID {
	t.Helper()
	out := map[string][]repo.ID{}
	var walk func(dir string, id repo.ID)
	walk = func(dir string, id repo.ID) {
		tr, err := r.LoadTree(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range tr.Nodes {
			p := dir + "/" + n.Name
			switch n.Type {
			case repo.NodeDir:
				walk(p, n.Subtree)
			case repo.NodeFile:
				out[p] = n.Content
			}
		}
	}
	walk("", tree)
	return out
}

// copyRepo gives a scenario its own copy of the repository.
func (e *env) copyRepo(t *testing.T) *env {
	t.Helper()
	c := *e
	c.repo = filepath.Join(t.TempDir(), "repo")
	if err := os.CopyFS(c.repo, os.DirFS(e.repo)); err != nil {
		t.Fatal(err)
	}
	return &c
}

func (e *env) packPath(id repo.ID) string {
	s := id.String()
	return filepath.Join(e.repo, "data", s[:2], s)
}

type checkJSON struct {
	OK     bool `json:"ok"`
	Result struct {
		Errors []struct {
			Object  string `json:"object"`
			Message string `json:"message"`
		} `json:"errors"`
		Warnings []struct {
			Object  string `json:"object"`
			Message string `json:"message"`
		} `json:"warnings"`
		DamagedSnapshots map[string][]string `json:"damaged_snapshots"`
	} `json:"result"`
}

func (e *env) checkJSON(t *testing.T, code int, args ...string) checkJSON {
	t.Helper()
	res := e.must(t, code, append([]string{"--json", "check"}, args...)...)
	var c checkJSON
	raw, _ := json.Marshal(summary(t, res.stdout))
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c checkJSON) names(object string) bool {
	for _, e := range c.Result.Errors {
		if strings.Contains(e.Object, object) || strings.Contains(e.Message, object) {
			return true
		}
	}
	return false
}

// restoreDamaged restores snapshot id from a damaged repository: it must
// exit 3, report every path in bad (and no other), and restore every other
// file byte-identical.
func (e *env) restoreDamaged(t *testing.T, id, src string, want map[string]string, bad map[string]bool) {
	t.Helper()
	target := t.TempDir()
	res := e.must(t, 3, "--json", "restore", id, "--target", target)
	reported := map[string]bool{}
	for _, ev := range events(t, res.stdout) {
		if ev["type"] == "error" {
			p, _ := ev["path"].(string)
			reported[p] = true
			if !bad[p] {
				t.Errorf("restore reports an error for %s, which is not damaged: %v", p, ev["message"])
			}
		}
	}
	for p := range bad {
		if !reported[p] {
			t.Errorf("restore does not report damaged file %s", p)
		}
	}
	got := treeHash(t, filepath.Join(target, src))
	for rel, h := range want {
		if bad[filepath.Join(src, rel)] {
			continue
		}
		if got[rel] != h {
			t.Errorf("undamaged %s did not restore byte-identical", rel)
		}
	}
}

// TestDamagedRepository damages copies of one repository in four ways and
// checks that check names the damage and the snapshots it affects, and that
// restore still brings back every undamaged file.
func TestDamagedRepository(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	for i := range 8 {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("d%d", i%3), fmt.Sprintf("f%d.bin", i)), uint64(70+i), int64(2<<20+i*300<<10))
		mustWrite(t, filepath.Join(src, fmt.Sprintf("d%d", i%3), fmt.Sprintf("note%d.txt", i)), []byte(strings.Repeat("note ", i+1)))
	}
	e.must(t, 0, "init")
	s1, _ := e.backupJSON(t, 0, src)
	want1 := treeHash(t, src)
	idx1, _ := filepath.Glob(filepath.Join(e.repo, "index", "*"))
	for i := range 3 {
		writeRandom(t, filepath.Join(src, "later", fmt.Sprintf("g%d.bin", i)), uint64(90+i), 3<<20)
	}
	s2, _ := e.backupJSON(t, 0, src)
	want2 := treeHash(t, src)
	idx2, _ := filepath.Glob(filepath.Join(e.repo, "index", "*"))
	e.must(t, 0, "check", "--read-data")

	r := e.openInProcess(t)
	snaps, _, err := r.Snapshots(context.Background())
	if err != nil || len(snaps) != 2 {
		t.Fatalf("snapshots: %v %d", err, len(snaps))
	}
	files := fileBlobs(t, r, snaps[1].Tree)
	target := filepath.Join(src, "d1", "f1.bin")
	content := files[target]
	if len(content) == 0 {
		t.Fatalf("no content for %s", target)
	}
	bi, ok := r.Index().Lookup(content[0])
	if !ok {
		t.Fatal("blob not indexed")
	}
	// the files with a blob in the pack, and those needing exactly the damaged blob
	inPack := map[string]bool{}
	needsBlob := map[string]bool{}
	for p, ids := range files {
		for _, id := range ids {
			if b, _ := r.Index().Lookup(id); b.Pack == bi.Pack {
				inPack[p] = true
			}
			if id == bi.ID {
				needsBlob[p] = true
			}
		}
	}
	affects := func(c checkJSON, snap string, paths map[string]bool) {
		t.Helper()
		damaged := c.Result.DamagedSnapshots[snap]
		if len(damaged) == 0 {
			t.Errorf("check does not name snapshot %s as damaged: %+v", snap[:8], c.Result.DamagedSnapshots)
		}
		for _, p := range damaged {
			ok := paths[p]
			// a directory shared with a snapshot checked before is named once, as a whole
			for q := range paths {
				ok = ok || strings.HasSuffix(p, "/") && strings.HasPrefix(q, p)
			}
			if !ok {
				t.Errorf("check names %s as damaged in %s; it is not", p, snap[:8])
			}
		}
	}
	inBoth := func(paths map[string]bool) bool { // s1 holds the file too (not under later/)
		for p := range paths {
			if !strings.Contains(p, "/later/") {
				return true
			}
		}
		return false
	}

	t.Run("FlippedBit", func(t *testing.T) {
		d := e.copyRepo(t)
		f, err := os.OpenFile(d.packPath(bi.Pack), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		off := int64(bi.Offset) + int64(bi.Length)/2
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x04
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
		f.Close()
		structural := d.run(t, "check")
		t.Logf("structure-only check after a flipped bit: exit %d", structural.code)
		c := d.checkJSON(t, 1, "--read-data")
		if !c.names(bi.Pack.Short()) || !c.names(bi.ID.Short()) {
			t.Errorf("check --read-data does not name pack %s and blob %s: %+v", bi.Pack.Short(), bi.ID.Short(), c.Result.Errors)
		}
		affects(c, s2, needsBlob)
		if inBoth(needsBlob) {
			affects(c, s1, needsBlob)
		}
		d.restoreDamaged(t, s2, src, want2, needsBlob)
	})

	t.Run("TruncatedPack", func(t *testing.T) {
		d := e.copyRepo(t)
		p := d.packPath(bi.Pack)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		cut := int64(bi.Offset) + int64(bi.Length) - 1 // the blob loses its last byte
		if err := os.Truncate(p, cut); err != nil {
			t.Fatal(err)
		}
		c := d.checkJSON(t, 1)
		if !c.names(bi.Pack.Short()) || !strings.Contains(fmt.Sprint(c.Result.Errors), "truncated") {
			t.Errorf("check does not name the truncated pack %s (%d of %d bytes): %+v", bi.Pack.Short(), cut, fi.Size(), c.Result.Errors)
		}
		affects(c, s2, inPack)
		// blobs wholly before the cut still restore; the others must be reported
		lost := map[string]bool{}
		for path, ids := range files {
			for _, id := range ids {
				if b, _ := r.Index().Lookup(id); b.Pack == bi.Pack && int64(b.Offset)+int64(b.Length) > cut {
					lost[path] = true
				}
			}
		}
		d.restoreDamaged(t, s2, src, want2, lost)
	})

	t.Run("MissingPack", func(t *testing.T) {
		d := e.copyRepo(t)
		if err := os.Remove(d.packPath(bi.Pack)); err != nil {
			t.Fatal(err)
		}
		c := d.checkJSON(t, 1)
		if !c.names(bi.Pack.Short()) || !strings.Contains(fmt.Sprint(c.Result.Errors), "missing") {
			t.Errorf("check does not name the missing pack %s: %+v", bi.Pack.Short(), c.Result.Errors)
		}
		affects(c, s2, inPack)
		if inBoth(inPack) {
			affects(c, s1, inPack)
		}
		d.restoreDamaged(t, s2, src, want2, inPack)
	})

	// a backup reads the index only once its lock is visible: a damaged
	// index file found then is still named, as every other command names it
	t.Run("DamagedIndexSeenByBackup", func(t *testing.T) {
		d := e.copyRepo(t)
		rel, _ := filepath.Rel(e.repo, idx2[len(idx2)-1])
		if err := os.WriteFile(filepath.Join(d.repo, rel), []byte("not an index file at all"), 0o600); err != nil {
			t.Fatal(err)
		}
		res := d.run(t, "backup", src)
		name := filepath.Base(rel)
		warning := "warning: index/" + name + ": "
		if strings.Count(res.stderr, warning) != 1 || !strings.Contains(res.stderr, "treated as missing") {
			t.Errorf("the backup does not warn once that index/%s is damaged:\n%s", name, res)
		}
	})

	t.Run("MissingIndex", func(t *testing.T) {
		d := e.copyRepo(t)
		sort.Strings(idx1)
		var removed []string
		for _, p := range idx2 {
			if i := sort.SearchStrings(idx1, p); i < len(idx1) && idx1[i] == p {
				continue
			}
			rel, _ := filepath.Rel(e.repo, p)
			if err := os.Remove(filepath.Join(d.repo, rel)); err != nil {
				t.Fatal(err)
			}
			removed = append(removed, rel)
		}
		if len(removed) == 0 {
			t.Fatal("the second backup wrote no index file")
		}
		c := d.checkJSON(t, 1)
		if len(c.Result.DamagedSnapshots[s2]) == 0 || len(c.Result.DamagedSnapshots[s1]) != 0 {
			t.Errorf("with %v gone, check must name snapshot %s (and not %s) as damaged: %+v", removed, s2[:8], s1[:8], c.Result.DamagedSnapshots)
		}
		if !strings.Contains(fmt.Sprint(c.Result.Errors), "not in any index") {
			t.Errorf("check does not say what is missing: %+v", c.Result.Errors)
		}
		if !strings.Contains(fmt.Sprint(c.Result.Warnings), "in no index") {
			t.Errorf("check does not warn about the packs the lost index named: %+v", c.Result.Warnings)
		}
		// the first snapshot is untouched
		d.restoreAndCompare(t, s1, src, want1)
		d.must(t, 3, "restore", s2, "--target", t.TempDir())
	})
}

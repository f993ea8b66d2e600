//go:build linux

package e2e

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// packFiles lists the repository's packs: name -> size.
func (e *env) packFiles(t *testing.T) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	paths, _ := filepath.Glob(filepath.Join(e.repo, "data", "*", "*"))
	for _, p := range paths {
		// a running writer's temporary files come and go: never stat them
		if strings.HasPrefix(filepath.Base(p), ".") {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		out[fi.Name()] = fi.Size()
	}
	return out
}

// bucketOf is the N of N/M that a pack named name falls in: its first
// byte modulo M, plus one.
func bucketOf(t *testing.T, name string, m int) int {
	t.Helper()
	b, err := hex.DecodeString(name[:2])
	if err != nil {
		t.Fatal(err)
	}
	return int(b[0])%m + 1
}

// check --read-data-subset 1/5 … 5/5 reads every pack exactly once, and a
// pack damaged inside (its size unchanged) is found by exactly the run
// whose bucket holds it.
func TestCheckReadDataSubset(t *testing.T) {
	base := t.TempDir()
	e := newEnv(t)
	// several backups of different data: a data and a tree pack each
	for i := range 8 {
		src := filepath.Join(base, fmt.Sprintf("src%d", i))
		genTree(t, src, uint64(100+i), 1<<20)
		e.must(t, 0, "backup", src)
	}
	packs := e.packFiles(t)
	if len(packs) < 16 {
		t.Fatalf("only %d packs", len(packs))
	}
	var total int64
	for _, size := range packs {
		total += size
	}

	readCounts := func(res result) (int, int64) {
		t.Helper()
		r, _ := summary(t, res.stdout)["result"].(map[string]any)
		n, _ := r["packs_read"].(float64)
		b, _ := r["bytes_read"].(float64)
		return int(n), int64(b)
	}
	var packsRead int
	var bytesRead int64
	for n := 1; n <= 5; n++ {
		subset := fmt.Sprintf("%d/5", n)
		res := e.must(t, 0, "--json", "check", "--read-data-subset", subset)
		got, b := readCounts(res)
		want := 0
		var wantBytes int64
		for name, size := range packs {
			if bucketOf(t, name, 5) == n {
				want++
				wantBytes += size
			}
		}
		if got != want || b != wantBytes {
			t.Errorf("%s read %d packs, %d bytes; the packs of that bucket are %d, %d bytes", subset, got, b, want, wantBytes)
		}
		if r := summary(t, res.stdout)["result"].(map[string]any); r["read_subset"] != subset || r["read_data"] != true {
			t.Errorf("%s: summary says subset %v, read_data %v", subset, r["read_subset"], r["read_data"])
		}
		packsRead += got
		bytesRead += b
	}
	if packsRead != len(packs) || bytesRead != total {
		t.Fatalf("1/5 … 5/5 read %d packs, %d bytes; the repository has %d, %d bytes", packsRead, bytesRead, len(packs), total)
	}
	human := e.must(t, 0, "check", "--read-data-subset", "2/5")
	if !strings.Contains(human.stdout, "no errors") || !strings.Contains(human.stdout, "data of subset 2/5 read (") ||
		!strings.Contains(human.stdout, fmt.Sprintf(" of %d packs, ", len(packs))) {
		t.Errorf("human summary: %s", human)
	}

	// damage one data pack inside a blob, its size unchanged
	var victim string
	for name, size := range packs {
		if size > 64<<10 {
			victim = name
			break
		}
	}
	path := filepath.Join(e.repo, "data", victim[:2], victim)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[100] ^= 0xff
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	e.must(t, 0, "check") // the structure cannot see it
	vb := bucketOf(t, victim, 5)
	for n := 1; n <= 5; n++ {
		subset := fmt.Sprintf("%d/5", n)
		res := e.run(t, "check", "--read-data-subset", subset)
		found := strings.Contains(res.stderr, "pack "+victim[:8])
		if n == vb {
			if res.code != 1 || !found || !strings.Contains(res.stdout, "damaged snapshot") || !strings.Contains(res.stdout, "data of subset "+subset+" read") {
				t.Errorf("the run of the damaged pack's bucket: %s", res)
			}
		} else if res.code != 0 || found {
			t.Errorf("run %s, which does not read pack %s (bucket %d): %s", subset, victim[:8], vb, res)
		}
	}
	e.must(t, 1, "check", "--read-data")
	e.must(t, 1, "check", "--read-data-subset", "100%")

	// at random: a share of the packs, or packs up to a size (the damaged
	// pack may be among them or not)
	res := e.run(t, "--json", "check", "--read-data-subset", "50%")
	if got, _ := readCounts(res); got != len(packs)/2 || res.code > 1 {
		t.Errorf("50%% read %d of %d packs", got, len(packs))
	}
	res = e.run(t, "--json", "check", "--read-data-subset", "1k")
	if got, b := readCounts(res); got != 1 || b < 1024 {
		t.Errorf("1k read %d packs, %d bytes: %s", got, b, res)
	}
	res = e.run(t, "--json", "check", "--read-data-subset", "0.1%")
	if got, _ := readCounts(res); got != 1 {
		t.Errorf("0.1%% read %d packs, want one", got)
	}
}

// Bad subsets are usage errors: exit 2, one line that says the forms.
func TestCheckReadDataSubsetUsage(t *testing.T) {
	e := newEnv(t)
	e.must(t, 0, "init")
	for bad, want := range map[string]string{
		"0/5": "1 <= N <= M", "6/5": "1 <= N <= M", "1/300": "256", "0%": "more than 0%", "101%": "at most 100%",
		"junk": "use N/M", "-5%": "use N/M", "": "use N/M",
	} {
		res := e.must(t, 2, "check", "--read-data-subset", bad)
		oneLine(t, res, "--read-data-subset", want)
	}
	oneLine(t, e.must(t, 2, "check", "--read-data", "--read-data-subset", "1/5"), "give one of them")
}

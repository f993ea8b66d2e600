//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// bin is the stillpoint binary built once for the package.
var bin string

func TestMain(m *testing.M) {
	if db := os.Getenv("STILLPOINT_E2E_BANK"); db != "" {
		bankWriter(db)
		return
	}
	dir, err := os.MkdirTemp("", "stillpoint-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// others (user nobody) must be able to run it
	_ = os.Chmod(dir, 0o755)
	bin = filepath.Join(dir, "stillpoint")
	build := exec.Command("go", "build", "-o", bin, "github.com/stillpoint-backup/stillpoint/cmd/stillpoint")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building stillpoint:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// env is one repository's settings for the binary.
type env struct {
	repo     string
	keyDir   string
	cacheDir string
	extra    []string // more KEY=VALUE
	cred     *syscall.Credential
}

func newEnv(t *testing.T) *env {
	d := t.TempDir()
	return &env{repo: filepath.Join(d, "repo"), keyDir: filepath.Join(d, "keys"), cacheDir: filepath.Join(d, "cache")}
}

type result struct {
	code           int
	stdout, stderr string
	args           []string
}

func (r result) String() string {
	return fmt.Sprintf("stillpoint %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(r.args, " "), r.code, tail(r.stdout), tail(r.stderr))
}

func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

func (e *env) command(ctx context.Context, args ...string) *exec.Cmd {
	full := append([]string{"--repo", e.repo}, args...)
	cmd := exec.CommandContext(ctx, bin, full...)
	var environ []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "STILLPOINT_") {
			continue
		}
		environ = append(environ, kv)
	}
	environ = append(environ, "STILLPOINT_KEY_DIR="+e.keyDir, "STILLPOINT_CACHE_DIR="+e.cacheDir)
	cmd.Env = append(environ, e.extra...)
	if e.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: e.cred}
	}
	return cmd
}

// run runs the binary to completion (at most 2 minutes).
func (e *env) run(t *testing.T, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := e.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String(), args: args}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.code = ee.ExitCode()
	default:
		t.Fatalf("stillpoint %v: %v\n%s", args, err, res)
	}
	return res
}

// must runs the binary and fails the test unless it exits with code.
func (e *env) must(t *testing.T, code int, args ...string) result {
	t.Helper()
	res := e.run(t, args...)
	if res.code != code {
		t.Fatalf("want exit %d, got %s", code, res)
	}
	return res
}

// events parses --json output: one object per line.
func events(t *testing.T, out string) []map[string]any {
	t.Helper()
	var evs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("not a JSON line: %q: %v", line, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

func summary(t *testing.T, out string) map[string]any {
	t.Helper()
	for _, ev := range events(t, out) {
		if ev["type"] == "summary" {
			return ev
		}
	}
	t.Fatalf("no summary event in:\n%s", out)
	return nil
}

// snapshotIDs lists the snapshots' full ids, oldest first.
func (e *env) snapshotIDs(t *testing.T) []string {
	t.Helper()
	res := e.must(t, 0, "--json", "snapshots")
	var snaps []struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(res.stdout)), &snaps); err != nil {
		t.Fatalf("snapshots --json: %v\n%s", err, res)
	}
	ids := make([]string, len(snaps))
	for i, s := range snaps {
		ids[i] = s.ID
	}
	return ids
}

// --- source trees --------------------------------------------------------

// fill writes n random bytes to w.
func fill(w io.Writer, r *rand.ChaCha8, n int64) error {
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := min(n, int64(len(buf)))
		_, _ = r.Read(buf[:k])
		if _, err := w.Write(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

func writeRandom(t testing.TB, path string, seed uint64, size int64) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	var s [32]byte
	for i := range 4 {
		s[i*8] = byte(seed >> (8 * i))
	}
	s[31] = byte(seed >> 32)
	if err := fill(f, rand.NewChaCha8(s), size); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

var words = strings.Fields("backup restore snapshot pack index tree blob chunk key lock check data repository file directory the of and a to in is")

// genTree writes a mixed tree of about total bytes under dir: large random
// files, compressible text, many small files, empty files, duplicates,
// symlinks and nested directories. The same seed gives the same tree.
func genTree(t testing.TB, dir string, seed uint64, total int64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 42))
	var written int64
	var files []string
	for i := 0; written < total; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", r.IntN(6)), fmt.Sprintf("s%d", r.IntN(4)))
		var p string
		switch k := r.IntN(10); {
		case k < 2: // large random
			p = filepath.Join(sub, fmt.Sprintf("big-%d.bin", i))
			size := int64(1<<20 + r.IntN(12<<20))
			writeRandom(t, p, seed*1000+uint64(i), size)
			written += size
		case k < 4: // compressible text
			p = filepath.Join(sub, fmt.Sprintf("text-%d.txt", i))
			var b strings.Builder
			size := 4<<10 + r.IntN(2<<20)
			for b.Len() < size {
				b.WriteString(words[r.IntN(len(words))])
				b.WriteByte(" \n"[r.IntN(2)])
			}
			mustWrite(t, p, []byte(b.String()))
			written += int64(b.Len())
		case k < 8: // small
			p = filepath.Join(sub, fmt.Sprintf("small-%d", i))
			size := int64(r.IntN(16 << 10))
			writeRandom(t, p, seed*1000+uint64(i), size)
			written += size + 512
		case k == 8 && len(files) > 0: // duplicate of an earlier file
			src := files[r.IntN(len(files))]
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			p = filepath.Join(sub, fmt.Sprintf("dup-%d", i))
			mustWrite(t, p, data)
			written += int64(len(data))
		default: // empty file and a symlink
			p = filepath.Join(sub, fmt.Sprintf("empty-%d", i))
			mustWrite(t, p, nil)
			if err := os.Symlink(fmt.Sprintf("../target-%d", i), filepath.Join(sub, fmt.Sprintf("link-%d", i))); err != nil {
				t.Fatal(err)
			}
			written += 512
		}
		files = append(files, p)
	}
}

func mustWrite(t testing.TB, p string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// treeHash describes every entry below dir: content hash, link target,
// permission bits. Two trees with equal maps are equal for a restore.
func treeHash(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link:" + target
		case d.IsDir():
			if rel != "." {
				out[rel] = fmt.Sprintf("dir:%o", info.Mode().Perm())
			}
		default:
			out[rel] = fileHash(t, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fileHash describes one regular file as treeHash does.
func fileHash(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("file:%o:%s", info.Mode().Perm(), hex.EncodeToString(h.Sum(nil)))
}

// diffTrees returns the paths that differ (at most a few), "" when equal.
func diffTrees(got, want map[string]string) string {
	var d []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			d = append(d, "missing "+p)
		} else if g != w {
			d = append(d, "differs "+p)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			d = append(d, "extra "+p)
		}
	}
	sort.Strings(d)
	if len(d) > 8 {
		d = append(d[:8], fmt.Sprintf("… %d more", len(d)-8))
	}
	return strings.Join(d, "; ")
}

// restoreAndCompare restores snapshot id and compares src's copy with want.
func (e *env) restoreAndCompare(t *testing.T, id, src string, want map[string]string) {
	t.Helper()
	target := t.TempDir()
	e.must(t, 0, "restore", id, "--target", target)
	if d := diffTrees(treeHash(t, filepath.Join(target, src)), want); d != "" {
		t.Fatalf("snapshot %s does not restore byte-identical: %s", id[:8], d)
	}
	os.RemoveAll(target)
}

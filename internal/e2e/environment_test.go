//go:build linux

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
)

// TestFullRepositoryDisk backs up more than fits on the repository's
// filesystem (a 24 MiB tmpfs): the run must fail with exit 1 and say that
// there is no space, leave a repository that checks clean and records no
// snapshot, and work again once there is space.
func TestFullRepositoryDisk(t *testing.T) {
	ci.NeedRoot(t)
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=24m,mode=0700"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(mnt, 0); err != nil {
			_ = syscall.Unmount(mnt, syscall.MNT_DETACH)
		}
	})
	e := newEnv(t)
	e.repo = filepath.Join(mnt, "repo")
	ballast := filepath.Join(mnt, "ballast")
	writeRandom(t, ballast, 1, 6<<20)
	e.must(t, 0, "init")

	big := filepath.Join(t.TempDir(), "big")
	for i := range 5 {
		writeRandom(t, filepath.Join(big, fmt.Sprintf("f%d", i)), uint64(10+i), 8<<20) // incompressible
	}
	res := e.must(t, 1, "backup", big)
	t.Logf("full disk: %s", strings.TrimSpace(res.stderr))
	if !strings.Contains(res.stderr, "no space left on device") {
		t.Fatalf("the error does not say the disk is full: %s", res)
	}
	if strings.Count(strings.TrimSpace(res.stderr), "\n") > 5 {
		t.Errorf("a full disk should give one clear error, not pages: %s", res)
	}
	chk := e.must(t, 0, "check")
	if strings.Contains(chk.stderr, "error:") {
		t.Fatalf("check after a full disk: %s", chk)
	}
	if ids := e.snapshotIDs(t); len(ids) != 0 {
		t.Fatalf("the failed backup recorded snapshots %v", ids)
	}

	// free space: the next backup (of what fits) succeeds and restores
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	small := filepath.Join(t.TempDir(), "small")
	writeRandom(t, filepath.Join(small, "a"), 20, 3<<20)
	mustWrite(t, filepath.Join(small, "b.txt"), []byte("still here"))
	id, _ := e.backupJSON(t, 0, small)
	e.must(t, 0, "check", "--read-data")
	e.restoreAndCompare(t, id, small, treeHash(t, small))
}

func nobody(t *testing.T) *syscall.Credential {
	t.Helper()
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Fatalf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}} // no supplementary groups of root
}

// problemEvents maps path -> message of the backup's per-file warnings.
func problemEvents(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, ev := range events(t, out) {
		if ev["type"] == "warning" {
			p, _ := ev["path"].(string)
			msg, _ := ev["message"].(string)
			m[p] = msg
		}
	}
	return m
}

// TestBadSourceInput: a missing source path and an unreadable file (the
// backup runs as user nobody, so permissions apply) are reported per file
// in --json, the rest is backed up, the exit code is 3 and the snapshot
// exists and restores.
func TestBadSourceInput(t *testing.T) {
	ci.NeedRoot(t)
	cred := nobody(t)
	base, err := os.MkdirTemp("", "stillpoint-e2e-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	e := &env{repo: filepath.Join(base, "repo"), keyDir: filepath.Join(base, "keys"), cacheDir: filepath.Join(base, "cache"), cred: cred}
	for _, d := range []string{e.repo, e.keyDir, e.cacheDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, int(cred.Uid), int(cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(base, "src")
	genTree(t, src, 3, 4<<20)
	secret := filepath.Join(src, "d00", "secret.db")
	mustWrite(t, secret, []byte("root only"))
	if err := os.Chmod(secret, 0); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(base, "no-such-dir")

	e.must(t, 0, "init")
	res := e.must(t, 3, "--json", "backup", src, missing)
	probs := problemEvents(t, res.stdout)
	if msg, ok := probs[missing]; !ok || !strings.Contains(msg, "no such file") {
		t.Errorf("missing source path not reported with its reason: %q (events %v)", msg, probs)
	}
	if msg, ok := probs[secret]; !ok || !strings.Contains(msg, "permission") {
		t.Errorf("unreadable file not reported with its reason: %q (events %v)", msg, probs)
	}
	if len(probs) != 2 {
		t.Errorf("want exactly 2 problems, got %v", probs)
	}
	sum := summary(t, res.stdout)
	if sum["exit_code"] != float64(3) || sum["partial"] != true {
		t.Errorf("summary: exit_code %v partial %v", sum["exit_code"], sum["partial"])
	}
	id, _ := sum["snapshot_id"].(string)
	if ids := e.snapshotIDs(t); len(ids) != 1 || ids[0] != id {
		t.Fatalf("snapshots %v, summary names %s", ids, id)
	}
	// everything else is in the snapshot, byte for byte
	want := treeHash(t, src)
	delete(want, "d00/secret.db")
	target := t.TempDir()
	root := *e
	root.cred = nil
	root.must(t, 0, "restore", id, "--target", target)
	if d := diffTrees(treeHash(t, filepath.Join(target, src)), want); d != "" {
		t.Fatalf("restore: %s", d)
	}
}

// procRead returns how many bytes process pid has read (rchar).
func procRead(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "rchar: "); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("no rchar in /proc/%d/io", pid)
}

// TestFilesVanishDuringBackup deletes files after the backup listed their
// directory and before it reached them: the backup is 1500 files read in
// name order, and the last 200 are deleted once it has read 24 MiB. Each
// must be reported as vanished, the rest stored; exit code 3.
func TestFilesVanishDuringBackup(t *testing.T) {
	e := newEnv(t)
	src := filepath.Join(t.TempDir(), "src")
	const n, doomed = 1500, 200
	var names []string
	for i := range n {
		p := filepath.Join(src, "v", fmt.Sprintf("f%05d", i))
		writeRandom(t, p, uint64(3000+i), 96<<10)
		names = append(names, p)
	}
	e.must(t, 0, "init")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := e.command(ctx, "--json", "backup", "--snapshot", "off", src)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		rc, err := procRead(cmd.Process.Pid)
		if err == nil && rc > 24<<20 {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("the backup ended (%v) before it read 24 MiB: test too small for this machine\n%s", err, errb.String())
		case <-time.After(time.Millisecond):
		}
	}
	for _, p := range names[n-doomed:] {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	err := <-done
	res := result{stdout: out.String(), stderr: errb.String(), args: cmd.Args}
	if ee, ok := err.(*exec.ExitError); ok {
		res.code = ee.ExitCode()
	}
	if res.code != 3 {
		t.Fatalf("want exit 3: %s", res)
	}
	probs := problemEvents(t, res.stdout)
	for _, p := range names[n-doomed:] {
		if msg, ok := probs[p]; !ok || !strings.Contains(msg, "vanished") {
			t.Fatalf("deleted %s: reported %q, want a vanished warning (%d warnings)", p, msg, len(probs))
		}
	}
	if len(probs) != doomed {
		t.Errorf("%d warnings for %d deleted files", len(probs), doomed)
	}
	id, _ := summary(t, res.stdout)["snapshot_id"].(string)
	e.restoreAndCompare(t, id, src, treeHash(t, src))
}

// TestWrongCredentials: a wrong password, another repository's key file, a
// damaged key file and a missing key file each fail with exit 1 and say why.
func TestWrongCredentials(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	mustWrite(t, filepath.Join(src, "a"), []byte("a"))

	pw := newEnv(t)
	pw.extra = []string{"STILLPOINT_PASSWORD=correct horse"}
	pw.must(t, 0, "init")
	pw.backupJSON(t, 0, src)
	wrong := *pw
	wrong.extra = []string{"STILLPOINT_PASSWORD=battery staple"}
	for _, args := range [][]string{{"snapshots"}, {"backup", src}, {"check"}} {
		res := wrong.must(t, 1, args...)
		if !strings.Contains(res.stderr, "wrong password or key file") {
			t.Errorf("%v with a wrong password: %s", args, res)
		}
	}
	if ids := pw.snapshotIDs(t); len(ids) != 1 {
		t.Fatalf("%d snapshots after backups with a wrong password", len(ids))
	}

	kf := newEnv(t)
	kf.must(t, 0, "init")
	other := filepath.Join(t.TempDir(), "other.key")
	mustWrite(t, other, repo.EncodeKeyFile("someone-else", repo.NewKeyFileSecret()))
	if res := kf.must(t, 1, "--key-file", other, "snapshots"); !strings.Contains(res.stderr, "wrong password or key file") {
		t.Errorf("another key file: %s", res)
	}
	garbage := filepath.Join(t.TempDir(), "garbage.key")
	mustWrite(t, garbage, []byte("this is not a key\n"))
	if res := kf.must(t, 1, "--key-file", garbage, "snapshots"); !strings.Contains(res.stderr, "key file is damaged") {
		t.Errorf("damaged key file: %s", res)
	}
	lost := *kf
	lost.keyDir = t.TempDir()
	if res := lost.must(t, 1, "snapshots"); !strings.Contains(res.stderr, "needs its key") {
		t.Errorf("missing key file: %s", res)
	}
	kf.must(t, 0, "snapshots")
}

func writeLockFile(t *testing.T, e *env, pid int, exclusive bool) string {
	t.Helper()
	host, _ := os.Hostname()
	data, _ := json.Marshal(map[string]any{"exclusive": exclusive, "host": host, "pid": pid, "command": "prune", "time": time.Now().UTC()})
	p := filepath.Join(e.repo, "locks", repo.NewRandomID().String())
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestLockedRepository: an exclusive lock of a live process stops a
// backup with a clear error and survives unlock; one of a dead process is
// named stale and removed by unlock, after which the backup runs.
func TestLockedRepository(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	mustWrite(t, filepath.Join(src, "a"), []byte("a"))
	e := newEnv(t)
	e.must(t, 0, "init")

	live := writeLockFile(t, e, os.Getpid(), true)
	res := e.must(t, 1, "backup", src)
	if !strings.Contains(res.stderr, "repository is locked") || !strings.Contains(res.stderr, `exclusive lock by "prune"`) ||
		!strings.Contains(res.stderr, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("locked repository: %s", res)
	}
	if strings.Contains(res.stderr, "stillpoint unlock") {
		t.Errorf("a live lock is called stale: %s", res)
	}
	if un := e.must(t, 0, "unlock"); !strings.Contains(un.stdout, "still held") {
		t.Errorf("unlock with a live lock: %s", un)
	}
	if _, err := os.Stat(live); err != nil {
		t.Fatalf("unlock removed a live process's lock: %v", err)
	}
	if err := os.Remove(live); err != nil {
		t.Fatal(err)
	}

	stale := writeLockFile(t, e, deadPID(t), true)
	res = e.must(t, 1, "backup", src)
	if !strings.Contains(res.stderr, "stillpoint unlock") {
		t.Errorf("a dead process's lock is not called stale: %s", res)
	}
	if un := e.must(t, 0, "unlock"); !strings.Contains(un.stdout, "removed") {
		t.Errorf("unlock of a stale lock: %s", un)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale lock still there: %v", err)
	}
	e.backupJSON(t, 0, src)
}

// deadPID returns the id of a process that has exited and whose id no
// process has taken again.
func deadPID(t *testing.T) int {
	t.Helper()
	for range 10 {
		dead := exec.Command(bin, "--version")
		if err := dead.Run(); err != nil {
			t.Fatal(err)
		}
		if syscall.Kill(dead.Process.Pid, 0) != nil {
			return dead.Process.Pid
		}
	}
	t.Fatal("every exited process's id was taken again at once")
	return 0
}

//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/s3server"
)

// keyFile is the one key file init wrote for e.
func (e *env) keyFile(t *testing.T) string {
	t.Helper()
	keys, _ := filepath.Glob(filepath.Join(e.keyDir, "*.key"))
	if len(keys) != 1 {
		t.Fatalf("want one key file in %s, have %v", e.keyDir, keys)
	}
	return keys[0]
}

// copyFrom runs `copy --json` into e from src (opened with its key file)
// and returns the summary.
func (e *env) copyFrom(t *testing.T, src *env, args ...string) (map[string]any, result) {
	t.Helper()
	res := e.must(t, 0, append([]string{"--json", "copy", "--from-repo", src.repo, "--from-key-file", src.keyFile(t)}, args...)...)
	return summary(t, res.stdout), res
}

type manifest struct {
	ID       string    `json:"id"`
	Time     time.Time `json:"time"`
	Host     string    `json:"host"`
	Paths    []string  `json:"paths"`
	Tags     []string  `json:"tags"`
	Outcomes any       `json:"outcomes"`
	Size     int64     `json:"size"`
	Files    int64     `json:"files"`
}

func (e *env) manifests(t *testing.T) []manifest {
	t.Helper()
	res := e.must(t, 0, "--json", "snapshots")
	var out []manifest
	if err := json.Unmarshal([]byte(strings.TrimSpace(res.stdout)), &out); err != nil {
		t.Fatalf("snapshots --json: %v\n%s", err, res)
	}
	return out
}

// rawBlobs counts the blobs of snaps (all and data blobs) with stats --mode raw-data.
func (e *env) rawBlobs(t *testing.T, snaps ...string) int64 {
	all, _ := e.rawBlobCounts(t, snaps...)
	return all
}

func (e *env) rawBlobCounts(t *testing.T, snaps ...string) (all, data int64) {
	t.Helper()
	res := e.must(t, 0, append([]string{"--json", "stats", "--mode", "raw-data"}, snaps...)...)
	st, _ := summary(t, res.stdout)["stats"].(map[string]any)
	return num(t, st, "blobs"), num(t, st, "data_blobs")
}

// unindexedPacks is the number of packs check finds in no index.
func unindexedPacks(t *testing.T, e *env) int {
	t.Helper()
	chk := e.must(t, 0, "check")
	if m := unrefRE.FindStringSubmatch(chk.stderr + chk.stdout); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

func checkClean(t *testing.T, e *env, args ...string) {
	t.Helper()
	chk := e.run(t, append([]string{"check"}, args...)...)
	if chk.code != 0 || strings.Contains(chk.stderr, "error:") {
		t.Fatalf("check %v: %s", args, chk)
	}
}

// TestCopyBetweenRepositories copies two snapshots into a repository with
// another key (a password, where the source has a key file) and other
// compression: a dry run first says what the copy then sends, every copy
// restores as its source did, the manifests keep what they said, and a
// second copy sends nothing. A wrong source password is a clear error.
func TestCopyBetweenRepositories(t *testing.T) {
	src, dst := newEnv(t), newEnv(t)
	data := filepath.Join(t.TempDir(), "data")
	genTree(t, data, 14, 24<<20)
	src.must(t, 0, "init", "--compression", "off")
	id1, _ := src.backupJSON(t, 0, "--tag", "first", data)
	want1 := treeHash(t, data)
	writeRandom(t, filepath.Join(data, "d00", "new.bin"), 1401, 5<<20)
	mustWrite(t, filepath.Join(data, "d01", "note.txt"), []byte(strings.Repeat("copy me ", 5000)))
	id2, _ := src.backupJSON(t, 0, data)
	want2 := treeHash(t, data)

	dst.extra = append(dst.extra, "STILLPOINT_PASSWORD=target-password")
	dst.must(t, 0, "init", "--compression", "better")

	dry, _ := dst.copyFrom(t, src, "--dry-run")
	if len(dst.snapshotIDs(t)) != 0 || num(t, dry, "stored_bytes_sent") != 0 {
		t.Fatalf("a dry run wrote to the target: %v", dry)
	}
	sum, res := dst.copyFrom(t, src)
	if got := num(t, sum, "snapshots_copied"); got != 2 {
		t.Fatalf("copied %d snapshots, want 2: %s", got, res)
	}
	wantBlobs := src.rawBlobs(t)
	if got := num(t, sum, "blobs_sent"); got != wantBlobs || got != num(t, dry, "blobs_sent") {
		t.Fatalf("sent %d blobs, the dry run said %d, the source's snapshots have %d", got, num(t, dry, "blobs_sent"), wantBlobs)
	}
	if num(t, sum, "bytes_sent") != num(t, dry, "bytes_sent") {
		t.Fatalf("sent %d bytes, the dry run said %d", num(t, sum, "bytes_sent"), num(t, dry, "bytes_sent"))
	}
	copies := map[string]string{} // source id -> target id
	for _, ev := range events(t, res.stdout) {
		if ev["type"] == "snapshot" {
			copies[ev["source"].(string)], _ = ev["target"].(string)
		}
	}
	checkClean(t, dst, "--read-data")
	dst.restoreAndCompare(t, copies[id1], data, want1)
	dst.restoreAndCompare(t, copies[id2], data, want2)

	// the manifests say what the source's said
	srcM, dstM := src.manifests(t), dst.manifests(t)
	if len(dstM) != 2 {
		t.Fatalf("target has %d snapshots", len(dstM))
	}
	for i := range srcM {
		s, d := srcM[i], dstM[i]
		sj, _ := json.Marshal([]any{s.Time.Format(time.RFC3339Nano), s.Host, s.Paths, s.Tags, s.Outcomes, s.Size, s.Files})
		dj, _ := json.Marshal([]any{d.Time.Format(time.RFC3339Nano), d.Host, d.Paths, d.Tags, d.Outcomes, d.Size, d.Files})
		if string(sj) != string(dj) || copies[s.ID] != d.ID {
			t.Fatalf("copy of %s:\n%s\nsource:\n%s", s.ID[:8], dj, sj)
		}
	}
	// the stored manifest names its source
	r, err := repo.Open(context.Background(), backend.NewLocal(dst.repo), repo.Credential{Password: "target-password"})
	if err != nil {
		t.Fatal(err)
	}
	id, _ := repo.ParseID(copies[id2])
	sn, err := r.LoadSnapshot(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	if sn.Original == nil || sn.Original.String() != id2 || sn.CopiedFrom == nil || sn.CopiedFrom.Snapshot.String() != id2 ||
		sn.Parent == nil || sn.Parent.String() != copies[id1] {
		t.Fatalf("copy of %s: original %v, copied_from %+v, parent %v", id2[:8], sn.Original, sn.CopiedFrom, sn.Parent)
	}

	again, res := dst.copyFrom(t, src)
	if num(t, again, "blobs_sent") != 0 || num(t, again, "snapshots_copied") != 0 || num(t, again, "snapshots_skipped") != 2 ||
		num(t, again, "blobs_read") != 0 {
		t.Fatalf("second copy: %s", res)
	}
	human := dst.must(t, 0, "copy", "--from-repo", src.repo, "--from-key-file", src.keyFile(t))
	if !strings.Contains(human.stdout, "skipped: already in the target as "+copies[id1][:8]) {
		t.Fatalf("a skipped snapshot is not said so: %s", human)
	}
	if n := len(dst.snapshotIDs(t)); n != 2 {
		t.Fatalf("target has %d snapshots after copying again", n)
	}

	// a source opened with a password, and a wrong one
	pwSrc := newEnv(t)
	pwSrc.extra = append(pwSrc.extra, "STILLPOINT_PASSWORD=source-password")
	pwSrc.must(t, 0, "init")
	pwSrc.must(t, 0, "backup", filepath.Join(data, "d01"))
	wrong := *dst
	wrong.extra = append(wrong.extra, "STILLPOINT_FROM_PASSWORD=not-it", "STILLPOINT_FROM_REPOSITORY="+pwSrc.repo)
	bad := wrong.must(t, 1, "copy")
	if !strings.Contains(bad.stderr, "source repository") || !strings.Contains(bad.stderr, "wrong password or key file") {
		t.Fatalf("wrong source password: %s", bad)
	}
	right := *dst
	right.extra = append(right.extra, "STILLPOINT_FROM_PASSWORD=source-password", "STILLPOINT_FROM_REPOSITORY="+pwSrc.repo)
	ok := right.must(t, 0, "--json", "copy", "latest")
	if num(t, summary(t, ok.stdout), "snapshots_copied") != 1 {
		t.Fatalf("copy with $STILLPOINT_FROM_PASSWORD: %s", ok)
	}
	// usage errors
	if r := dst.must(t, 2, "copy"); !strings.Contains(r.stderr, "--from-repo") {
		t.Fatalf("copy without a source: %s", r)
	}
	if r := dst.must(t, 1, "copy", "--from-repo", src.repo, "--from-key-file", src.keyFile(t), "--host", "nosuchhost"); !strings.Contains(r.stderr, "--host nosuchhost") {
		t.Fatalf("a filter that matches nothing: %s", r)
	}
}

// TestCopyPartlySharedTarget: a target that has one of two snapshots gets
// only the blobs of the other that the first lacks.
func TestCopyPartlySharedTarget(t *testing.T) {
	src, dst := newEnv(t), newEnv(t)
	data := filepath.Join(t.TempDir(), "data")
	genTree(t, data, 15, 16<<20)
	src.must(t, 0, "init")
	id1, _ := src.backupJSON(t, 0, data)
	writeRandom(t, filepath.Join(data, "d02", "more.bin"), 1501, 6<<20)
	if err := os.RemoveAll(filepath.Join(data, "d03")); err != nil {
		t.Fatal(err)
	}
	id2, _ := src.backupJSON(t, 0, data)
	want2 := treeHash(t, data)
	dst.must(t, 0, "init")

	first, _ := dst.copyFrom(t, src, id1[:8])
	if num(t, first, "snapshots_copied") != 1 {
		t.Fatalf("copy of %s: %v", id1[:8], first)
	}
	all1, data1 := src.rawBlobCounts(t, id1)
	all2, data2 := src.rawBlobCounts(t, id1, id2)
	missing, missingData := all2-all1, data2-data1
	if missing <= 0 {
		t.Fatal("test setup: the second snapshot adds no blob")
	}
	sum, res := dst.copyFrom(t, src)
	if num(t, sum, "snapshots_copied") != 1 || num(t, sum, "snapshots_skipped") != 1 || num(t, sum, "blobs_sent") != missing {
		t.Fatalf("want 1 copied, 1 skipped, %d blobs sent: %s", missing, res)
	}
	// the data both share is known from the first copy: only the new is read
	if num(t, sum, "blobs_read") != missingData || num(t, sum, "blobs_not_read")+num(t, sum, "trees_reused") == 0 {
		t.Fatalf("read %d data blobs from the source, want only the %d new ones: %s", num(t, sum, "blobs_read"), missingData, res)
	}
	checkClean(t, dst, "--read-data")
	ids := dst.snapshotIDs(t)
	dst.restoreAndCompare(t, ids[len(ids)-1], data, want2)
}

// TestCopyKilledAndResumed kills a copy with SIGKILL once it has written
// index files: the target checks clean, and the copy run again sends
// exactly the blobs the target's index lacks, and every copy restores.
func TestCopyKilledAndResumed(t *testing.T) {
	src, dst := newEnv(t), newEnv(t)
	base := t.TempDir()
	var dirs []string
	var wants []map[string]string
	src.must(t, 0, "init", "--compression", "off")
	for i := range 3 {
		d := filepath.Join(base, fmt.Sprintf("s%d", i))
		for k := range 5 {
			writeRandom(t, filepath.Join(d, fmt.Sprintf("f%d.bin", k)), uint64(1600+10*i+k), 8<<20)
		}
		src.must(t, 0, "backup", d)
		dirs, wants = append(dirs, d), append(wants, treeHash(t, d))
	}
	dst.must(t, 0, "init")
	dry, _ := dst.copyFrom(t, src, "--dry-run")
	total := num(t, dry, "blobs_sent")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := dst.command(ctx, "copy", "--from-repo", src.repo, "--from-key-file", src.keyFile(t))
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	indexDir := filepath.Join(dst.repo, "index")
	for countFiles(t, indexDir) < 2 {
		if cmd.ProcessState != nil || ctx.Err() != nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || !ee.Sys().(syscall.WaitStatus).Signaled() {
		t.Fatalf("the copy ended before it was killed (%v):\n%s", err, out.String())
	}
	checkClean(t, dst)
	r := dst.openInProcess(t)
	indexed := int64(r.Index().Len())
	if indexed == 0 || indexed >= total {
		t.Fatalf("test setup: killed with %d of %d blobs indexed", indexed, total)
	}
	unrefAfterKill := unindexedPacks(t, dst)

	// SIGINT: the copy stops, stores and indexes what it read, and says so
	intr := dst.command(ctx, "copy", "--from-repo", src.repo, "--from-key-file", src.keyFile(t))
	var intrOut strings.Builder
	intr.Stdout, intr.Stderr = &intrOut, &intrOut
	packsBefore := len(dst.packFiles(t))
	if err := intr.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- intr.Wait() }()
	var intrErr error
	// once it has written a pack, with more to go
wait:
	for len(dst.packFiles(t)) == packsBefore {
		select {
		case intrErr = <-ended:
			ended <- intrErr
			break wait
		case <-time.After(2 * time.Millisecond):
		}
	}
	_ = intr.Process.Signal(syscall.SIGINT)
	if err := <-ended; err == nil {
		t.Logf("the copy ended before SIGINT reached it:\n%s", intrOut.String())
	} else if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(intrOut.String(), "interrupted:") ||
		!strings.Contains(intrOut.String(), "the next copy sends only what is missing") {
		t.Fatalf("copy stopped by SIGINT: %v\n%s", err, intrOut.String())
	}
	checkClean(t, dst)
	if n := unindexedPacks(t, dst); n != unrefAfterKill {
		t.Fatalf("the interrupted copy left %d packs in no index (the kill left %d): it did not index what it stored", n, unrefAfterKill)
	}
	r = dst.openInProcess(t)
	indexed = int64(r.Index().Len())

	// the stale lock of the killed copy does not stop the next
	sum, res := dst.copyFrom(t, src)
	if got := num(t, sum, "blobs_sent"); got != total-indexed {
		t.Fatalf("the resumed copy sent %d blobs; the target had %d of %d indexed, so %d were missing: %s", got, indexed, total, total-indexed, res)
	}
	if n := num(t, sum, "snapshots_copied") + num(t, sum, "snapshots_skipped"); n != 3 {
		t.Fatalf("%d snapshots copied or skipped: %s", n, res)
	}
	t.Logf("killed, then interrupted, with %d of %d blobs indexed; the rerun copied %d snapshots, skipped %d, sent %d blobs",
		indexed, total, num(t, sum, "snapshots_copied"), num(t, sum, "snapshots_skipped"), num(t, sum, "blobs_sent"))
	checkClean(t, dst, "--read-data")
	ids := dst.snapshotIDs(t)
	if len(ids) != 3 {
		t.Fatalf("target has %d snapshots", len(ids))
	}
	for i, id := range ids {
		dst.restoreAndCompare(t, id, dirs[i], wants[i])
	}
}

// TestCopyWhilePruneRuns copies snapshots whose small files the target's
// own, forgotten snapshots hold, while prune runs on the target: whether
// the copy saw the prune's mark or the prune waited for the copy, check
// --read-data stays clean and every copy restores.
func TestCopyWhilePruneRuns(t *testing.T) {
	src, dst := newEnv(t), newEnv(t)
	if _, err := pruneRepoInit(dst); err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	shared := filepath.Join(base, "shared")
	genTree(t, shared, 17, 4<<20)
	src.must(t, 0, "init")
	type copied struct {
		src  string
		want map[string]string
	}
	var all []copied
	rounds := 4
	if testing.Short() {
		rounds = 2
	}
	for i := range rounds {
		// the target's own snapshot of the shared files, forgotten: prune
		// marks what the copy wants
		own, _ := dst.backupJSON(t, 0, "--force", shared)
		dst.must(t, 0, "forget", own)
		for k := range 8 {
			mustWrite(t, filepath.Join(shared, fmt.Sprintf("round-%d-%d.txt", i, k)), []byte(strings.Repeat(fmt.Sprintf("round %d file %d\n", i, k), 1000)))
		}
		id, _ := src.backupJSON(t, 0, shared)
		all = append(all, copied{id, treeHash(t, shared)})

		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		prune := dst.command(ctx, "prune", "--max-unused", "0")
		var pout strings.Builder
		prune.Stdout, prune.Stderr = &pout, &pout
		if err := prune.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(i*15) * time.Millisecond)
		sum, res := dst.copyFrom(t, src)
		err := prune.Wait()
		cancel()
		if err != nil {
			t.Fatalf("prune beside copy: %v\n%s", err, pout.String())
		}
		if num(t, sum, "snapshots_copied") != 1 {
			t.Fatalf("round %d: %s", i, res)
		}
		checkClean(t, dst, "--read-data")
	}
	dst.must(t, 0, "prune", "--max-unused", "0")
	checkClean(t, dst, "--read-data")
	ids := dst.snapshotIDs(t)
	if len(ids) != len(all) {
		t.Fatalf("target has %d snapshots, %d were copied", len(ids), len(all))
	}
	for i, id := range ids {
		dst.restoreAndCompare(t, id, shared, all[i].want)
	}
}

// copyS3Server is the S3 server of the copy tests: versitygw (any real S3
// will do; SeaweedFS carries the other S3 tests, so the copy tests add a
// second implementation), or the endpoint of STILLPOINT_S3_TEST_ENDPOINT.
func copyS3Server(t *testing.T) *s3server.Server {
	if os.Getenv(s3server.EnvEndpoint) != "" {
		return s3server.Start(t, s3server.External)
	}
	return s3server.Start(t, s3server.VersityGW)
}

// TestCopyThroughS3 copies local → S3 → S3 (another key) → local, each
// repository with its own key: every copy restores as the source did, the
// buckets check clean, and copying again sends nothing.
func TestCopyThroughS3(t *testing.T) {
	srv := copyS3Server(t)
	bucket := srv.NewBucket(t)
	local := newEnv(t)
	data := filepath.Join(t.TempDir(), "data")
	genTree(t, data, 18, 12<<20)
	local.must(t, 0, "init")
	local.must(t, 0, "backup", data)
	writeRandom(t, filepath.Join(data, "d04", "later.bin"), 1801, 3<<20)
	local.must(t, 0, "backup", "--tag", "second", data)
	want := treeHash(t, data)

	a := s3Env(t, srv, bucket, "copies/a", srv.Admin)
	b := s3Env(t, srv, bucket, "copies/b", srv.Admin)
	back := newEnv(t)
	back.extra = append(back.extra, a.extra...)
	for _, e := range []*env{a, b, back} {
		e.must(t, 0, "init")
	}
	steps := []struct {
		name     string
		from, to *env
	}{{"local to S3", local, a}, {"S3 to S3", a, b}, {"S3 to local", b, back}}
	for _, st := range steps {
		sum, res := st.to.copyFrom(t, st.from)
		if num(t, sum, "snapshots_copied") != 2 || num(t, sum, "blobs_sent") == 0 {
			t.Fatalf("%s: %s", st.name, res)
		}
		checkClean(t, st.to, "--read-data")
		ids := st.to.snapshotIDs(t)
		if len(ids) != 2 {
			t.Fatalf("%s: %d snapshots", st.name, len(ids))
		}
		st.to.restoreAndCompare(t, ids[1], data, want)
		again, res := st.to.copyFrom(t, st.from)
		if num(t, again, "blobs_sent") != 0 || num(t, again, "snapshots_skipped") != 2 {
			t.Fatalf("%s, again: %s", st.name, res)
		}
	}
	// the last copy knows its way back: nothing to send to the first
	sum, res := local.copyFrom(t, back)
	if num(t, sum, "snapshots_skipped") != 2 || num(t, sum, "blobs_read") != 0 {
		t.Fatalf("copying back to the first repository: %s", res)
	}
}

//go:build linux

package e2e

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/testutil/s3server"
)

const appendOnlyPassword = "append-only-test-password"

// TestS3AppendOnly is README's "Append-only backups" on both servers: a
// client whose identity may put, get and list but not delete backs up
// twice, lists, restores and checks; its locks, which it cannot remove,
// are left with a note and do not fail it. forget, prune and unlock with
// its credentials are refused at once, saying why, before they write
// anything (no lock, no mark, no snapshot removed). The admin's forget
// --prune then works and removes the locks the client left.
func TestS3AppendOnly(t *testing.T) {
	for _, kind := range s3server.Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			srv := s3server.Start(t, kind)
			nd := srv.NeedNoDelete(t)
			bucket := srv.NewBucket(t)
			admin := s3Env(t, srv, bucket, "repo", srv.Admin)
			client := s3Env(t, srv, bucket, "repo", nd)
			for _, e := range []*env{admin, client} {
				e.extra = append(e.extra, "STILLPOINT_PASSWORD="+appendOnlyPassword)
			}
			admin.must(t, 0, "init")
			testAppendOnly(t, srv, bucket, admin, client)
		})
	}
}

func testAppendOnly(t *testing.T, srv *s3server.Server, bucket string, admin, client *env) {
	folder := func(kind string) int {
		n := 0
		for _, k := range bucketKeys(t, srv, bucket) {
			if strings.HasPrefix(k, "repo/"+kind+"/") {
				n++
			}
		}
		return n
	}
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 141, 6<<20)
	want1 := treeHash(t, src)
	b1 := client.must(t, 0, "--json", "backup", "--host", "appender", src)
	id1 := summary(t, b1.stdout)["snapshot_id"].(string)
	if !strings.Contains(b1.stdout, "is left in place: these credentials may not delete (append-only)") {
		t.Errorf("the backup does not say that it left its lock:\n%s", b1)
	}
	writeRandom(t, filepath.Join(src, "d00", "grown.bin"), 142, 2<<20)
	mustWrite(t, filepath.Join(src, "second.txt"), []byte("only in the second snapshot\n"))
	want2 := treeHash(t, src)
	id2 := summary(t, client.must(t, 0, "--json", "backup", "--host", "appender", src).stdout)["snapshot_id"].(string)
	if ids := client.snapshotIDs(t); len(ids) != 2 || ids[0] != id1 || ids[1] != id2 {
		t.Fatalf("snapshots with the client's credentials: %v, want [%s %s]", ids, id1, id2)
	}
	client.restoreAndCompare(t, id1, src, want1)
	client.restoreAndCompare(t, id2, src, want2)
	chk := client.must(t, 0, "check", "--read-data")
	if !strings.HasPrefix(chk.stdout, "no errors:") {
		t.Fatalf("check --read-data with the client's credentials:\n%s", chk)
	}
	left := folder("locks")
	if left == 0 {
		t.Fatalf("no lock left by the client: did it delete with credentials that may not?")
	}

	// what deletes is refused, clearly, and writes nothing first
	for _, args := range [][]string{
		{"forget", "--keep-last", "1"},
		{"forget", "--keep-last", "1", "--prune"},
		{"prune"},
		{"prune", "--now"},
		{"unlock"},
	} {
		start := time.Now()
		res := client.must(t, 1, args...)
		for _, s := range []string{args[0] + " refused", "append-only credentials cannot delete", "access denied"} {
			if !strings.Contains(res.stderr, s) {
				t.Errorf("stillpoint %s with append-only credentials does not say %q:\n%s", strings.Join(args, " "), s, res)
			}
		}
		if d := time.Since(start); d > 20*time.Second {
			t.Errorf("stillpoint %s took %s to be refused", strings.Join(args, " "), d)
		}
		if n := folder("locks"); n != left {
			t.Errorf("stillpoint %s, refused, changed the locks: %d, were %d", strings.Join(args, " "), n, left)
		}
		if n := folder("gc"); n != 0 {
			t.Errorf("stillpoint %s, refused, wrote %d prune marks", strings.Join(args, " "), n)
		}
	}
	if n := folder("snapshots"); n != 2 {
		t.Fatalf("%d snapshots after the refused forgets, want 2", n)
	}

	// the admin forgets and prunes, and removes what the client left
	fp := admin.must(t, 0, "forget", "--keep-last", "1", "--prune")
	if !strings.Contains(fp.stdout+fp.stderr, "removed stale lock") {
		t.Errorf("the admin's prune does not say it removed the client's stale locks:\n%s", fp)
	}
	if n := folder("locks"); n != 0 {
		t.Errorf("%d locks left after the admin's forget --prune", n)
	}
	if ids := admin.snapshotIDs(t); len(ids) != 1 || ids[0] != id2 {
		t.Fatalf("after the admin's forget --keep-last 1: %v, want [%s]", ids, id2)
	}
	chk = admin.must(t, 0, "check", "--read-data")
	if !strings.HasPrefix(chk.stdout, "no errors:") {
		t.Fatalf("check --read-data after the admin's prune:\n%s", chk)
	}
	admin.restoreAndCompare(t, id2, src, want2)
	// and the client goes on backing up
	client.must(t, 0, "backup", "--host", "appender", src)
}

//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/s3server"
)

// TestImmutableS3 is init --immutable on SeaweedFS in a bucket with object
// lock: every file but the locks is written with a retention the server
// keeps; a snapshot and a pack in their retention are not deleted, and
// prune says until when; a deletion the server refuses is reported as a
// failure; prune extends the retention of what the snapshots need. One
// day of retention, and STILLPOINT_TEST_CLOCK_OFFSET to move stillpoint's
// clock (not the server's) through it.
func TestImmutableS3(t *testing.T) {
	srv := s3server.Start(t, s3server.SeaweedFS)
	client := srv.Client(t)
	ctx := context.Background()

	plain := s3Env(t, srv, srv.NewBucket(t), "r", srv.Admin)
	refused := plain.must(t, 1, "init", "--immutable", "1")
	if !strings.Contains(refused.stderr, "has no object lock") || !strings.Contains(refused.stderr, "--object-lock-enabled-for-bucket") {
		t.Fatalf("init --immutable in a bucket without object lock:\n%s", refused)
	}
	if bad := plain.must(t, 2, "init", "--immutable", "4000"); !strings.Contains(bad.stderr, "from 1 to 3650") {
		t.Fatalf("init --immutable 4000:\n%s", bad)
	}

	if bad := plain.must(t, 2, "init", "--immutable", "7", "--immutable-mode", "loose"); !strings.Contains(bad.stderr, "want compliance or governance") {
		t.Fatalf("init --immutable-mode loose:\n%s", bad)
	}

	bucket := srv.NewLockedBucket(t)
	e := s3Env(t, srv, bucket, "r", srv.Admin)
	start := time.Now()
	if out := e.must(t, 0, "init", "--immutable", "1"); !strings.Contains(out.stdout, "retained for 1 days (object lock, COMPLIANCE)") {
		t.Fatalf("init --immutable 1 does not say so:\n%s", out)
	}
	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 21, 6<<20)
	id1 := summary(t, e.must(t, 0, "--json", "backup", src).stdout)["snapshot_id"].(string)
	writeRandom(t, filepath.Join(src, "later.bin"), 22, 2<<20)
	want2 := treeHash(t, src)
	id2 := summary(t, e.must(t, 0, "--json", "backup", src).stdout)["snapshot_id"].(string)

	retention := func(key string) time.Time {
		t.Helper()
		mode, until, err := client.GetObjectRetention(ctx, bucket, key, "")
		if err != nil || until == nil || mode == nil || *mode != minio.Compliance {
			t.Fatalf("retention of %s: %v %v %v", key, mode, until, err)
		}
		return *until
	}
	var packKey string
	for _, k := range bucketKeys(t, srv, bucket) {
		rel := strings.TrimPrefix(k, "r/")
		switch {
		case rel == "config" || strings.HasPrefix(rel, "keys/") || strings.HasPrefix(rel, "data/") ||
			strings.HasPrefix(rel, "index/") || strings.HasPrefix(rel, "snapshots/"):
			if u := retention(k); u.Before(start.Add(24*time.Hour)) || u.After(time.Now().Add(24*time.Hour+2*time.Second)) {
				t.Errorf("%s retained until %v, want a day after it was written", k, u)
			}
			if strings.HasPrefix(rel, "data/") {
				packKey = k
			}
		case strings.HasPrefix(rel, "locks/") || strings.HasPrefix(rel, "gc/"):
			t.Errorf("%s left behind", k)
		}
	}
	// every removal (init's probe, the locks) took every version: no
	// delete marker, no version but the current ones
	for v := range client.ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{WithVersions: true, Recursive: true}) {
		if v.Err != nil {
			t.Fatal(v.Err)
		}
		if v.IsDeleteMarker || !v.IsLatest {
			t.Errorf("left in the bucket: %s version %s (delete marker %v)", v.Key, v.VersionID, v.IsDeleteMarker)
		}
	}
	snap1 := "r/snapshots/" + id1
	snap1Until := retention(snap1)

	// forget of a snapshot in its retention: refused before anything is
	// deleted, and said with its date
	f := e.must(t, 1, "forget", id1)
	if !strings.Contains(f.stderr, "retained until "+snap1Until.UTC().Format(time.RFC3339)) {
		t.Fatalf("forget of a retained snapshot:\n%s", f)
	}
	if ids := e.snapshotIDs(t); len(ids) != 2 {
		t.Fatalf("snapshots after the refused forget: %v", ids)
	}

	// a pack in no index (what a killed backup leaves), retained for a day
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	name := hex.EncodeToString(raw[:])
	orphan := "r/data/" + name[:2] + "/" + name
	body := bytes.Repeat([]byte("orphan"), 1000)
	orphanUntil := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	if _, err := client.PutObject(ctx, bucket, orphan, bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{Mode: minio.Compliance, RetainUntilDate: orphanUntil, SendContentMd5: true, DisableMultipart: true}); err != nil {
		t.Fatal(err)
	}
	p := e.must(t, 0, "--json", "prune")
	res := summary(t, p.stdout)["result"].(map[string]any)
	if res["retained_packs"] != 1.0 || res["removed_packs"] != 0.0 || res["retained_until"] != orphanUntil.Format(time.RFC3339) {
		t.Fatalf("prune of a retained garbage pack: %v\n%s", res, p)
	}
	if !strings.Contains(p.stdout, "retained by the storage's object lock until "+orphanUntil.Format(time.RFC3339)) {
		t.Fatalf("prune does not say until when the pack is retained:\n%s", p)
	}

	// 13 hours on (more than half the day gone): prune extends what the
	// snapshots need, and not the snapshot files
	packUntil := retention(packKey)
	e.extra = append(e.extra, "STILLPOINT_TEST_CLOCK_OFFSET=13h")
	p = e.must(t, 0, "--json", "prune")
	res = summary(t, p.stdout)["result"].(map[string]any)
	if n, _ := res["retention_extended"].(float64); n < 4 {
		t.Fatalf("prune 13 hours on extended %v files:\n%s", res["retention_extended"], p)
	}
	if u := retention(packKey); !u.After(packUntil.Add(12 * time.Hour)) {
		t.Fatalf("a pack's retention moved from %v to %v, want 13 hours later", packUntil, u)
	}
	if u := retention("r/config"); !u.After(time.Now().Add(36 * time.Hour)) {
		t.Fatalf("the config's retention is %v", u)
	}
	if u := retention(snap1); !u.Equal(snap1Until) {
		t.Fatalf("the snapshot file's retention moved from %v to %v", snap1Until, u)
	}

	// 25 hours on, by this machine's clock only: prune takes the orphan's
	// retention for passed, the server refuses, prune fails and says so
	e.extra[len(e.extra)-1] = "STILLPOINT_TEST_CLOCK_OFFSET=25h"
	p = e.must(t, 1, "prune")
	if !strings.Contains(p.stderr, "refused to delete") || !strings.Contains(p.stderr, "retained until "+orphanUntil.Format(time.RFC3339)) {
		t.Fatalf("prune whose deletion the server refused:\n%s", p)
	}
	if _, err := client.StatObject(ctx, bucket, orphan, minio.StatObjectOptions{}); err != nil {
		t.Fatalf("the refused pack: %v", err)
	}
	e.extra = e.extra[:len(e.extra)-1]

	// (not --read-data: the orphan is no stillpoint pack, only its name is)
	check := e.must(t, 0, "check")
	if !strings.HasPrefix(check.stdout, "no errors:") {
		t.Fatalf("check:\n%s", check)
	}
	e.restoreAndCompare(t, id2, src, want2)
}

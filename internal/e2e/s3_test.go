//go:build linux

package e2e

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/s3server"
)

// s3Server is SeaweedFS, or the endpoint of STILLPOINT_S3_TEST_ENDPOINT.
func s3Server(t *testing.T) *s3server.Server {
	kind := s3server.SeaweedFS
	if os.Getenv(s3server.EnvEndpoint) != "" {
		kind = s3server.External
	}
	return s3server.Start(t, kind)
}

// s3Env is an env whose repository is bucket/prefix on srv, with these
// credentials in the AWS variables and no shared credentials file.
func s3Env(t *testing.T, srv *s3server.Server, bucket, prefix string, c s3server.Credentials) *env {
	e := newEnv(t)
	e.repo = srv.Location(bucket, prefix)
	none := filepath.Join(t.TempDir(), "no-aws-files")
	e.extra = []string{
		"AWS_ACCESS_KEY_ID=" + c.AccessKey, "AWS_SECRET_ACCESS_KEY=" + c.SecretKey, "AWS_SESSION_TOKEN=",
		"AWS_PROFILE=", "AWS_SHARED_CREDENTIALS_FILE=" + none, "AWS_CONFIG_FILE=" + none,
		"STILLPOINT_S3_REGION=" + srv.Region,
	}
	return e
}

func TestS3EndToEnd(t *testing.T) {
	srv := s3Server(t)
	bucket := srv.NewBucket(t)
	e := s3Env(t, srv, bucket, "hosts/web-1", srv.Admin)

	created := e.must(t, 0, "init")
	if !strings.Contains(created.stdout, "at "+e.repo) {
		t.Fatalf("init does not say where the repository is:\n%s", created)
	}
	again := e.must(t, 1, "init")
	if !strings.Contains(again.stderr, "already holds a repository") {
		t.Fatalf("a second init:\n%s", again)
	}

	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 11, 24<<20)
	want1 := treeHash(t, src)
	id1 := summary(t, e.must(t, 0, "--json", "backup", src).stdout)["snapshot_id"].(string)
	mustWrite(t, filepath.Join(src, "new", "file.txt"), []byte("written after the first backup\n"))
	writeRandom(t, filepath.Join(src, "new", "big.bin"), 99, 3<<20)
	want2 := treeHash(t, src)
	id2 := summary(t, e.must(t, 0, "--json", "backup", src).stdout)["snapshot_id"].(string)

	if ids := e.snapshotIDs(t); len(ids) != 2 || ids[0] != id1 || ids[1] != id2 {
		t.Fatalf("snapshots lists %v, want [%s %s]", ids, id1, id2)
	}
	e.restoreAndCompare(t, id1, src, want1)
	e.restoreAndCompare(t, id2, src, want2)
	check := e.must(t, 0, "check", "--read-data")
	if !strings.HasPrefix(check.stdout, "no errors:") || !strings.Contains(check.stdout, "all data read") {
		t.Fatalf("check --read-data reports errors:\n%s", check)
	}

	// the layout of docs/format.md under the prefix, and no lock left behind
	keys := bucketKeys(t, srv, bucket)
	counts := map[string]int{}
	pack := regexp.MustCompile(`^hosts/web-1/data/([0-9a-f]{2})/([0-9a-f]{64})$`)
	for _, k := range keys {
		switch {
		case k == "hosts/web-1/config":
			counts["config"]++
		case pack.MatchString(k):
			m := pack.FindStringSubmatch(k)
			if m[1] != m[2][:2] {
				t.Errorf("pack %s is filed under the wrong folder", k)
			}
			counts["data"]++
		default:
			parts := strings.Split(k, "/")
			if len(parts) != 4 || parts[0] != "hosts" || parts[1] != "web-1" || !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(parts[3]) {
				t.Errorf("unexpected key %s", k)
				continue
			}
			counts[parts[2]]++
		}
	}
	if counts["config"] != 1 || counts["data"] == 0 || counts["keys"] != 1 || counts["index"] == 0 || counts["snapshots"] != 2 || counts["locks"] != 0 {
		t.Fatalf("objects in the bucket by folder: %v", counts)
	}

	// a first backup into an empty prefix creates the repository there
	other := s3Env(t, srv, bucket, "hosts/web-2", srv.Admin)
	res := other.must(t, 0, "--json", "backup", filepath.Join(src, "new"))
	if summary(t, res.stdout)["snapshot_id"] == nil {
		t.Fatalf("no snapshot from a first backup into an empty prefix:\n%s", res)
	}
	if ids := other.snapshotIDs(t); len(ids) != 1 {
		t.Fatalf("the second prefix holds %d snapshots", len(ids))
	}
	// but not into a prefix that holds something else
	if _, err := srv.Client(t).PutObject(context.Background(), bucket, "hosts/web-3/notes.txt", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	busy := s3Env(t, srv, bucket, "hosts/web-3", srv.Admin)
	if res := busy.must(t, 1, "backup", filepath.Join(src, "new")); !strings.Contains(res.stderr, "is not empty and holds no stillpoint repository") {
		t.Fatalf("a first backup into a prefix that holds other objects:\n%s", res)
	}
}

func bucketKeys(t *testing.T, srv *s3server.Server, bucket string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var keys []string
	for oi := range srv.Client(t).ListObjectsIter(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		keys = append(keys, oi.Key)
	}
	return keys
}

func TestS3ClearErrors(t *testing.T) {
	srv := s3Server(t)
	bucket := srv.NewBucket(t)
	good := s3Env(t, srv, bucket, "repo", srv.Admin)
	good.must(t, 0, "init")
	src := filepath.Join(t.TempDir(), "src")
	mustWrite(t, filepath.Join(src, "a.txt"), []byte("a"))

	for _, c := range []struct {
		name string
		e    *env
		args []string
		says []string
	}{
		{"unknown access key", s3Env(t, srv, bucket, "repo", s3server.Credentials{AccessKey: "nosuch" + srv.Admin.AccessKey, SecretKey: srv.Admin.SecretKey}),
			[]string{"snapshots"}, []string{"wrong credentials for " + srv.Endpoint, "is not known to the server"}},
		{"wrong secret", s3Env(t, srv, bucket, "repo", s3server.Credentials{AccessKey: srv.Admin.AccessKey, SecretKey: "x" + srv.Admin.SecretKey}),
			[]string{"backup", src}, []string{"wrong credentials for " + srv.Endpoint, "secret key does not match"}},
		{"no credentials", s3Env(t, srv, bucket, "repo", s3server.Credentials{}),
			[]string{"snapshots"}, []string{"no S3 credentials for " + srv.Endpoint, "AWS_ACCESS_KEY_ID"}},
		{"missing bucket on init", s3Env(t, srv, "stillpoint-missing-bucket", "repo", srv.Admin),
			[]string{"init"}, []string{`bucket "stillpoint-missing-bucket" does not exist at ` + srv.Endpoint}},
		{"missing bucket on backup", s3Env(t, srv, "stillpoint-missing-bucket", "repo", srv.Admin),
			[]string{"backup", src}, []string{`bucket "stillpoint-missing-bucket" does not exist at ` + srv.Endpoint}},
		{"no repository in the prefix", s3Env(t, srv, bucket, "elsewhere", srv.Admin),
			[]string{"snapshots"}, []string{"no stillpoint repository at " + srv.Location(bucket, "elsewhere")}},
		{"a location without a bucket", s3Env(t, srv, bucket, "repo", srv.Admin),
			[]string{"--repo", "s3:" + srv.URL(), "snapshots"}, []string{"names no bucket"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			res := c.e.must(t, 1, c.args...)
			t.Logf("stillpoint %s: %s", strings.Join(c.args, " "), strings.TrimSpace(res.stderr))
			for _, s := range c.says {
				if !strings.Contains(res.stderr, s) {
					t.Errorf("stderr does not say %q:\n%s", s, res)
				}
			}
			if strings.Count(strings.TrimSpace(res.stderr), "\n") > 2 {
				t.Errorf("more than a short message:\n%s", res)
			}
			// no retries of what cannot pass
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("the failure took %s", d)
			}
		})
	}
}

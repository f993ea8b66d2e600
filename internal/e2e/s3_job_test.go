//go:build linux

package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/s3server"
)

// A job file's s3: keys configure the repository: here the CA of a TLS
// server, path-style addressing over an environment that says virtual
// (which cannot reach 127.0.0.1), the region, the storage class of data
// packs, and a profile of the shared credentials file whose default
// profile has wrong keys. A flag still overrides the job file.
func TestS3JobFileKeys(t *testing.T) {
	srv := s3server.StartWith(t, s3server.SeaweedFS, s3server.Options{TLS: true})
	bucket := srv.NewBucket(t)
	e := newEnv(t)
	e.repo = srv.Location(bucket, "job")
	dir := t.TempDir()
	creds := filepath.Join(dir, "credentials")
	mustWrite(t, creds, []byte(fmt.Sprintf("[default]\naws_access_key_id = wrong\naws_secret_access_key = wrong-secret\n\n"+
		"[stillpoint-job]\naws_access_key_id = %s\naws_secret_access_key = %s\n", srv.Admin.AccessKey, srv.Admin.SecretKey)))
	e.extra = []string{"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=",
		"AWS_SHARED_CREDENTIALS_FILE=" + creds, "AWS_CONFIG_FILE=" + filepath.Join(dir, "none"),
		"STILLPOINT_S3_ADDRESSING=virtual", "STILLPOINT_PASSWORD=job-password"}

	src := filepath.Join(t.TempDir(), "src")
	genTree(t, src, 3, 2<<20)
	want := treeHash(t, src)
	jobFile := filepath.Join(dir, "job.yaml")
	mustWrite(t, jobFile, []byte(fmt.Sprintf(`repository: %s
sources:
  - path: %s
    snapshot: off
s3:
  region: %s
  addressing: path
  cacert: %s
  storage-class: STANDARD_IA
  profile: stillpoint-job
`, e.repo, src, srv.Region, srv.CACert)))

	id := summary(t, e.must(t, 0, "--json", "backup", "--job", jobFile).stdout)["snapshot_id"].(string)

	// data packs carry the storage class, nothing else does
	c := srv.Client(t)
	packs, others := 0, 0
	for oi := range c.ListObjectsIter(context.Background(), bucket, minio.ListObjectsOptions{Prefix: "job/", Recursive: true}) {
		if oi.Err != nil {
			t.Fatal(oi.Err)
		}
		st, err := c.StatObject(context.Background(), bucket, oi.Key, minio.StatObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		class := st.Metadata.Get("X-Amz-Storage-Class")
		if strings.HasPrefix(oi.Key, "job/data/") {
			packs++
			if class != "STANDARD_IA" {
				t.Errorf("pack %s has storage class %q, want STANDARD_IA (the job's s3.storage-class)", oi.Key, class)
			}
		} else {
			others++
			if class == "STANDARD_IA" {
				t.Errorf("%s has the data packs' storage class", oi.Key)
			}
		}
	}
	if packs == 0 || others == 0 {
		t.Fatalf("%d packs and %d other objects under job/", packs, others)
	}

	// a flag overrides the job's key
	bad := e.must(t, 1, "backup", "--job", jobFile, "--cacert", filepath.Join(dir, "missing.pem"))
	if !strings.Contains(bad.stderr, "missing.pem") {
		t.Fatalf("--cacert did not override the job's cacert:\n%s", bad)
	}
	// without the job file, the environment alone (virtual addressing,
	// the default profile) does not reach the repository
	if res := e.run(t, "snapshots"); res.code == 0 {
		t.Fatalf("snapshots without the job's s3: keys reached the repository:\n%s", res)
	}

	// the repository is whole, read with the same settings from the environment
	r := *e
	r.extra = append(append([]string{}, e.extra...), "STILLPOINT_S3_ADDRESSING=path", "STILLPOINT_S3_CACERT="+srv.CACert,
		"STILLPOINT_S3_REGION="+srv.Region, "AWS_PROFILE=stillpoint-job")
	r.restoreAndCompare(t, id, src, want)
}

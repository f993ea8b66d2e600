//go:build linux

package s3

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/s3server"
)

// TestObjectLock runs on SeaweedFS (versitygw keeps no retention dates),
// or on the endpoint of STILLPOINT_S3_TEST_ENDPOINT, in a bucket created
// with object lock.
func TestObjectLock(t *testing.T) {
	kind := s3server.SeaweedFS
	if s3server.Kinds()[0] == s3server.External {
		kind = s3server.External
	}
	srv := s3server.Start(t, kind)
	client := srv.Client(t)
	locked := srv.NewLockedBucket(t)
	b := newBackend(t, srv, locked, "repo", srv.Admin, Options{})

	plain := newBackend(t, srv, srv.NewBucket(t), "repo", srv.Admin, Options{})
	if ol, err := plain.ObjectLock(ctx); err != nil || ol.Enabled {
		t.Fatalf("a bucket without object lock: %+v, %v", ol, err)
	}
	if ol, err := b.ObjectLock(ctx); err != nil || !ol.Enabled || ol.Default.Period != 0 {
		t.Fatalf("a bucket with object lock: %+v, %v", ol, err)
	}

	clock := time.Now()
	b.RetainWrites(backend.WriteRetention{Mode: backend.Compliance, Period: 24 * time.Hour, Now: func() time.Time { return clock }})
	pack := backend.Handle{Kind: backend.Packs, Name: strings.Repeat("ab", 32)}
	lock := backend.Handle{Kind: backend.Locks, Name: strings.Repeat("cd", 32)}
	for _, h := range []backend.Handle{pack, lock} {
		if err := b.Save(ctx, h, []byte("content of "+h.Name)); err != nil {
			t.Fatal(err)
		}
	}
	// what the server keeps, asked with its own API
	mode, until, err := client.GetObjectRetention(ctx, locked, b.key(pack), "")
	want := clock.Add(24 * time.Hour)
	if err != nil || mode == nil || *mode != minio.Compliance || until == nil || until.Before(want) || until.After(want.Add(2*time.Second)) {
		t.Fatalf("retention of a saved pack: %v %v %v, want COMPLIANCE until %v", mode, until, err, want)
	}
	got, err := b.Retention(ctx, pack)
	if err != nil || !got.Until.Equal(*until) || got.Mode != backend.Compliance {
		t.Fatalf("Retention: %+v, %v; the server says %v", got, err, until)
	}
	if got, err := b.Retention(ctx, lock); err != nil || !got.Until.IsZero() {
		t.Fatalf("a lock is retained: %+v, %v", got, err)
	}
	if _, err := b.Retention(ctx, backend.Handle{Kind: backend.Packs, Name: strings.Repeat("ef", 32)}); !backend.IsNotFound(err) {
		t.Fatalf("retention of a missing file: %v", err)
	}

	// the removal of a retained pack is refused, with its date, and the
	// pack stays; a lock goes, every version of it
	err = b.Remove(ctx, pack)
	var re *backend.RetainedError
	if !errors.As(err, &re) || !errors.Is(err, backend.ErrRetained) || !re.Until.Equal(*until) || !backend.Permanent(err) {
		t.Fatalf("remove of a retained pack: %v", err)
	}
	if !strings.Contains(err.Error(), "retained until "+until.UTC().Format(time.RFC3339)) {
		t.Fatalf("the refusal does not say until when: %v", err)
	}
	if _, err := b.Stat(ctx, pack); err != nil {
		t.Fatalf("the refused pack: %v", err)
	}
	if err := b.Remove(ctx, lock); err != nil {
		t.Fatalf("remove of a lock: %v", err)
	}
	for v := range client.ListObjectsIter(ctx, locked, minio.ListObjectsOptions{Prefix: b.key(lock), WithVersions: true}) {
		t.Fatalf("a version of the removed lock is left: %+v", v)
	}

	// extended, never shortened
	later := backend.Retention{Mode: backend.Compliance, Until: until.Add(36 * time.Hour)}
	if err := b.SetRetention(ctx, pack, later); err != nil {
		t.Fatal(err)
	}
	if _, u, err := client.GetObjectRetention(ctx, locked, b.key(pack), ""); err != nil || !u.Equal(later.Until) {
		t.Fatalf("after the extension: %v, %v, want %v", u, err, later.Until)
	}
	if err := b.SetRetention(ctx, pack, backend.Retention{Mode: backend.Compliance, Until: until.Add(time.Hour)}); err == nil {
		t.Fatal("a shorter retention was accepted")
	}

	// a retention that passes: the removal then goes through, for good
	b.RetainWrites(backend.WriteRetention{Mode: backend.Governance, Period: 2 * time.Second})
	short := backend.Handle{Kind: backend.Indexes, Name: strings.Repeat("12", 32)}
	if err := b.Save(ctx, short, []byte("index")); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, short); !errors.Is(err, backend.ErrRetained) {
		t.Fatalf("remove within a governance retention: %v", err)
	}
	time.Sleep(4 * time.Second)
	if err := b.Remove(ctx, short); err != nil {
		t.Fatalf("remove after the retention: %v", err)
	}
	for v := range client.ListObjectsIter(ctx, locked, minio.ListObjectsOptions{Prefix: b.key(short), WithVersions: true}) {
		t.Fatalf("a version of the removed index file is left: %+v", v)
	}
	// a delete marker someone else left (a plain DELETE) goes with the file
	if err := b.Save(ctx, lock, []byte("again")); err != nil {
		t.Fatal(err)
	}
	if err := client.RemoveObject(ctx, locked, b.key(lock), minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, lock); err != nil {
		t.Fatal(err)
	}
	for v := range client.ListObjectsIter(ctx, locked, minio.ListObjectsOptions{Prefix: b.key(lock), WithVersions: true}) {
		t.Fatalf("left after the removal of a file with a delete marker: %+v", v)
	}
}

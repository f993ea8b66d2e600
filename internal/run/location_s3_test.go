package run

import (
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/s3"
)

func TestAccessS3Backend(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "key")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv(EnvRepository, "s3:127.0.0.1:9000/bucket/some/prefix/")
	be, err := Access{}.Backend()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := be.(remoteRepo); !ok || be.Location() != "s3:https://127.0.0.1:9000/bucket/some/prefix" {
		t.Fatalf("$%s names an S3 repository, got %T at %s", EnvRepository, be, be.Location())
	}
	if _, ok := be.(backend.Creator); !ok {
		t.Fatalf("the S3 backend behind the remote policy is no Creator: init would not check its bucket")
	}
	// the flag wins over the variable
	be, err = Access{Repository: "s3:http://127.0.0.1:9000/other"}.Backend()
	if err != nil || be.Location() != "s3:http://127.0.0.1:9000/other" {
		t.Fatalf("--repo s3:http://…: %v, %v", be, err)
	}
	for _, c := range []struct {
		a    Access
		says string
	}{
		{Access{Repository: "s3:http://127.0.0.1:9000"}, "names no bucket"},
		{Access{Repository: "s3:http://127.0.0.1:9000/bkt", S3: S3Options{Addressing: "sideways"}}, "want auto, path or virtual"},
		{Access{Repository: "s3:http://127.0.0.1:9000/bkt", S3: S3Options{CACert: t.TempDir() + "/none.pem"}}, "CA certificate file"},
	} {
		if _, err := c.a.Backend(); err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%+v: %v, want an error saying %q", c.a, err, c.says)
		}
	}
	t.Setenv(s3.EnvAddressing, "sideways")
	if _, err := (Access{Repository: "s3:http://127.0.0.1:9000/bkt"}).Backend(); err == nil {
		t.Errorf("$%s=sideways was accepted", s3.EnvAddressing)
	}
	if _, err := (Access{Repository: "s3:http://127.0.0.1:9000/bkt", S3: S3Options{Addressing: "path"}}).Backend(); err != nil {
		t.Errorf("--s3-addressing path does not win over $%s: %v", s3.EnvAddressing, err)
	}
}

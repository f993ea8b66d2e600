package s3

import (
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

func TestParseLocation(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Location
		str  string
	}{
		{"s3:https://s3.example.com/bucket", Location{"s3.example.com", true, "bucket", ""}, "s3:https://s3.example.com/bucket"},
		{"s3:http://127.0.0.1:8333/b-1/repo", Location{"127.0.0.1:8333", false, "b-1", "repo"}, "s3:http://127.0.0.1:8333/b-1/repo"},
		{"s3:s3.amazonaws.com/my.bucket/a/b/", Location{"s3.amazonaws.com", true, "my.bucket", "a/b"}, "s3:https://s3.amazonaws.com/my.bucket/a/b"},
		{"s3:https://[::1]:9000/bkt//x//y", Location{"[::1]:9000", true, "bkt", "x/y"}, "s3:https://[::1]:9000/bkt/x/y"},
	} {
		got, err := ParseLocation(c.in)
		if err != nil {
			t.Errorf("ParseLocation(%q): %v", c.in, err)
			continue
		}
		if got != c.want {
			t.Errorf("ParseLocation(%q) = %+v, want %+v", c.in, got, c.want)
		}
		if got.String() != c.str {
			t.Errorf("ParseLocation(%q).String() = %q, want %q", c.in, got.String(), c.str)
		}
		again, err := ParseLocation(got.String())
		if err != nil || again != got {
			t.Errorf("the canonical form %q parses as %+v, %v", got.String(), again, err)
		}
	}
}

func TestParseLocationErrors(t *testing.T) {
	for _, c := range []struct{ in, says string }{
		{"/var/lib/repo", "not an S3 location"},
		{"s3:", "no host"},
		{"s3:https://host", "names no bucket"},
		{"s3:https://host/", "names no bucket"},
		{"s3:ftp://host/bucket", "must be http or https"},
		{"s3:https://key:secret@host/bucket", "credentials do not belong"},
		{"s3:https://host/Bad_Bucket", "not a valid bucket name"},
		{"s3:https://host/bucket/a/../b", "may not hold"},
		{"s3:https://host/bucket?region=x", "no query"},
		{"s3:https://host:notaport/bucket", "not a"},
	} {
		_, err := ParseLocation(c.in)
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("ParseLocation(%q): %v, want an error saying %q", c.in, err, c.says)
		}
	}
}

func TestKeys(t *testing.T) {
	b := &Backend{loc: Location{Endpoint: "h", Bucket: "b", Prefix: "p/q"}}
	name := strings.Repeat("ab", 32)
	for h, want := range map[backend.Handle]string{
		{Kind: backend.Config, Name: "config"}: "p/q/config",
		{Kind: backend.Packs, Name: name}:      "p/q/data/ab/" + name,
		{Kind: backend.Indexes, Name: name}:    "p/q/index/" + name,
		{Kind: backend.Snapshots, Name: name}:  "p/q/snapshots/" + name,
		{Kind: backend.Locks, Name: name}:      "p/q/locks/" + name,
		{Kind: backend.Keys, Name: name}:       "p/q/keys/" + name,
		{Kind: backend.Marks, Name: name}:      "p/q/gc/" + name,
	} {
		if got := b.key(h); got != want {
			t.Errorf("key(%s) = %q, want %q", h, got, want)
		}
	}
	b.loc.Prefix = ""
	if got := b.key(backend.Handle{Kind: backend.Config, Name: "config"}); got != "config" {
		t.Errorf("key of config at the bucket's root = %q", got)
	}
}

func TestOptionsRefused(t *testing.T) {
	loc := Location{Endpoint: "127.0.0.1:1", Bucket: "b"}
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", t.TempDir()+"/none")
	t.Setenv("AWS_CONFIG_FILE", t.TempDir()+"/none")
	if _, err := New(loc, Options{}); err == nil || !strings.Contains(err.Error(), "no S3 credentials") {
		t.Errorf("New without credentials: %v", err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "k")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "s")
	for _, o := range []Options{
		{Addressing: "dns"},
		{ConditionalWrite: "maybe"},
		{StorageClass: "standard_ia"},
		{CACertFile: t.TempDir() + "/missing.pem"},
	} {
		if _, err := New(loc, o); err == nil {
			t.Errorf("New with %+v succeeded", o)
		}
	}
	if _, err := New(loc, Options{Addressing: AddressingPath, StorageClass: "STANDARD_IA"}); err != nil {
		t.Errorf("New with credentials from the environment: %v", err)
	}
}

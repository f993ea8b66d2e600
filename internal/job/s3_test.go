package job

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

const s3Base = "repository: s3:https://s3.example.com/backups/web-1\nsources:\n  - path: /srv/app\n"

func TestS3Keys(t *testing.T) {
	j, warns, err := Parse("/etc/stillpoint/app.yaml", []byte(nativeYAML(s3Base+`s3:
  region: eu-west-1
  addressing: path
  cacert: /etc/stillpoint/ca.pem
  storage-class: STANDARD_IA
  profile: backups
  conditional-write: stat
`)))
	if err != nil || len(warns) != 0 {
		t.Fatal(err, warns)
	}
	want := S3{Region: "eu-west-1", Addressing: "path", CACert: native("/etc/stillpoint/ca.pem"), StorageClass: "STANDARD_IA",
		Profile: "backups", ConditionalWrite: "stat"}
	if j.S3 != want {
		t.Fatalf("s3: %+v, want %+v", j.S3, want)
	}
	// without the section, nothing is set: the flags and the environment decide
	j, _, err = Parse("/etc/stillpoint/app.yaml", []byte(nativeYAML(s3Base)))
	if err != nil || j.S3 != (S3{}) {
		t.Fatalf("no s3: section gave %+v (%v)", j.S3, err)
	}
}

func TestS3Errors(t *testing.T) {
	for _, c := range []struct {
		name, yaml string
		line       int
		msg, hint  string
	}{
		{"unknown key", "s3:\n  regoin: eu-west-1\n", 5, `s3.regoin: unknown key "regoin"`, `did you mean "region"?`},
		{"underscore key", "s3:\n  storage_class: STANDARD_IA\n", 5, `unknown key "storage_class"`, `did you mean "storage-class"?`},
		{"no suggestion", "s3:\n  secret-key: x\n", 5, `unknown key "secret-key"`, "known keys here: region, addressing"},
		{"addressing", "s3:\n  addressing: virtaul\n", 5, `s3.addressing: unknown value "virtaul"`, `did you mean "virtual"?`},
		{"conditional write", "s3:\n  conditional-write: head\n", 5, `s3.conditional-write: unknown value "head"`, "one of if-none-match, stat"},
		{"storage class case", "s3:\n  storage-class: standard_ia\n", 5, `storage class "standard_ia"`, "write STANDARD_IA"},
		{"relative cacert", "s3:\n  cacert: certs/ca.pem\n", 5, `s3.cacert: "certs/ca.pem" is not an absolute path`, "PEM file"},
		{"region a list", "s3:\n  region: [a, b]\n", 5, "s3.region: must be a text value", "eu-west-1"},
		{"not a mapping", "s3: eu-west-1\n", 4, "s3: must be a mapping", "s3: {region:"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := Parse("/etc/stillpoint/app.yaml", []byte(nativeYAML(s3Base+c.yaml)))
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %v, want Errors", err)
			}
			var hit *Error
			for _, e := range es {
				if strings.Contains(e.Error(), c.msg) {
					hit = e
				}
			}
			if hit == nil {
				t.Fatalf("no error says %q:\n%v", c.msg, err)
			}
			if prefix := "/etc/stillpoint/app.yaml:" + strconv.Itoa(c.line) + ":"; !strings.HasPrefix(hit.Error(), prefix) {
				t.Errorf("error does not start with %q:\n%s", prefix, hit)
			}
			if !strings.Contains(hit.Hint, c.hint) {
				t.Errorf("hint lacks %q:\n%s", c.hint, hit)
			}
		})
	}
}

func TestS3WithoutS3RepositoryWarns(t *testing.T) {
	_, warns, err := Parse("/etc/stillpoint/app.yaml", []byte(nativeYAML("repository: /var/lib/stillpoint/repo\nsources: [/srv/app]\ns3:\n  region: eu-west-1\n")))
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 1 || !strings.Contains(warns[0].String(), "s3: has no effect") || warns[0].Pos.Line != 4 {
		t.Fatalf("warnings %v, want one on line 4 that s3: has no effect", warns)
	}
}

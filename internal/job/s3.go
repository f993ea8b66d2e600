package job

import (
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// S3 are the settings of an S3 repository beyond its location (README,
// S3), as the job file gives them. Credentials never go in a job file:
// they come from the AWS variables or the shared credentials file, whose
// profile Profile names. The command line's --s3-* flags override these,
// and these override the STILLPOINT_S3_* and AWS variables.
type S3 struct {
	Region     string
	Addressing string // auto, path or virtual
	CACert     string // PEM file of CA certificates, absolute
	// StorageClass of data packs, e.g. STANDARD_IA.
	StorageClass string
	// Profile of the shared credentials file (as AWS_PROFILE).
	Profile string
	// ConditionalWrite is if-none-match or stat (docs/format.md, Object
	// storage).
	ConditionalWrite string
}

// Value sets of the s3: keys.
var (
	S3Addressings       = []string{"auto", "path", "virtual"}
	S3ConditionalWrites = []string{"if-none-match", "stat"}
)

var s3Keys = []string{"region", "addressing", "cacert", "storage-class", "profile", "conditional-write"}

const s3Hint = "write e.g. s3: {region: eu-west-1, addressing: path, storage-class: STANDARD_IA}"

func (p *parser) s3(n *yaml.Node) {
	f, ok := p.mapping(n, "s3", s3Keys, s3Hint)
	if !ok {
		return
	}
	s := &p.job.S3
	if v, ok := f["region"]; ok {
		s.Region, _ = p.str(v.val, "s3.region", "the bucket's region, e.g. eu-west-1")
	}
	if v, ok := f["addressing"]; ok {
		s.Addressing, _ = p.oneOf(v.val, "s3.addressing", S3Addressings)
	}
	if v, ok := f["cacert"]; ok {
		const hint = "the absolute path of a PEM file of CA certificates, e.g. /etc/stillpoint/s3-ca.pem"
		if c, ok := p.str(v.val, "s3.cacert", hint); ok {
			if !filepath.IsAbs(c) {
				p.errorf(v.val, "s3.cacert", hint, "%q is not an absolute path", c)
			}
			s.CACert = c
		}
	}
	if v, ok := f["storage-class"]; ok {
		const hint = "an S3 storage class such as STANDARD_IA, in upper case"
		if c, ok := p.str(v.val, "s3.storage-class", hint); ok {
			if strings.ToUpper(c) != c {
				p.errorf(v.val, "s3.storage-class", "write "+strings.ToUpper(c)+": storage classes are upper case", "storage class %q", c)
			}
			s.StorageClass = c
		}
	}
	if v, ok := f["profile"]; ok {
		s.Profile, _ = p.str(v.val, "s3.profile", "a profile of the shared credentials file (~/.aws/credentials), e.g. backups")
	}
	if v, ok := f["conditional-write"]; ok {
		s.ConditionalWrite, _ = p.oneOf(v.val, "s3.conditional-write", S3ConditionalWrites)
	}
	if r := p.job.Repository; r != "" && !strings.HasPrefix(r, "s3:") {
		p.warnf(resolve(n), "s3", "remove s3:, or make repository: an s3:https://HOST/BUCKET location",
			"s3: has no effect: the job's repository %s is not in S3", r)
	}
}

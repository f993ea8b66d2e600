package s3

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// Scheme starts every S3 repository location.
const Scheme = "s3:"

// Location is a parsed S3 repository location.
type Location struct {
	// Endpoint is HOST or HOST:PORT.
	Endpoint string
	// Secure: https (the default), or http when the location says so.
	Secure bool
	Bucket string
	// Prefix is the folder of the repository in the bucket, without
	// leading or trailing slashes; "" is the bucket's root.
	Prefix string
}

// IsLocation tells whether loc names an S3 repository.
func IsLocation(loc string) bool { return strings.HasPrefix(loc, Scheme) }

// ParseLocation parses s3:https://HOST[:PORT]/BUCKET[/PREFIX],
// s3:http://… and s3:HOST[:PORT]/BUCKET[/PREFIX] (https).
func ParseLocation(loc string) (Location, error) {
	const form = "s3:https://HOST[:PORT]/BUCKET[/PREFIX], s3:http://… or s3:HOST/BUCKET[/PREFIX] (https)"
	if !IsLocation(loc) {
		return Location{}, fmt.Errorf("%q is not an S3 location (%s)", loc, form)
	}
	rest := strings.TrimPrefix(loc, Scheme)
	l := Location{Secure: true}
	switch {
	case strings.HasPrefix(rest, "https://"):
		rest = strings.TrimPrefix(rest, "https://")
	case strings.HasPrefix(rest, "http://"):
		rest, l.Secure = strings.TrimPrefix(rest, "http://"), false
	case strings.Contains(rest, "://"):
		return Location{}, fmt.Errorf("S3 location %q: the scheme must be http or https (%s)", loc, form)
	}
	if strings.ContainsAny(rest, "?#") {
		return Location{}, fmt.Errorf("S3 location %q: no query or fragment is allowed; options are given by flags or STILLPOINT_S3_* variables", loc)
	}
	host, path, _ := strings.Cut(rest, "/")
	if strings.Contains(host, "@") {
		return Location{}, fmt.Errorf("S3 location %q: credentials do not belong in the location; set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE", loc)
	}
	if host == "" {
		return Location{}, fmt.Errorf("S3 location %q has no host (%s)", loc, form)
	}
	u, err := url.Parse("//" + host)
	if err != nil || u.Hostname() == "" {
		return Location{}, fmt.Errorf("S3 location %q: %q is not a host name or HOST:PORT", loc, host)
	}
	if p := u.Port(); p != "" {
		if _, err := net.LookupPort("tcp", p); err != nil {
			return Location{}, fmt.Errorf("S3 location %q: %q is not a port", loc, p)
		}
	}
	l.Endpoint = host
	bucket, prefix, _ := strings.Cut(path, "/")
	if bucket == "" {
		return Location{}, fmt.Errorf("S3 location %q names no bucket (%s)", loc, form)
	}
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return Location{}, fmt.Errorf("S3 location %q: %q is not a valid bucket name: %v", loc, bucket, err)
	}
	l.Bucket = bucket
	var parts []string
	for _, p := range strings.Split(prefix, "/") {
		switch p {
		case "":
		case ".", "..":
			return Location{}, fmt.Errorf("S3 location %q: the prefix may not hold %q", loc, p)
		default:
			parts = append(parts, p)
		}
	}
	l.Prefix = strings.Join(parts, "/")
	return l, nil
}

// String is the location in its canonical form, with the scheme.
func (l Location) String() string {
	scheme := "https"
	if !l.Secure {
		scheme = "http"
	}
	s := Scheme + scheme + "://" + l.Endpoint + "/" + l.Bucket
	if l.Prefix != "" {
		s += "/" + l.Prefix
	}
	return s
}

// Package s3 stores a repository in an S3 bucket (AWS S3 or any compatible
// server), with minio-go. Keys are PREFIX/<kind>/<name>, data packs
// PREFIX/data/<xx>/<name> as in a local repository (docs/format.md, Object
// storage).
//
// The backend rules hold: a Save is one PUT that carries Content-MD5 (the
// server refuses a body that does not match it) and If-None-Match: * (the
// server refuses to replace an existing object); an object appears whole or
// not at all. Failures that the same request meets again are marked
// permanent (backend.MarkPermanent); retries belong to the wrappers.
package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/netwatch"
)

// Environment variables for the S3 options (the flags of the same names
// without the prefix take precedence).
const (
	EnvRegion           = "STILLPOINT_S3_REGION"
	EnvAddressing       = "STILLPOINT_S3_ADDRESSING"
	EnvCACert           = "STILLPOINT_S3_CACERT"
	EnvStorageClass     = "STILLPOINT_S3_STORAGE_CLASS"
	EnvConditionalWrite = "STILLPOINT_S3_CONDITIONAL_WRITE"
)

// Addressing is how a request names the bucket.
type Addressing string

// The addressing styles.
const (
	// AddressingAuto: virtual-host style where the endpoint is known to
	// support it (AWS and a few others), else path style.
	AddressingAuto Addressing = "auto"
	// AddressingPath: https://HOST/BUCKET/KEY.
	AddressingPath Addressing = "path"
	// AddressingVirtual: https://BUCKET.HOST/KEY.
	AddressingVirtual Addressing = "virtual"
)

// ConditionalWrite is how a Save makes sure that it creates its object.
type ConditionalWrite string

// The ways of conditional creation.
const (
	// IfNoneMatch: PUT with If-None-Match: *; the server refuses the
	// write when the key exists (atomic). The default.
	IfNoneMatch ConditionalWrite = "if-none-match"
	// StatFirst: HEAD, then a plain PUT when the key is free; for servers
	// that ignore If-None-Match. Two writers of one key at the same moment
	// can both pass the HEAD (docs/format.md says when that matters).
	StatFirst ConditionalWrite = "stat"
)

// Options are the settings of a backend beyond its location.
type Options struct {
	// Region of the bucket; "" is us-east-1 on other servers than AWS,
	// and asked of the server on AWS.
	Region     string
	Addressing Addressing // "" is AddressingAuto
	// CACertFile is a PEM file of certificates trusted in addition to the
	// system's, for a server with a private CA.
	CACertFile string
	// StorageClass of data packs (e.g. STANDARD_IA); metadata is always
	// stored in the standard class, since it is read often.
	StorageClass     string
	ConditionalWrite ConditionalWrite // "" is IfNoneMatch
	// Credentials; nil takes them from the environment (AWS_ACCESS_KEY_ID,
	// AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), else from the shared
	// credentials and config files (AWS_PROFILE, AWS_SHARED_CREDENTIALS_FILE).
	Credentials *credentials.Credentials
	// Profile, with Credentials nil, takes the credentials from this
	// profile of the shared credentials file only: a profile named on
	// purpose is not overridden by AWS_ACCESS_KEY_ID in the environment.
	Profile string
	// Transport replaces the HTTP transport (tests put a proxy here); the
	// default one watches its connections for stalls (netwatch).
	Transport http.RoundTripper
}

// Backend is a repository in an S3 bucket.
type Backend struct {
	loc       Location
	opts      Options
	client    *minio.Client
	core      minio.Core
	transport *http.Transport // nil when Options.Transport was given
	access    string          // the access key id, for messages
	bucketOK  atomic.Bool
	clock     *clockWatch
	// retain is the retention of Saves in an immutable repository (nil:
	// none); RetainWrites sets it (retention.go)
	retain atomic.Pointer[backend.WriteRetention]
}

var _ backend.Backend = (*Backend)(nil)

// New returns a backend for the location. It makes no request.
func New(loc Location, o Options) (*Backend, error) {
	switch o.Addressing {
	case "":
		o.Addressing = AddressingAuto
	case AddressingAuto, AddressingPath, AddressingVirtual:
	default:
		return nil, fmt.Errorf("S3 addressing %q: want auto, path or virtual", o.Addressing)
	}
	switch o.ConditionalWrite {
	case "":
		o.ConditionalWrite = IfNoneMatch
	case IfNoneMatch, StatFirst:
	default:
		return nil, fmt.Errorf("S3 conditional write %q: want %s or %s", o.ConditionalWrite, IfNoneMatch, StatFirst)
	}
	if o.StorageClass != "" && strings.ToUpper(o.StorageClass) != o.StorageClass {
		return nil, fmt.Errorf("S3 storage class %q: storage classes are upper case, such as STANDARD_IA", o.StorageClass)
	}
	b := &Backend{loc: loc, opts: o}
	creds := o.Credentials
	switch {
	case creds == nil && o.Profile != "":
		creds = credentials.New(&credentials.FileAWSCredentials{Profile: o.Profile})
	case creds == nil:
		creds = credentials.NewChainCredentials([]credentials.Provider{
			&credentials.EnvAWS{},
			&credentials.FileAWSCredentials{},
		})
	}
	v, err := creds.GetWithContext(nil) // nil: the default HTTP client, for providers that ask a server
	if err != nil && o.Profile != "" {
		return nil, fmt.Errorf("S3 credentials for %s: profile %q of the shared credentials file (AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials): %w", loc.Endpoint, o.Profile, err)
	}
	if err != nil {
		return nil, fmt.Errorf("S3 credentials for %s: %w", loc.Endpoint, err)
	}
	if (v.AccessKeyID == "" || v.SecretAccessKey == "") && o.Profile != "" {
		return nil, fmt.Errorf("no S3 credentials for %s in profile %q of the shared credentials file: it needs aws_access_key_id and aws_secret_access_key", loc.Endpoint, o.Profile)
	}
	if v.AccessKeyID == "" || v.SecretAccessKey == "" {
		return nil, fmt.Errorf("no S3 credentials for %s: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary ones), or AWS_PROFILE naming a profile of ~/.aws/credentials", loc.Endpoint)
	}
	b.access = v.AccessKeyID
	rt := o.Transport
	if rt == nil {
		t, err := minio.DefaultTransport(loc.Secure)
		if err != nil {
			return nil, err
		}
		t.MaxIdleConnsPerHost = 64
		// a connection on which no byte moves for 30s is cut, and the
		// request fails (transient) instead of hanging
		netwatch.Watch(t, netwatch.DefaultIdle)
		if o.CACertFile != "" {
			if t.TLSClientConfig, err = tlsConfig(o.CACertFile); err != nil {
				return nil, err
			}
		}
		b.transport, rt = t, t
	}
	b.clock = &clockWatch{next: rt, now: time.Now}
	region := o.Region
	if region == "" && !strings.HasSuffix(strings.Split(loc.Endpoint, ":")[0], "amazonaws.com") {
		region = "us-east-1" // no location request on servers that have one region
	}
	lookup := map[Addressing]minio.BucketLookupType{
		AddressingAuto: minio.BucketLookupAuto, AddressingPath: minio.BucketLookupPath, AddressingVirtual: minio.BucketLookupDNS,
	}[o.Addressing]
	b.client, err = minio.New(loc.Endpoint, &minio.Options{
		Creds:        creds,
		Secure:       loc.Secure,
		Transport:    b.clock,
		Region:       region,
		BucketLookup: lookup,
		MaxRetries:   1, // retries are the backend.Retry wrapper's
	})
	if err != nil {
		return nil, fmt.Errorf("S3 location %s: %w", loc, err)
	}
	b.core = minio.Core{Client: b.client}
	return b, nil
}

func tlsConfig(caFile string) (*tls.Config, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA certificate file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA certificate file %s holds no PEM certificate", caFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// Location implements backend.Backend.
func (b *Backend) Location() string { return b.loc.String() }

func (b *Backend) accessKey() string { return b.access }

func (b *Backend) root() string {
	if b.loc.Prefix == "" {
		return ""
	}
	return b.loc.Prefix + "/"
}

// key is the object key of h.
func (b *Backend) key(h backend.Handle) string {
	switch {
	case h.Kind == backend.Config:
		return b.root() + "config"
	case h.Kind == backend.Packs && len(h.Name) >= 2:
		return b.root() + string(h.Kind) + "/" + h.Name[:2] + "/" + h.Name
	}
	return b.root() + string(h.Kind) + "/" + h.Name
}

// fail says which request on which file failed, named as in every
// backend's messages (the location says where the repository is).
func (b *Backend) fail(op string, h backend.Handle, err error) error {
	name := h.String()
	if h.Kind == backend.Config {
		name = "config"
	}
	return fmt.Errorf("%s %s: %w", op, name, err)
}

// Save implements backend.Backend: one PUT with Content-MD5, created only
// if the key is free.
func (b *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key := b.key(h)
	opts := minio.PutObjectOptions{
		ContentType:    "application/octet-stream",
		SendContentMd5: true,
		// Content-MD5 guards the body; its SHA-256 would be a second hash
		// of every pack for no more safety
		DisableContentSha256: true,
		DisableMultipart:     true,
	}
	if h.Kind == backend.Packs {
		opts.StorageClass = b.opts.StorageClass
	}
	b.retainSave(h, &opts)
	if b.opts.ConditionalWrite == StatFirst {
		if _, err := b.Stat(ctx, h); err == nil {
			return b.fail("save", h, backend.ErrExists)
		} else if !backend.IsNotFound(err) {
			return err
		}
	} else {
		opts.SetMatchETagExcept("*")
	}
	if h.Kind == backend.Locks {
		if err := b.clock.check(b.loc.Endpoint); err != nil {
			return b.fail("save", h, backend.MarkPermanent(err))
		}
	}
	for attempt := 1; ; attempt++ {
		_, err := b.client.PutObject(ctx, b.loc.Bucket, key, bytes.NewReader(data), int64(len(data)), opts)
		// AWS answers 409 to a conditional PUT while another one of the key
		// is in flight; the next try meets the winner's object (412) or none
		if err != nil && code(err) == "ConditionalRequestConflict" && attempt < 6 {
			if werr := sleep(ctx, time.Duration(attempt)*20*time.Millisecond); werr != nil {
				return werr
			}
			continue
		}
		if err != nil && code(err) == minio.NotImplemented && b.opts.ConditionalWrite == IfNoneMatch {
			return b.fail("save", h, backend.MarkPermanent(fmt.Errorf("%s does not support conditional writes (If-None-Match: *): set %s=%s to check before each write (docs/format.md, Object storage, says what that leaves)",
				b.loc.Endpoint, EnvConditionalWrite, StatFirst)))
		}
		if err != nil {
			return b.fail("save", h, b.classify(err))
		}
		if h.Kind == backend.Locks {
			// the first response of this backend may have been this one
			if err := b.clock.check(b.loc.Endpoint); err != nil {
				_ = b.Remove(context.WithoutCancel(ctx), h)
				return b.fail("save", h, backend.MarkPermanent(err))
			}
		}
		return nil
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// get starts a GET of length bytes at offset (length 0: to the end). It
// returns a nil reader for an empty range at the very end of the object.
func (b *Backend) get(ctx context.Context, h backend.Handle, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 || length < 0 {
		return nil, b.fail("load", h, fmt.Errorf("negative offset %d or length %d", offset, length))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var opts minio.GetObjectOptions
	ranged := offset > 0 || length > 0
	if ranged {
		end := int64(0)
		if length > 0 {
			end = offset + length - 1
		}
		if err := opts.SetRange(offset, end); err != nil {
			return nil, b.fail("load", h, err)
		}
	}
	body, _, hdr, err := b.core.GetObject(ctx, b.loc.Bucket, b.key(h), opts)
	if err != nil {
		if code(err) != minio.InvalidRange {
			return nil, b.fail("load", h, b.classify(err))
		}
		// the object exists and ends before offset+1
		if length == 0 {
			fi, serr := b.Stat(ctx, h)
			if serr != nil {
				return nil, serr
			}
			if fi.Size == offset {
				return nil, nil
			}
		}
		// the server said so: asking again cannot help (a short body,
		// below, may be a cut connection and is retried)
		return nil, b.fail("load", h, backend.MarkPermanent(io.ErrUnexpectedEOF))
	}
	// a whole object instead of a range is fine from offset 0 (the reader
	// takes what it asked for), wrong data from any other
	if offset > 0 && hdr.Get("Content-Range") == "" {
		body.Close()
		return nil, b.fail("load", h, backend.MarkPermanent(fmt.Errorf("%s ignored the Range header of a GET", b.loc.Endpoint)))
	}
	return body, nil
}

// Load implements backend.Backend.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset, length int64) ([]byte, error) {
	body, err := b.get(ctx, h, offset, length)
	if err != nil {
		return nil, err
	}
	if body == nil {
		return []byte{}, nil
	}
	defer body.Close()
	if length == 0 {
		data, err := io.ReadAll(body)
		if err != nil {
			return nil, b.fail("load", h, b.classify(err))
		}
		return data, nil
	}
	buf := make([]byte, length)
	if err := b.readFull(h, body, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// LoadInto implements backend.Backend.
func (b *Backend) LoadInto(ctx context.Context, h backend.Handle, offset int64, buf []byte) error {
	if len(buf) == 0 {
		// nothing to read; the file must exist and reach offset all the same
		fi, err := b.Stat(ctx, h)
		if err != nil {
			return err
		}
		if fi.Size < offset {
			return b.fail("load", h, backend.MarkPermanent(io.ErrUnexpectedEOF))
		}
		return nil
	}
	body, err := b.get(ctx, h, offset, int64(len(buf)))
	if err != nil {
		return err
	}
	defer body.Close()
	return b.readFull(h, body, buf)
}

func (b *Backend) readFull(h backend.Handle, body io.Reader, buf []byte) error {
	if _, err := io.ReadFull(body, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			// the server sent what there is: the object is shorter
			return b.fail("load", h, io.ErrUnexpectedEOF)
		}
		return b.fail("load", h, b.classify(err))
	}
	return nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	oi, err := b.client.StatObject(ctx, b.loc.Bucket, b.key(h), minio.StatObjectOptions{})
	if err != nil {
		return backend.FileInfo{}, b.fail("stat", h, b.headError(ctx, err))
	}
	return backend.FileInfo{Name: h.Name, Size: oi.Size}, nil
}

// headError classifies the error of a HEAD request. Its response has no
// body, so a 404 does not tell a missing object from a missing bucket, nor
// a 403 wrong credentials from missing rights: a request whose error has a
// body is asked then.
func (b *Backend) headError(ctx context.Context, err error) error {
	switch code(err) {
	case minio.NoSuchKey:
		if berr := b.checkBucket(ctx); berr != nil {
			return berr
		}
		return backend.ErrNotFound
	case "AccessDenied":
		if perr := b.probe(ctx); perr != nil {
			return perr
		}
	}
	return b.classify(err)
}

// checkBucket fails when the bucket does not exist (asked once per
// backend when it exists).
func (b *Backend) checkBucket(ctx context.Context) error {
	if b.bucketOK.Load() {
		return nil
	}
	ok, err := b.client.BucketExists(ctx, b.loc.Bucket)
	switch {
	case err != nil:
		if code(err) == "AccessDenied" {
			if perr := b.probe(ctx); perr != nil {
				return perr
			}
		}
		return b.classify(err)
	case !ok:
		return b.classify(minio.ErrorResponse{Code: minio.NoSuchBucket, StatusCode: http.StatusNotFound})
	}
	b.bucketOK.Store(true)
	return nil
}

// probe lists one key of the repository: the error of that request names
// its cause (InvalidAccessKeyId, SignatureDoesNotMatch, NoSuchBucket, …).
func (b *Backend) probe(ctx context.Context) error {
	for oi := range b.client.ListObjectsIter(ctx, b.loc.Bucket, minio.ListObjectsOptions{Prefix: b.root(), MaxKeys: 1}) {
		return b.classify(oi.Err)
	}
	return nil
}

// List implements backend.Backend. minio-go follows the continuation
// tokens of ListObjectsV2 (1,000 keys a page).
func (b *Backend) List(ctx context.Context, k backend.Kind, fn func(backend.FileInfo) error) error {
	if k == backend.Config {
		fi, err := b.Stat(ctx, backend.Handle{Kind: k, Name: "config"})
		if backend.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		return fn(fi)
	}
	dir := b.root() + string(k) + "/"
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends minio-go's listing when fn stops it
	for oi := range b.client.ListObjectsIter(ctx, b.loc.Bucket, minio.ListObjectsOptions{Prefix: dir, Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("list %s: %w", dir, b.classify(oi.Err))
		}
		rel := strings.TrimPrefix(oi.Key, dir)
		name := rel
		if k == backend.Packs {
			// data/<xx>/<name>; anything else in data/ is not a pack
			sub, n, ok := strings.Cut(rel, "/")
			if !ok || len(n) < 2 || n[:2] != sub {
				continue
			}
			name = n
		}
		if name == "" || strings.Contains(name, "/") {
			continue
		}
		if err := fn(backend.FileInfo{Name: name, Size: oi.Size}); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// Remove implements backend.Backend; a missing object is no error. In an
// immutable repository it removes every version (retention.go).
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	if b.retain.Load() != nil {
		return b.removeVersions(ctx, h)
	}
	err := b.client.RemoveObject(ctx, b.loc.Bucket, b.key(h), minio.RemoveObjectOptions{})
	if err != nil && code(err) != minio.NoSuchKey {
		return b.fail("remove", h, b.classify(err))
	}
	return nil
}

// Create implements backend.Creator: the bucket must exist (stillpoint
// does not create buckets: their region, versioning, object lock and
// policies are the owner's choice), and the server must refuse a second
// conditional write of a key, which Create tries on a scratch key.
func (b *Backend) Create(ctx context.Context) error {
	if err := b.checkBucket(ctx); err != nil {
		return err
	}
	if b.opts.ConditionalWrite != IfNoneMatch {
		return nil
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	// outside every kind's folder, so a leftover is never read as a file
	probe := backend.Handle{Kind: ".stillpoint-probe", Name: hex.EncodeToString(rnd[:])}
	defer func() { _ = b.Remove(context.WithoutCancel(ctx), probe) }()
	if err := b.Save(ctx, probe, []byte("first")); err != nil {
		return err
	}
	err := b.Save(ctx, probe, []byte("second"))
	switch {
	case err == nil:
		return backend.MarkPermanent(fmt.Errorf("%s ignores If-None-Match: * (a second write of a key replaced the first): set %s=%s to check before each write (docs/format.md, Object storage, says what that leaves)",
			b.loc.Endpoint, EnvConditionalWrite, StatFirst))
	case !errors.Is(err, backend.ErrExists):
		return err
	}
	return nil
}

// IsEmpty tells whether the repository's prefix holds no object at all.
func (b *Backend) IsEmpty(ctx context.Context) (bool, error) {
	for oi := range b.client.ListObjectsIter(ctx, b.loc.Bucket, minio.ListObjectsOptions{Prefix: b.root(), Recursive: true, MaxKeys: 1}) {
		if oi.Err != nil {
			return false, b.classify(oi.Err)
		}
		return false, nil
	}
	return true, nil
}

// Close implements backend.Backend.
func (b *Backend) Close() error {
	if b.transport != nil {
		b.transport.CloseIdleConnections()
	}
	return nil
}

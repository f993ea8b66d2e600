//go:build linux

package s3server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/serverutil"
)

// Kind names an S3 implementation.
type Kind string

// The kinds of servers.
const (
	SeaweedFS Kind = "seaweedfs"
	VersityGW Kind = "versitygw"
	// External is the endpoint of STILLPOINT_S3_TEST_ENDPOINT.
	External Kind = "external"
)

// Environment variables read by the package.
const (
	EnvWeed             = "STILLPOINT_WEED"
	EnvVersityGW        = "STILLPOINT_VERSITYGW"
	EnvEndpoint         = "STILLPOINT_S3_TEST_ENDPOINT"
	EnvAccessKey        = "STILLPOINT_S3_TEST_ACCESS_KEY"
	EnvSecretKey        = "STILLPOINT_S3_TEST_SECRET_KEY"
	EnvNoDeleteAccess   = "STILLPOINT_S3_TEST_NODELETE_ACCESS_KEY"
	EnvNoDeleteSecret   = "STILLPOINT_S3_TEST_NODELETE_SECRET_KEY"
	EnvTestRegion       = "STILLPOINT_S3_TEST_REGION"
	noDeletePolicyName  = "stillpoint-no-delete"
	readyLimit          = 90 * time.Second
	stopLimit           = 15 * time.Second
	secretLength        = 20
	accessKeyLength     = 10
	testBucketPrefix    = "stillpoint-test-"
	externalKindMessage = EnvEndpoint + " is set: the tests run against it"
)

// Kinds are the servers to test against: External alone when
// STILLPOINT_S3_TEST_ENDPOINT is set, else SeaweedFS and versitygw.
func Kinds() []Kind {
	if os.Getenv(EnvEndpoint) != "" {
		return []Kind{External}
	}
	return []Kind{SeaweedFS, VersityGW}
}

// Credentials of one identity.
type Credentials struct {
	AccessKey, SecretKey string
}

// Server is a running S3 server.
type Server struct {
	Kind Kind
	// Endpoint is HOST:PORT; Secure tells https.
	Endpoint string
	Secure   bool
	Region   string
	// Admin may do everything; NoDelete may list, read and write objects
	// but not delete them (zero when the server kind has none).
	Admin    Credentials
	NoDelete Credentials
	// Log is the server's log file ("" for External).
	Log string
	// CACert is the PEM file of the CA of the server's certificate (TLS).
	CACert string
	cert   string
	key    string

	bin  string
	args []string
	dir  string
	// files the server makes outside dir (weed mini's gRPC sockets in /tmp),
	// removed once it has exited
	litter []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Options tune StartWith.
type Options struct {
	// TLS serves https with a certificate for 127.0.0.1 from a CA made for
	// the server (its PEM file is Server.CACert).
	TLS bool
}

// Start starts a server of kind k for the test (and stops it at its end).
func Start(t testing.TB, k Kind) *Server {
	t.Helper()
	return StartWith(t, k, Options{})
}

// StartWith is Start with options.
func StartWith(t testing.TB, k Kind, o Options) *Server {
	t.Helper()
	switch k {
	case External:
		return external(t)
	case SeaweedFS, VersityGW:
	default:
		t.Fatalf("s3server: unknown kind %q", k)
	}
	if os.Getenv(EnvEndpoint) != "" {
		t.Skipf("s3server: %s, not %s", externalKindMessage, k)
	}
	bin, err := binary(k)
	if err != nil {
		serverutil.SkipOrFail(t, "s3server", "%v", err)
	}
	s := &Server{Kind: k, Region: "us-east-1", bin: bin, dir: t.TempDir(),
		Admin: Credentials{"adm" + randHex(accessKeyLength), randHex(secretLength)}}
	s.Log = filepath.Join(s.dir, "server.log")
	if o.TLS {
		if err := s.makeCertificates(); err != nil {
			t.Fatalf("s3server: certificates: %v", err)
		}
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken before the server binds it
		if lastErr = s.configure(k); lastErr != nil {
			t.Fatalf("s3server: %v", lastErr)
		}
		if lastErr = s.start(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
		s.Stop()
	}
	t.Fatalf("s3server: %s: %v", k, lastErr)
	return nil
}

func external(t testing.TB) *Server {
	raw := os.Getenv(EnvEndpoint)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		t.Fatalf("s3server: %s=%q: want http://HOST:PORT or https://HOST[:PORT]", EnvEndpoint, raw)
	}
	s := &Server{Kind: External, Endpoint: u.Host, Secure: u.Scheme == "https", Region: os.Getenv(EnvTestRegion),
		Admin:    Credentials{os.Getenv(EnvAccessKey), os.Getenv(EnvSecretKey)},
		NoDelete: Credentials{os.Getenv(EnvNoDeleteAccess), os.Getenv(EnvNoDeleteSecret)}}
	if s.Admin.AccessKey == "" || s.Admin.SecretKey == "" {
		t.Fatalf("s3server: %s is set, so %s and %s must be too", EnvEndpoint, EnvAccessKey, EnvSecretKey)
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	return s
}

// binary finds the server's executable: the environment variable, else
// the newest build in the cache of scripts/install-s3servers.
func binary(k Kind) (string, error) {
	env, name := EnvWeed, "weed"
	if k == VersityGW {
		env, name = EnvVersityGW, "versitygw"
	}
	if p := os.Getenv(env); p != "" {
		if !serverutil.IsExec(p) {
			return "", fmt.Errorf("$%s=%s is not an executable", env, p)
		}
		return p, nil
	}
	cache := os.Getenv("STILLPOINT_BENCH_BIN")
	if cache == "" {
		base := os.Getenv("XDG_CACHE_HOME")
		if base == "" {
			home, _ := os.UserHomeDir()
			base = filepath.Join(home, ".cache")
		}
		cache = filepath.Join(base, "stillpoint-bench", "bin")
	}
	found, _ := filepath.Glob(filepath.Join(cache, name+"-v*"))
	sort.Strings(found)
	for i := len(found) - 1; i >= 0; i-- {
		if !strings.HasSuffix(found[i], ".tmp") && serverutil.IsExec(found[i]) {
			return found[i], nil
		}
	}
	return "", fmt.Errorf("no %s binary: set $%s or run scripts/install-s3servers %s (it caches the build in %s)", name, env, name, cache)
}

func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	seen := map[int]bool{}
	for len(ports) < n {
		p, err := serverutil.FreePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	return ports, nil
}

// configure picks ports and writes the server's configuration.
func (s *Server) configure(k Kind) error {
	switch k {
	case SeaweedFS:
		return s.configureWeed()
	default:
		return s.configureVersity()
	}
}

func (s *Server) configureWeed() error {
	s.NoDelete = Credentials{"nod" + randHex(accessKeyLength), randHex(secretLength)}
	ports, err := freePorts(9)
	if err != nil {
		return err
	}
	s.Endpoint = "127.0.0.1:" + strconv.Itoa(ports[0])
	noDelete, _ := json.Marshal(map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{{
			"Effect":   "Allow",
			"Action":   []string{"s3:GetObject", "s3:PutObject", "s3:ListBucket", "s3:GetBucketLocation", "s3:ListAllMyBuckets"},
			"Resource": []string{"arn:aws:s3:::*"},
		}},
	})
	cfg, _ := json.MarshalIndent(map[string]any{
		"identities": []map[string]any{
			{"name": "admin", "credentials": []map[string]string{{"accessKey": s.Admin.AccessKey, "secretKey": s.Admin.SecretKey}},
				"actions": []string{"Admin", "Read", "List", "Tagging", "Write"}},
			{"name": "nodelete", "credentials": []map[string]string{{"accessKey": s.NoDelete.AccessKey, "secretKey": s.NoDelete.SecretKey}},
				"policyNames": []string{noDeletePolicyName}},
		},
		"policies": []map[string]string{{"name": noDeletePolicyName, "content": string(noDelete)}},
	}, "", "  ")
	cfgFile := filepath.Join(s.dir, "s3.json")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		return err
	}
	data := filepath.Join(s.dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	p := func(i int) string { return strconv.Itoa(ports[i]) }
	s.litter = []string{"/tmp/seaweedfs-master-grpc-" + p(3) + ".sock", "/tmp/seaweedfs-volume-grpc-" + p(7) + ".sock"}
	s.args = []string{"mini",
		"-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-s3.config=" + cfgFile, "-s3.autoCreateBucket=false",
		"-s3.port=" + p(0), "-s3.port.grpc=" + p(1),
		"-master.port=" + p(2), "-master.port.grpc=" + p(3),
		"-filer.port=" + p(4), "-filer.port.grpc=" + p(5),
		"-volume.port=" + p(6), "-volume.port.grpc=" + p(7),
		"-admin.port=" + p(8), "-admin.port.legacy=0", "-admin.ui=false",
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false",
		"-master.telemetry=false", "-master.volumeSizeLimitMB=64",
		"-filer.localSocket=" + filepath.Join(s.dir, "filer.sock"),
		"-s3.localSocket=" + filepath.Join(s.dir, "s3.sock"),
	}
	if s.Secure {
		s.args = append(s.args, "-s3.cert.file="+s.cert, "-s3.key.file="+s.key)
	}
	return nil
}

func (s *Server) configureVersity() error {
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	s.Endpoint = "127.0.0.1:" + strconv.Itoa(ports[0])
	root, iam := filepath.Join(s.dir, "posix"), filepath.Join(s.dir, "iam")
	for _, d := range []string{root, iam} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	// a plain user: it reaches a bucket only through the bucket policy
	// NewBucket gives it, which leaves out s3:DeleteObject
	s.NoDelete = Credentials{"nod" + randHex(accessKeyLength), randHex(secretLength)}
	users, _ := json.Marshal(map[string]any{"accessAccounts": map[string]any{
		s.NoDelete.AccessKey: map[string]any{"access": s.NoDelete.AccessKey, "secret": s.NoDelete.SecretKey, "role": "user"},
	}})
	if err := os.WriteFile(filepath.Join(iam, "users.json"), users, 0o600); err != nil {
		return err
	}
	s.args = []string{"--port", s.Endpoint, "--access", s.Admin.AccessKey, "--secret", s.Admin.SecretKey,
		"--region", s.Region, "--quiet", "--iam-dir", iam}
	if s.Secure {
		s.args = append(s.args, "--cert", s.cert, "--key", s.key)
	}
	s.args = append(s.args, "posix", root)
	return nil
}

func (s *Server) start() error {
	logf, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(s.bin, s.args...)
	cmd.Dir = s.dir
	// the server's own variables only: no AWS_* or proxy settings of the caller
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + s.dir, "TMPDIR=" + s.dir}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := serverutil.WaitReady(done, readyLimit, s.ready); err != nil {
		return fmt.Errorf("%s on %s: %w\n%s", s.Kind, s.Endpoint, err, serverutil.LogTail(s.Log))
	}
	return nil
}

// ready succeeds once a signed request is served: SeaweedFS answers S3
// before its volume server has joined, so a bucket is made and written to.
func (s *Server) ready(ctx context.Context) error {
	c, err := s.client(s.Admin)
	if err != nil {
		return err
	}
	if _, err := c.ListBuckets(ctx); err != nil {
		return err
	}
	const probe = "stillpoint-ready"
	if err := c.MakeBucket(ctx, probe, minio.MakeBucketOptions{Region: s.Region}); err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
		return err
	}
	_, err = c.PutObject(ctx, probe, "probe", strings.NewReader("ok"), 2, minio.PutObjectOptions{})
	return err
}

func (s *Server) client(c Credentials) (*minio.Client, error) {
	tr, err := minio.DefaultTransport(s.Secure)
	if err != nil {
		return nil, err
	}
	if s.CACert != "" {
		caPEM, err := os.ReadFile(s.CACert)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return minio.New(s.Endpoint, &minio.Options{
		Creds: credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""), Secure: s.Secure,
		Region: s.Region, BucketLookup: minio.BucketLookupPath, Transport: tr,
	})
}

// makeCertificates writes a CA and a certificate for 127.0.0.1 signed by
// it, and makes the server serve https.
func (s *Server) makeCertificates() error {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stillpoint test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	s.CACert, s.cert, s.key = filepath.Join(s.dir, "ca.pem"), filepath.Join(s.dir, "cert.pem"), filepath.Join(s.dir, "key.pem")
	for path, block := range map[string]*pem.Block{
		s.CACert: {Type: "CERTIFICATE", Bytes: caDER},
		s.cert:   {Type: "CERTIFICATE", Bytes: leafDER},
		s.key:    {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	s.Secure = true
	return nil
}

// Client is a minio-go client with the admin credentials.
func (s *Server) Client(t testing.TB) *minio.Client {
	t.Helper()
	c, err := s.client(s.Admin)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// URL is http://HOST:PORT (or https).
func (s *Server) URL() string {
	if s.Secure {
		return "https://" + s.Endpoint
	}
	return "http://" + s.Endpoint
}

// Location is the stillpoint repository location of bucket/prefix.
func (s *Server) Location(bucket, prefix string) string {
	loc := "s3:" + s.URL() + "/" + bucket
	if prefix != "" {
		loc += "/" + prefix
	}
	return loc
}

// NewBucket makes a bucket with a fresh name; objects left in it are
// removed with the server's directory (External: left in place).
func (s *Server) NewBucket(t testing.TB) string {
	t.Helper()
	name := testBucketPrefix + strings.ToLower(randHex(12))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.Region}); err != nil {
		t.Fatalf("s3server: make bucket %s on %s: %v", name, s.Endpoint, err)
	}
	if s.Kind == VersityGW {
		policy, _ := json.Marshal(map[string]any{
			"Version": "2012-10-17",
			"Statement": []map[string]any{{
				"Effect": "Allow", "Principal": s.NoDelete.AccessKey,
				"Action":   []string{"s3:GetObject", "s3:PutObject", "s3:ListBucket"},
				"Resource": []string{"arn:aws:s3:::" + name, "arn:aws:s3:::" + name + "/*"},
			}},
		})
		if err := s.Client(t).SetBucketPolicy(ctx, name, string(policy)); err != nil {
			t.Fatalf("s3server: the no-delete identity's policy on bucket %s: %v", name, err)
		}
	}
	return name
}

// NewLockedBucket makes a bucket with object lock enabled (and so
// versioning), with no default retention, for the tests of immutable
// repositories. Objects written in it with a retention stay until that
// date whatever the test does: the server's directory goes at its end.
func (s *Server) NewLockedBucket(t testing.TB) string {
	t.Helper()
	name := testBucketPrefix + "lock-" + strings.ToLower(randHex(8))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.Client(t).MakeBucket(ctx, name, minio.MakeBucketOptions{Region: s.Region, ObjectLocking: true}); err != nil {
		t.Fatalf("s3server: make bucket %s with object lock on %s: %v", name, s.Endpoint, err)
	}
	return name
}

// NeedNoDelete skips (or, in CI, fails) the test when the server has no
// identity without delete rights.
func (s *Server) NeedNoDelete(t testing.TB) Credentials {
	t.Helper()
	if s.NoDelete.AccessKey == "" {
		if s.Kind == External {
			t.Skipf("s3server: set %s and %s for the tests of an identity without delete rights", EnvNoDeleteAccess, EnvNoDeleteSecret)
		}
		serverutil.SkipOrFail(t, "s3server", "%s has no identity without delete rights here", s.Kind)
	}
	return s.NoDelete
}

// Kill ends the server at once (SIGKILL), as a crash would.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if s.Kind == External {
		t.Skip("s3server: an external endpoint cannot be killed")
	}
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	s.removeLitter()
}

func (s *Server) removeLitter() {
	for _, p := range s.litter {
		_ = os.Remove(p)
	}
}

// Restart starts a killed or stopped server again, on the same ports and data.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.Kind == External {
		t.Skip("s3server: an external endpoint cannot be restarted")
	}
	s.Stop()
	if err := s.start(); err != nil {
		t.Fatalf("s3server: restart: %v", err)
	}
}

// Stop ends the server (SIGTERM, then SIGKILL); it is idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	select {
	case <-done:
		s.removeLitter()
		return
	default:
	}
	// the server is the leader of its own process group: end it and its children
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(stopLimit):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	s.removeLitter()
}

// Running tells whether the server process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return s.Kind == External
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

package web

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func bcryptHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestOptionsRules(t *testing.T) {
	hash := bcryptHash(t, "pw")
	dir := t.TempDir()
	good := filepath.Join(dir, "users")
	os.WriteFile(good, []byte("# admins\nalice:"+hash+"\n\nbob:"+hash+"\n"), 0o600)
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("alice:"+hash+"\nbob:plaintext\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("# nobody\n"), 0o600)

	for _, c := range []struct {
		name string
		opts Options
		want string // "" for no error
	}{
		{"default address", Options{}, ""},
		{"loopback IPv4", Options{Addr: "127.0.0.1:0"}, ""},
		{"loopback IPv6", Options{Addr: "[::1]:9000"}, ""},
		{"localhost", Options{Addr: "localhost:9000"}, ""},
		{"every interface without auth", Options{Addr: ":8417"}, "a token or basic auth is required"},
		{"0.0.0.0 without auth", Options{Addr: "0.0.0.0:8417"}, "a token or basic auth is required"},
		{"a LAN address without auth", Options{Addr: "192.168.1.5:8417"}, "a token or basic auth is required"},
		{"a host name without auth", Options{Addr: "backup.example:8417"}, "a token or basic auth is required"},
		{"every interface with a token", Options{Addr: ":8417", Token: "s3cret"}, ""},
		{"every interface with a user", Options{Addr: ":8417", BasicUser: "alice", BasicPasswordHash: hash}, ""},
		{"every interface with a user file", Options{Addr: ":8417", BasicAuthFile: good}, ""},
		{"a user without a hash", Options{Addr: ":8417", BasicUser: "alice"}, "both a user and a password hash"},
		{"a hash that is not bcrypt", Options{BasicUser: "alice", BasicPasswordHash: "pw"}, "is not a bcrypt hash"},
		{"a bad line in the user file", Options{BasicAuthFile: bad}, "line 2"},
		{"a user file without users", Options{BasicAuthFile: empty}, "has no user"},
		{"a missing user file", Options{BasicAuthFile: filepath.Join(dir, "none")}, "basic auth file"},
		{"a certificate without its key", Options{CertFile: "c.pem"}, "both a certificate file and a key file"},
		{"no port", Options{Addr: "127.0.0.1"}, "want host:port"},
	} {
		err := CheckOptions(c.opts)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: error %v, want one saying %q", c.name, err, c.want)
		}
	}
	if err := CheckOptions(Options{Addr: ":1"}); !errors.Is(err, ErrNeedAuth) {
		t.Errorf("error %v does not wrap ErrNeedAuth", err)
	}
	if _, err := Listen(Options{Addr: "0.0.0.0:0"}); !errors.Is(err, ErrNeedAuth) {
		t.Errorf("Listen on every interface without auth: %v, want ErrNeedAuth", err)
	}
}

func authServer(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	opts.Metrics = NewMetrics()
	s, err := New(&fakeSource{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv
}

func status(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestTokenAndBasicAuth(t *testing.T) {
	hash := bcryptHash(t, "correct horse")
	srv := authServer(t, Options{Addr: ":0", Token: "tok-123", BasicUser: "alice", BasicPasswordHash: hash})
	for _, c := range []struct {
		name string
		set  func(*http.Request)
		want int
	}{
		{"nothing", func(*http.Request) {}, 401},
		{"the token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok-123") }, 200},
		{"a wrong token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok-124") }, 401},
		{"a prefix of the token", func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok") }, 401},
		{"the token as basic password", func(r *http.Request) { r.SetBasicAuth("anyone", "tok-123") }, 200},
		{"the user", func(r *http.Request) { r.SetBasicAuth("alice", "correct horse") }, 200},
		{"the user again (cached)", func(r *http.Request) { r.SetBasicAuth("alice", "correct horse") }, 200},
		{"a wrong password", func(r *http.Request) { r.SetBasicAuth("alice", "correct horsE") }, 401},
		{"an unknown user", func(r *http.Request) { r.SetBasicAuth("mallory", "correct horse") }, 401},
	} {
		for _, p := range []string{"/", "/api/v1/jobs", "/metrics", "/static/style.css"} {
			req, _ := http.NewRequest("GET", srv.URL+p, nil)
			c.set(req)
			if got := status(t, req); got != c.want {
				t.Errorf("%s, GET %s: %d, want %d", c.name, p, got, c.want)
			}
		}
	}
	e := decode[apiError](t, nil, srv.URL+"/api/v1/jobs", 401)
	if !strings.Contains(e.Error, "authentication required") {
		t.Errorf("the API's refusal: %+v", e)
	}
	req, _ := http.NewRequest("GET", srv.URL+"/", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("a browser is not asked for basic auth: %q", resp.Header.Get("WWW-Authenticate"))
	}
}

func TestWithoutAuthOnlyLoopbackNamesAreServed(t *testing.T) {
	srv := authServer(t, Options{})
	for host, want := range map[string]int{
		"":                       200, // the test server's 127.0.0.1:port
		"localhost:8417":         200,
		"[::1]:8417":             200,
		"evil.example":           http.StatusMisdirectedRequest,
		"evil.example:8417":      http.StatusMisdirectedRequest,
		"127.0.0.1.evil.example": http.StatusMisdirectedRequest,
	} {
		req, _ := http.NewRequest("GET", srv.URL+"/api/v1/jobs", nil)
		if host != "" {
			req.Host = host
		}
		if got := status(t, req); got != want {
			t.Errorf("Host %q: %d, want %d", host, got, want)
		}
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stillpoint test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServesTLSWhenGivenACertificate(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	opts := Options{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: keyFile}
	if _, err := Listen(Options{Addr: "127.0.0.1:0", CertFile: certFile, KeyFile: certFile}); err == nil || !strings.Contains(err.Error(), "TLS certificate") {
		t.Errorf("a certificate given as its own key: %v", err)
	}
	s, err := New(&fakeSource{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.ErrorLog = log.New(io.Discard, "", 0) // the plain HTTP request below is logged
	ln, err := Listen(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve after its context ended: %v", err)
		}
	}()
	addr := ln.Addr().String()

	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := c.Get("https://" + addr + "/api/v1/jobs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Errorf("HTTPS: %d, TLS %v", resp.StatusCode, resp.TLS != nil)
	}
	// plain HTTP gets no page
	if resp, err := http.Get("http://" + addr + "/api/v1/jobs"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP was served on the TLS listener")
		}
	}
}

package web

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

// DefaultAddr is where the server listens when Options.Addr is empty.
const DefaultAddr = "127.0.0.1:8417"

// Options configures the server.
type Options struct {
	// Addr is host:port to listen on (DefaultAddr when empty). Any
	// address but a loopback one needs Token or basic auth.
	Addr string
	// Token, when set, is accepted as "Authorization: Bearer TOKEN", or
	// as the password of basic auth with any user name (so a browser can
	// use it).
	Token string
	// BasicUser and BasicPasswordHash (bcrypt, as htpasswd -B writes it)
	// admit one user by basic auth.
	BasicUser         string
	BasicPasswordHash string
	// BasicAuthFile names a file of "user:bcrypt-hash" lines (htpasswd
	// -B), read by New.
	BasicAuthFile string
	// CertFile and KeyFile, both or neither: serve HTTPS.
	CertFile, KeyFile string
	// Metrics is served on /metrics when set.
	Metrics *Metrics
}

// ErrNeedAuth refuses a non-loopback address without a token or basic auth.
var ErrNeedAuth = errors.New("a token or basic auth is required to listen on an address other than loopback")

// CheckOptions says what is wrong with opts, before anything listens: a
// non-loopback address without authentication, a certificate without
// its key, an unreadable basic auth file or a hash that is not bcrypt.
func CheckOptions(opts Options) error {
	_, err := newAuth(opts)
	return err
}

// IsLoopback tells whether the listen address addr only accepts
// connections from this machine: localhost or a loopback IP. An empty
// host (every interface) is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// auth checks each request's credentials.
type auth struct {
	token    []byte
	users    map[string][]byte // user → bcrypt hash
	required bool

	mu sync.Mutex
	// verified holds digests of user:password pairs bcrypt has accepted,
	// so a page's every request does not cost a bcrypt round.
	verified map[[32]byte]bool
}

func newAuth(opts Options) (*auth, error) {
	a := &auth{users: map[string][]byte{}, verified: map[[32]byte]bool{}}
	if opts.Token != "" {
		a.token = []byte(opts.Token)
	}
	if opts.BasicUser != "" || opts.BasicPasswordHash != "" {
		if opts.BasicUser == "" || opts.BasicPasswordHash == "" {
			return nil, errors.New("basic auth needs both a user and a password hash")
		}
		if err := a.addUser(opts.BasicUser, opts.BasicPasswordHash); err != nil {
			return nil, err
		}
	}
	if opts.BasicAuthFile != "" {
		if err := a.readFile(opts.BasicAuthFile); err != nil {
			return nil, err
		}
	}
	a.required = a.token != nil || len(a.users) > 0
	addr := opts.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("listen address %q: %w (want host:port, such as %s)", addr, err, DefaultAddr)
	}
	if !a.required && !IsLoopback(addr) {
		return nil, fmt.Errorf("listen address %s: %w (set a token or basic auth, or listen on %s)", addr, ErrNeedAuth, DefaultAddr)
	}
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("TLS needs both a certificate file and a key file")
	}
	return a, nil
}

func (a *auth) addUser(user, hash string) error {
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return fmt.Errorf("password hash of user %s is not a bcrypt hash (make one with `htpasswd -nB %s`): %w", user, user, err)
	}
	a.users[user] = []byte(hash)
	return nil
}

func (a *auth) readFile(name string) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("basic auth file: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		user, hash, ok := strings.Cut(l, ":")
		if !ok || user == "" {
			return fmt.Errorf("basic auth file %s, line %d: want user:bcrypt-hash", name, line)
		}
		if err := a.addUser(user, hash); err != nil {
			return fmt.Errorf("basic auth file %s, line %d: %w", name, line, err)
		}
	}
	if len(a.users) == 0 {
		return fmt.Errorf("basic auth file %s has no user", name)
	}
	return nil
}

// equal compares secrets in time that depends on neither's content nor length.
func equal(a, b []byte) bool {
	ha, hb := sha256.Sum256(a), sha256.Sum256(b)
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}

// allowed tells whether the request carries valid credentials.
func (a *auth) allowed(r *http.Request) bool {
	if !a.required {
		return true
	}
	if h := r.Header.Get("Authorization"); a.token != nil && strings.HasPrefix(h, "Bearer ") {
		return equal([]byte(strings.TrimPrefix(h, "Bearer ")), a.token)
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	if a.token != nil && equal([]byte(pass), a.token) {
		return true
	}
	return a.checkUser(user, pass)
}

func (a *auth) checkUser(user, pass string) bool {
	key := sha256.Sum256([]byte(user + "\x00" + pass))
	a.mu.Lock()
	ok := a.verified[key]
	a.mu.Unlock()
	if ok {
		return true
	}
	hash, known := a.users[user]
	if !known {
		// the same work for an unknown user, so timing does not tell users apart
		hash = dummyHash()
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil || !known {
		return false
	}
	a.mu.Lock()
	if len(a.verified) > 64 {
		clear(a.verified)
	}
	a.verified[key] = true
	a.mu.Unlock()
	return true
}

var dummyHash = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("stillpoint"), bcrypt.DefaultCost)
	return h
})

// wrap refuses requests without valid credentials, and without any
// configured, requests whose Host is not a loopback name: a page of
// another site whose name resolves to 127.0.0.1 (DNS rebinding) must
// not read this one.
func (a *auth) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !a.required {
			if !loopbackHost(r.Host) {
				refuse(w, r, http.StatusMisdirectedRequest, "this server answers only to localhost or a loopback address (configure a token or basic auth to serve other names)")
				return
			}
			h.ServeHTTP(w, r)
			return
		}
		if !a.allowed(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="stillpoint", charset="UTF-8"`)
			refuse(w, r, http.StatusUnauthorized, "authentication required: a bearer token or basic auth")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// refuse answers an API request with a JSON error, any other in plain text.
func refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, code, apiError{Error: msg, Status: code})
		return
	}
	http.Error(w, msg, code)
}

func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

package notify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

var t0 = time.Date(2026, 5, 6, 2, 0, 0, 0, time.UTC)

func partialEvent() Event {
	return Event{
		Job: "app", Host: "web-1", Kind: "full", Status: Partial, Snapshot: "4f2a9c01",
		Start: t0, End: t0.Add(95 * time.Second),
		Outcomes: map[string]int{"ok": 1200, "changed": 1, "failed": 1},
		Flagged: []File{{"/srv/app/log/app.log", "changed", "size changed while read"},
			{"/srv/app/data/lock.db", "failed", "locked by pid 812"}},
		Summary: "Backup of /srv/app: 1202 files, 7.0 GiB read, 12 MiB added\nsnapshot 4f2a9c01 written, 2 files not stored whole\n",
	}
}

// testCert is a self-signed certificate for 127.0.0.1 and the pool that
// trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// mailServer is an SMTP server on 127.0.0.1 that keeps what it receives.
type mailServer struct {
	addr string
	port int
	mu   sync.Mutex
	msgs []received
	// mechs are the AUTH mechanisms offered ("PLAIN", "LOGIN").
	mechs          []string
	user, password string
}

type received struct {
	from   string
	to     []string
	data   []byte
	tls    bool
	authAs string
}

type session struct {
	srv  *mailServer
	conn *smtp.Conn
	cur  received
}

func (s *session) AuthMechanisms() []string { return s.srv.mechs }

func (s *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		if user != s.srv.user || pass != s.srv.password {
			return errors.New("invalid credentials")
		}
		s.cur.authAs = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, errors.New("unsupported mechanism")
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if len(s.srv.mechs) > 0 && s.cur.authAs == "" {
		return errors.New("log in first")
	}
	_, s.cur.tls = s.conn.TLSConnectionState()
	s.cur.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = b
	s.srv.mu.Lock()
	s.srv.msgs = append(s.srv.msgs, s.cur)
	s.srv.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = received{authAs: s.cur.authAs} }
func (s *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks.
type loginServer struct {
	check func(user, pass string) error
	user  string
	step  int
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if resp == nil {
			return []byte("Username:"), false, nil
		}
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.user, string(resp))
}

func startMailServer(t *testing.T, cert *tls.Certificate, mechs ...string) *mailServer {
	t.Helper()
	return startMailServerOn(t, cert, false, mechs...)
}

// startMailServerOn starts a mail server; implicit: TLS from the first
// byte (as on port 465) instead of STARTTLS.
func startMailServerOn(t *testing.T, cert *tls.Certificate, implicit bool, mechs ...string) *mailServer {
	t.Helper()
	ms := &mailServer{mechs: mechs, user: "backup", password: "s3cret pass"}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: ms, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	if cert != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if implicit {
		l = tls.NewListener(l, srv.TLSConfig)
	}
	ms.addr = l.Addr().String()
	ms.port = l.Addr().(*net.TCPAddr).Port
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return ms
}

func (ms *mailServer) messages() []received {
	ms.mu.Lock()
	defer ms.mu.Unlock()
	return append([]received(nil), ms.msgs...)
}

func passwordFile(t *testing.T, pw string) string {
	p := filepath.Join(t.TempDir(), "smtp-password")
	if err := os.WriteFile(p, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// readMail parses a received message and decodes its body.
func readMail(t *testing.T, data []byte) (subject, body string, h mail.Header) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	subject, err = new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	return subject, strings.ReplaceAll(string(b), "\r\n", "\n"), m.Header
}

func TestEmailStartTLSAndAuth(t *testing.T) {
	cert, pool := testCert(t)
	for _, mech := range []string{sasl.Plain, sasl.Login} {
		t.Run(mech, func(t *testing.T) {
			ms := startMailServer(t, &cert, mech)
			n := New(Config{Email: []Email{{
				To: []string{"ops@example.com", "oncall@example.com"}, From: "backup@web-1.example.com",
				Server: "127.0.0.1", Port: ms.port, StartTLS: StartTLSAlways,
				Username: "backup", PasswordFile: passwordFile(t, "s3cret pass"),
				TLS: &tls.Config{RootCAs: pool},
			}}})
			res := n.Send(context.Background(), partialEvent())
			if len(res) != 1 || !res[0].Sent || res[0].Err != nil {
				t.Fatalf("results %v", res)
			}
			msgs := ms.messages()
			if len(msgs) != 1 {
				t.Fatalf("%d messages received", len(msgs))
			}
			m := msgs[0]
			if !m.tls || m.authAs != "backup" || m.from != "backup@web-1.example.com" || strings.Join(m.to, ",") != "ops@example.com,oncall@example.com" {
				t.Errorf("envelope: tls %v, auth %q, from %q, to %v", m.tls, m.authAs, m.from, m.to)
			}
			subject, body, h := readMail(t, m.data)
			if subject != "[stillpoint] app on web-1: partial, 2 file(s) not stored whole" {
				t.Errorf("subject %q", subject)
			}
			for _, want := range []string{partialEvent().Summary, "Snapshot: 4f2a9c01",
				"changed      /srv/app/log/app.log (size changed while read)",
				"failed       /srv/app/data/lock.db (locked by pid 812)"} {
				if !strings.Contains(body, want) {
					t.Errorf("body lacks %q:\n%s", want, body)
				}
			}
			if h.Get("To") != "ops@example.com, oncall@example.com" || h.Get("Message-Id") == "" {
				t.Errorf("headers %v", h)
			}
		})
	}
}

// Port 465: TLS from the first byte, the password sent over it; a
// certificate the client does not trust fails before anything is sent.
func TestEmailImplicitTLS(t *testing.T) {
	cert, pool := testCert(t)
	ms := startMailServerOn(t, &cert, true, sasl.Plain)
	send := func(e Email) Result {
		e.To, e.Server, e.Port, e.Timeout = []string{"ops@example.com"}, "127.0.0.1", ms.port, 5*time.Second
		e.ImplicitTLS = true
		return New(Config{Email: []Email{e}}).Send(context.Background(), partialEvent())[0]
	}
	if r := send(Email{Username: "backup", PasswordFile: passwordFile(t, "s3cret pass"), TLS: &tls.Config{RootCAs: pool}}); !r.Sent || r.Err != nil {
		t.Fatalf("implicit TLS: %v", r)
	}
	if r := send(Email{StartTLS: StartTLSNever, Username: "backup", PasswordFile: passwordFile(t, "s3cret pass"), TLS: &tls.Config{RootCAs: pool}}); !r.Sent {
		t.Errorf("starttls never does not turn implicit TLS off: %v", r)
	}
	if r := send(Email{}); r.Sent || r.Err == nil || !strings.Contains(r.Err.Error(), "TLS") {
		t.Errorf("an untrusted certificate: %v", r)
	}
	msgs := ms.messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages received, want 2", len(msgs))
	}
	if m := msgs[0]; !m.tls || m.authAs != "backup" {
		t.Errorf("first message: tls %v, auth %q", m.tls, m.authAs)
	}
	// a client that does not speak TLS first sends nothing
	plain := New(Config{Email: []Email{{To: []string{"ops@example.com"}, Server: "127.0.0.1", Port: ms.port, StartTLS: StartTLSNever, Timeout: 3 * time.Second}}})
	if r := plain.Send(context.Background(), partialEvent())[0]; r.Sent {
		t.Errorf("a plain connection to a TLS port sent: %v", r)
	}
}

func TestEmailStartTLSModes(t *testing.T) {
	plain := startMailServer(t, nil) // offers no STARTTLS, no AUTH
	ev := partialEvent()
	send := func(e Email) Result {
		e.To, e.Server, e.Timeout = []string{"ops@example.com"}, "127.0.0.1", 5*time.Second
		return New(Config{Email: []Email{e}}).Send(context.Background(), ev)[0]
	}
	if r := send(Email{Port: plain.port, StartTLS: StartTLSAuto}); !r.Sent {
		t.Errorf("auto with a server without STARTTLS: %v", r)
	}
	if r := send(Email{Port: plain.port, StartTLS: StartTLSAlways}); r.Sent || r.Err == nil || !strings.Contains(r.Err.Error(), "STARTTLS") {
		t.Errorf("always with a server without STARTTLS: %v", r)
	}
	if n := len(plain.messages()); n != 1 {
		t.Errorf("%d messages, want the one of auto", n)
	}
	if m := plain.messages()[0]; m.tls || m.from != "stillpoint@web-1" {
		t.Errorf("plain message: tls %v from %q", m.tls, m.from)
	}

	// a certificate the client does not trust fails, even in auto
	cert, _ := testCert(t)
	tlsSrv := startMailServer(t, &cert)
	if r := send(Email{Port: tlsSrv.port}); r.Sent || r.Err == nil {
		t.Errorf("an untrusted certificate: %v", r)
	}
	if r := send(Email{Port: tlsSrv.port, StartTLS: StartTLSNever}); !r.Sent {
		t.Errorf("never: %v", r)
	}
}

func TestDeadMailServerDoesNotFailTheRun(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := l.Addr().(*net.TCPAddr).Port
	l.Close()
	// and one that accepts and never answers
	stall, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer stall.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := stall.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	}()
	var hooked int
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hooked++ }))
	defer hook.Close()

	n := New(Config{
		Email: []Email{
			{To: []string{"ops@example.com"}, Server: "127.0.0.1", Port: deadPort},
			{To: []string{"ops@example.com"}, Server: "127.0.0.1", Port: stall.Addr().(*net.TCPAddr).Port, Timeout: 500 * time.Millisecond},
		},
		Webhook: []Webhook{{URL: hook.URL}},
	})
	began := time.Now()
	res := n.Send(context.Background(), partialEvent())
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Send took %v with dead mail servers", took)
	}
	if len(res) != 3 {
		t.Fatalf("results %v", res)
	}
	for i, r := range res[:2] {
		if r.Sent || r.Err == nil {
			t.Errorf("email %d: %v", i, r)
		}
		if !strings.Contains(r.String(), "not sent") || !strings.Contains(r.String(), "127.0.0.1") {
			t.Errorf("log line %q", r.String())
		}
	}
	if !strings.Contains(res[0].Err.Error(), "refused") {
		t.Errorf("closed port: %v", res[0].Err)
	}
	if !res[2].Sent || hooked != 1 {
		t.Errorf("the webhook beside dead mail servers: %v, %d requests", res[2], hooked)
	}
}

func TestWebhookRetries(t *testing.T) {
	var mu sync.Mutex
	var calls int
	var got Payload
	var auth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls <= 2 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		auth = r.Header.Get("Authorization")
		if r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "json please", http.StatusUnsupportedMediaType)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	w := Webhook{URL: srv.URL + "/hook?token=abc", Headers: map[string]string{"Authorization": "Bearer xyz"}, Backoff: 10 * time.Millisecond}
	res := New(Config{Webhook: []Webhook{w}}).Send(context.Background(), partialEvent())[0]
	if !res.Sent || res.Attempts != 3 || calls != 3 {
		t.Fatalf("%v: %d attempts, %d calls", res, res.Attempts, calls)
	}
	if strings.Contains(res.Channel, "abc") {
		t.Errorf("the channel's name shows the token: %s", res.Channel)
	}
	if auth != "Bearer xyz" || got.Job != "app" || got.Status != Partial || got.Snapshot != "4f2a9c01" ||
		got.FlaggedCount != 2 || len(got.Flagged) != 2 || got.Flagged[1].Path != "/srv/app/data/lock.db" ||
		got.Outcomes["changed"] != 1 || got.Summary != partialEvent().Summary || got.Seconds != 95 {
		t.Errorf("payload %+v, auth %q", got, auth)
	}

	// a 4xx is not tried again; a server that stays down is tried Attempts times
	for _, c := range []struct {
		code, attempts, want int
	}{{http.StatusNotFound, 4, 1}, {http.StatusBadGateway, 3, 3}} {
		var n int
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n++
			w.WriteHeader(c.code)
		}))
		r := New(Config{Webhook: []Webhook{{URL: s.URL, Attempts: c.attempts, Backoff: time.Millisecond}}}).Send(context.Background(), partialEvent())[0]
		s.Close()
		if r.Sent || r.Err == nil || n != c.want || r.Attempts != c.want {
			t.Errorf("status %d: %v, %d requests, want %d", c.code, r, n, c.want)
		}
	}
}

func TestOnSelection(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path]++
		mu.Unlock()
	}))
	defer srv.Close()
	n := New(Config{Webhook: []Webhook{
		{URL: srv.URL + "/default"},
		{URL: srv.URL + "/failure", On: []When{OnFailure}},
		{URL: srv.URL + "/all", On: []When{OnFailure, OnFlagged, OnSuccess}},
	}})
	for _, s := range []Status{Started, Success, Partial, Failed} {
		ev := partialEvent()
		ev.Status = s
		for _, r := range n.Send(context.Background(), ev) {
			if r.Err != nil {
				t.Errorf("%s: %v", s, r)
			}
		}
	}
	want := map[string]int{"/default": 2, "/failure": 1, "/all": 3}
	for p, w := range want {
		if seen[p] != w {
			t.Errorf("%s told %d times, want %d (%v)", p, seen[p], w, seen)
		}
	}
}

func TestHealthchecksPings(t *testing.T) {
	var mu sync.Mutex
	var pings []string
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		pings = append(pings, r.Method+" "+r.URL.Path)
		bodies = append(bodies, string(b))
		mu.Unlock()
	}))
	defer srv.Close()
	n := New(Config{Healthchecks: []Healthchecks{
		{URL: srv.URL + "/ping/5f3e/"},
		{Success: srv.URL + "/ok", Failure: srv.URL + "/bad"}, // no start URL
	}})
	for _, s := range []Status{Started, Partial, Failed, Success} {
		ev := partialEvent()
		ev.Status = s
		for _, r := range n.Send(context.Background(), ev) {
			if r.Err != nil || strings.Contains(r.Channel, "5f3e") {
				t.Errorf("%s: %v", s, r)
			}
		}
	}
	want := []string{"POST /ping/5f3e/start", "POST /ping/5f3e", "POST /ok", "POST /ping/5f3e/fail", "POST /bad", "POST /ping/5f3e", "POST /ok"}
	got := map[string]int{}
	for _, p := range pings {
		got[p]++
	}
	wantCount := map[string]int{}
	for _, p := range want {
		wantCount[p]++
	}
	if len(pings) != len(want) {
		t.Fatalf("pings %v, want %v", pings, want)
	}
	for p, c := range wantCount {
		if got[p] != c {
			t.Errorf("%s: %d pings, want %d (%v)", p, got[p], c, pings)
		}
	}
	if bodies[0] != "" || !strings.Contains(bodies[1], "not stored whole") {
		t.Errorf("ping bodies %q", bodies[:2])
	}
}

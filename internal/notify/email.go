package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// STARTTLS modes.
const (
	StartTLSAuto   = "auto"   // when the server offers it
	StartTLSAlways = "always" // or fail
	StartTLSNever  = "never"
)

// StartTLSModes lists the modes.
var StartTLSModes = []string{StartTLSAuto, StartTLSAlways, StartTLSNever}

// DefaultSMTPPort is the submission port.
const DefaultSMTPPort = 587

// ImplicitTLSPort is the submission port with TLS from the first byte
// (RFC 8314): a job file's port 465 sets Email.ImplicitTLS.
const ImplicitTLSPort = 465

// defaultSMTPTimeout bounds one e-mail, from the connection to QUIT.
const defaultSMTPTimeout = 30 * time.Second

// Email sends a message over SMTP.
type Email struct {
	To   []string
	From string // default stillpoint@HOST
	// Server and Port are the submission server; Port defaults to 587.
	Server string
	Port   int
	// StartTLS is auto, always or never; "" is auto. It does not apply
	// with ImplicitTLS.
	StartTLS string
	// ImplicitTLS: the connection is TLS from its first byte (port 465).
	ImplicitTLS bool
	// Username and PasswordFile log in (AUTH PLAIN, or LOGIN when the
	// server offers only that); never over a connection without TLS to
	// another machine. The file is read at each send.
	Username, PasswordFile string
	On                     []When
	// TLS, when set, is the TLS configuration (tests: a private CA); its
	// ServerName defaults to Server.
	TLS *tls.Config
	// Timeout bounds one message; default 30s.
	Timeout time.Duration
}

func (e Email) addr() string {
	port := e.Port
	if port == 0 {
		port = DefaultSMTPPort
	}
	return net.JoinHostPort(e.Server, strconv.Itoa(port))
}

func (e Email) name() string {
	return fmt.Sprintf("email to %s via %s", strings.Join(e.To, ", "), e.addr())
}

func (e Email) send(ctx context.Context, ev Event) Result {
	r := Result{Channel: e.name()}
	if !wants(e.On, ev.Status) {
		return r
	}
	r.Attempts = 1
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = defaultSMTPTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := e.deliver(ctx, ev); err != nil {
		r.Err = err
		return r
	}
	r.Sent = true
	return r
}

var errNoStartTLS = errors.New("the server does not offer STARTTLS")

func (e Email) deliver(ctx context.Context, ev Event) error {
	if len(e.To) == 0 || e.Server == "" {
		return errors.New("an e-mail needs a server and a recipient")
	}
	from := e.From
	if from == "" {
		from = "stillpoint@" + ev.Host
	}
	msg, err := message(from, e.To, ev)
	if err != nil {
		return err
	}
	var password string
	if e.Username != "" {
		b, err := os.ReadFile(e.PasswordFile)
		if err != nil {
			return fmt.Errorf("the SMTP password: %w", err)
		}
		password = strings.TrimRight(string(b), "\r\n")
	}
	mode := e.StartTLS
	if mode == "" {
		mode = StartTLSAuto
	}
	c, err := e.connect(ctx, mode != StartTLSNever)
	if errors.Is(err, errNoStartTLS) && mode == StartTLSAuto && !e.ImplicitTLS {
		c, err = e.connect(ctx, false)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	_, isTLS := c.TLSConnectionState()
	if e.Username != "" {
		if !isTLS && !loopback(e.Server) {
			return fmt.Errorf("refusing to send the SMTP password to %s without TLS; set starttls: always (or auto with a server that offers it)", e.Server)
		}
		var auth sasl.Client
		switch {
		case c.SupportsAuth(sasl.Plain):
			auth = sasl.NewPlainClient("", e.Username, password)
		case c.SupportsAuth(sasl.Login):
			auth = sasl.NewLoginClient(e.Username, password)
		default:
			return errors.New("the SMTP server offers neither AUTH PLAIN nor LOGIN")
		}
		if err := c.Auth(auth); err != nil {
			return fmt.Errorf("SMTP login as %s: %w", e.Username, err)
		}
	}
	if err := c.SendMail(from, e.To, bytes.NewReader(msg)); err != nil {
		return ctxErr(ctx, err)
	}
	if err := c.Quit(); err != nil {
		return ctxErr(ctx, err)
	}
	return nil
}

func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

// connect dials the server and, with startTLS, upgrades the connection.
// With ImplicitTLS the connection is TLS from the start, whatever
// startTLS says.
func (e Email) connect(ctx context.Context, startTLS bool) (*smtp.Client, error) {
	if e.ImplicitTLS {
		return e.connectTLS(ctx)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", e.addr())
	if err != nil {
		return nil, err
	}
	// the client sets deadlines of minutes on the connection itself; a
	// server that stalls is cut off when ctx ends (send's ctx always ends)
	context.AfterFunc(ctx, func() { conn.Close() })
	if !startTLS {
		c := smtp.NewClient(conn)
		if err := c.Hello(localName()); err != nil {
			c.Close()
			return nil, ctxErr(ctx, err)
		}
		return c, nil
	}
	c, err := smtp.NewClientStartTLS(conn, e.tlsConfig())
	if err != nil {
		if strings.Contains(err.Error(), "doesn't support STARTTLS") {
			return nil, errNoStartTLS
		}
		return nil, ctxErr(ctx, fmt.Errorf("STARTTLS with %s: %w", e.Server, err))
	}
	return c, nil
}

// connectTLS dials the server with TLS from the first byte (port 465).
func (e Email) connectTLS(ctx context.Context) (*smtp.Client, error) {
	d := tls.Dialer{Config: e.tlsConfig()}
	conn, err := d.DialContext(ctx, "tcp", e.addr())
	if err != nil {
		return nil, ctxErr(ctx, fmt.Errorf("TLS with %s: %w", e.addr(), err))
	}
	context.AfterFunc(ctx, func() { conn.Close() })
	c := smtp.NewClient(conn)
	if err := c.Hello(localName()); err != nil {
		c.Close()
		return nil, ctxErr(ctx, err)
	}
	return c, nil
}

func (e Email) tlsConfig() *tls.Config {
	cfg := &tls.Config{ServerName: e.Server, MinVersion: tls.VersionTLS12}
	if e.TLS != nil {
		cfg = e.TLS.Clone()
		if cfg.ServerName == "" {
			cfg.ServerName = e.Server
		}
	}
	return cfg
}

func localName() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Subject is the e-mail's subject line.
func Subject(ev Event) string {
	s := fmt.Sprintf("[stillpoint] %s on %s: %s", ev.Job, ev.Host, ev.Status)
	switch {
	case ev.Status == Partial:
		s += fmt.Sprintf(", %d file(s) not stored whole", countFlagged(ev))
	case ev.Status == Failed && len(ev.Errors) > 0:
		first := ev.Errors[0]
		if len(first) > 80 {
			first = first[:77] + "..."
		}
		s += ": " + first
	}
	return strings.Join(strings.Fields(s), " ") // no line breaks in a header
}

// Body is the e-mail's text: the run's summary, then the files not stored
// whole.
func Body(ev Event) string {
	var b strings.Builder
	b.WriteString(strings.TrimRight(ev.Summary, "\n"))
	b.WriteString("\n")
	if ev.Snapshot != "" {
		fmt.Fprintf(&b, "\nSnapshot: %s\n", ev.Snapshot)
	}
	if len(ev.Errors) > 0 {
		b.WriteString("\nErrors:\n")
		for _, e := range ev.Errors {
			b.WriteString("  " + e + "\n")
		}
	}
	if len(ev.Flagged) > 0 {
		fmt.Fprintf(&b, "\nFiles not stored whole (%d):\n", countFlagged(ev))
		for i, f := range ev.Flagged {
			if i == maxListed {
				fmt.Fprintf(&b, "  ... and %d more\n", len(ev.Flagged)-maxListed)
				break
			}
			fmt.Fprintf(&b, "  %-12s %s", f.Outcome, f.Path)
			if f.Reason != "" {
				b.WriteString(" (" + f.Reason + ")")
			}
			b.WriteString("\n")
		}
	}
	return b.String()
}

// message is the whole e-mail, headers and quoted-printable text.
func message(from string, to []string, ev Event) ([]byte, error) {
	var id [12]byte
	rand.Read(id[:])
	var b bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", from)
	h("To", strings.Join(to, ", "))
	h("Subject", mime.QEncoding.Encode("utf-8", Subject(ev)))
	h("Date", time.Now().Format(time.RFC1123Z))
	h("Message-ID", fmt.Sprintf("<%s@%s>", hex.EncodeToString(id[:]), domainOf(from)))
	h("MIME-Version", "1.0")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "quoted-printable")
	h("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	w := quotedprintable.NewWriter(&b)
	if _, err := w.Write([]byte(strings.ReplaceAll(Body(ev), "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func domainOf(addr string) string {
	if i := strings.LastIndex(addr, "@"); i >= 0 {
		return strings.Trim(addr[i+1:], "> ")
	}
	return "stillpoint"
}

package job

import (
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Notify is a job's notify: section: the channels told how runs went.
type Notify struct {
	Email        []NotifyEmail
	Webhook      []NotifyWebhook
	Healthchecks []NotifyHealthchecks
}

// NotifyEmail is an e-mail channel.
type NotifyEmail struct {
	To     []string
	From   string // "": stillpoint@HOST
	Server string
	Port   int
	// StartTLS is auto, always or never.
	StartTLS               string
	Username, PasswordFile string
	// On is the runs told about: failure, flagged, success.
	On []string
}

// NotifyWebhook is a webhook channel (a JSON POST).
type NotifyWebhook struct {
	URL     string
	Headers map[string]string
	On      []string
}

// NotifyHealthchecks pings a monitor: URL, URL/start, URL/fail, or the
// explicit Start, Success and Failure URLs.
type NotifyHealthchecks struct {
	URL, Start, Success, Failure string
}

// Notify defaults and value sets.
const DefaultSMTPPort = 587

var (
	NotifyWhens     = []string{"failure", "flagged", "success"}
	DefaultNotifyOn = []string{"failure", "flagged"}
	StartTLSModes   = []string{"auto", "always", "never"}
	notifyKeys      = []string{"email", "webhook", "healthchecks"}
	emailKeys       = []string{"to", "from", "server", "port", "starttls", "username", "password-file", "on"}
	webhookKeys     = []string{"url", "headers", "on"}
	healthKeys      = []string{"url", "start", "success", "failure"}
)

const (
	notifyHint = "write e.g. notify: {email: {to: [ops@example.com], server: smtp.example.com}, webhook: {url: https://hooks.example.com/backup}}"
	onHint     = "a list of failure, flagged (files not stored whole) and success, e.g. on: [failure, flagged]"
	urlHint    = "an http:// or https:// URL, e.g. https://hooks.example.com/backup"
)

func (p *parser) notify(n *yaml.Node) {
	f, ok := p.mapping(n, "notify", notifyKeys, notifyHint)
	if !ok {
		return
	}
	nt := &Notify{}
	for _, k := range notifyKeys {
		v, ok := f[k]
		if !ok {
			continue
		}
		entries := []*yaml.Node{resolve(v.val)}
		keyOf := func(int) string { return "notify." + k }
		if entries[0].Kind == yaml.SequenceNode { // several channels of the kind
			entries = entries[0].Content
			keyOf = func(i int) string { return fmt.Sprintf("notify.%s[%d]", k, i) }
		}
		for i, e := range entries {
			key := keyOf(i)
			switch k {
			case "email":
				if m, ok := p.notifyEmail(e, key); ok {
					nt.Email = append(nt.Email, m)
				}
			case "webhook":
				if w, ok := p.notifyWebhook(e, key); ok {
					nt.Webhook = append(nt.Webhook, w)
				}
			case "healthchecks":
				if h, ok := p.notifyHealthchecks(e, key); ok {
					nt.Healthchecks = append(nt.Healthchecks, h)
				}
			}
		}
	}
	p.set("notify", resolve(n))
	p.job.Notify = nt
}

func (p *parser) notifyOn(f map[string]field, key string) []string {
	v, ok := f["on"]
	if !ok {
		return append([]string(nil), DefaultNotifyOn...)
	}
	var out []string
	for i, s := range p.strList(v.val, key+".on", onHint) {
		if !contains(NotifyWhens, s) {
			hint := onHint
			if d := closest(s, NotifyWhens); d != "" {
				hint = fmt.Sprintf("did you mean %q? (%s)", d, onHint)
			}
			p.errorf(elem(v.val, i), fmt.Sprintf("%s.on[%d]", key, i), hint, "unknown value %q", s)
			continue
		}
		out = append(out, s)
	}
	if len(out) == 0 && len(p.errs) == 0 {
		p.errorf(v.val, key+".on", onHint+"; remove the channel to tell nobody", "the channel is told about no run")
	}
	return out
}

// elem is the node of a list's i-th value, or the node itself.
func elem(n *yaml.Node, i int) *yaml.Node {
	n = resolve(n)
	if n.Kind == yaml.SequenceNode && i < len(n.Content) {
		return n.Content[i]
	}
	return n
}

func (p *parser) notifyEmail(e *yaml.Node, key string) (NotifyEmail, bool) {
	m := NotifyEmail{Port: DefaultSMTPPort, StartTLS: "auto"}
	f, ok := p.mapping(e, key, emailKeys, "write e.g. email: {to: [ops@example.com], server: smtp.example.com}")
	if !ok {
		return m, false
	}
	errs := len(p.errs)
	if v, ok := f["to"]; ok {
		m.To = p.strList(v.val, key+".to", "a list of addresses, e.g. [ops@example.com]")
		for i, a := range m.To {
			if _, err := mail.ParseAddress(a); err != nil {
				p.errorf(elem(v.val, i), fmt.Sprintf("%s.to[%d]", key, i), "an address such as ops@example.com", "%q is not an e-mail address", a)
			}
		}
		if len(m.To) == 0 {
			p.errorf(v.val, key+".to", "add at least one address", "the list of recipients is empty")
		}
	} else {
		p.errorf(resolve(e), key+".to", "add to: [ops@example.com]", "the e-mail has no recipient")
	}
	if v, ok := f["from"]; ok {
		if m.From, ok = p.str(v.val, key+".from", "an address such as backup@web-1.example.com"); ok {
			if _, err := mail.ParseAddress(m.From); err != nil {
				p.errorf(v.val, key+".from", "an address such as backup@web-1.example.com", "%q is not an e-mail address", m.From)
			}
		}
	}
	if v, ok := f["server"]; ok {
		if m.Server, ok = p.str(v.val, key+".server", "the submission server's host name, e.g. smtp.example.com"); ok && strings.ContainsAny(m.Server, ":/ ") {
			p.errorf(v.val, key+".server", "write the host alone and the port in port:, e.g. server: smtp.example.com, port: 587", "%q is not a host name", m.Server)
		}
	} else {
		p.errorf(resolve(e), key+".server", "add server: smtp.example.com", "the e-mail has no server")
	}
	if v, ok := f["port"]; ok {
		if n, ok := p.integer(v.val, key+".port", "a port such as 587 (submission with STARTTLS), 465 (TLS from the first byte) or 25"); ok {
			if n < 1 || n > 65535 {
				p.errorf(v.val, key+".port", "a port such as 587", "port %d is out of range", n)
			}
			m.Port = n
		}
	}
	if v, ok := f["starttls"]; ok {
		m.StartTLS, _ = p.oneOf(v.val, key+".starttls", StartTLSModes)
		if m.Port == 465 {
			p.errorf(v.val, key+".starttls", "remove starttls: port 465 is TLS from the first byte", "starttls does not apply to port 465")
		}
	}
	if v, ok := f["username"]; ok {
		m.Username, _ = p.str(v.val, key+".username", "the SMTP account, e.g. backup@example.com")
	}
	if v, ok := f["password-file"]; ok {
		if m.PasswordFile, ok = p.str(v.val, key+".password-file", "an absolute path such as /etc/stillpoint/smtp-password"); ok && !filepath.IsAbs(m.PasswordFile) {
			p.errorf(v.val, key+".password-file", "write an absolute path such as /etc/stillpoint/smtp-password", "the path %q is relative", m.PasswordFile)
		}
	}
	switch u, pw := f["username"], f["password-file"]; {
	case u.key != nil && pw.key == nil:
		p.errorf(u.key, key+".password-file", "add password-file: /etc/stillpoint/smtp-password (a file holding only the password)", "a username without password-file")
	case u.key == nil && pw.key != nil:
		p.errorf(pw.key, key+".username", "add username: with the SMTP account", "password-file without a username")
	case u.key != nil && m.StartTLS == "never" && !loopbackHost(m.Server):
		p.errorf(f["starttls"].val, key+".starttls", "write starttls: always (or auto) so the password is sent encrypted", "starttls: never would send the password in clear to %s", m.Server)
	}
	m.On = p.notifyOn(f, key)
	return m, len(p.errs) == errs
}

func loopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}

func (p *parser) httpURL(n *yaml.Node, key string) (string, bool) {
	s, ok := p.str(n, key, urlHint)
	if !ok {
		return "", false
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.errorf(n, key, urlHint, "%q is not an http(s) URL", s)
		return "", false
	}
	return s, true
}

func (p *parser) notifyWebhook(e *yaml.Node, key string) (NotifyWebhook, bool) {
	var w NotifyWebhook
	if n := resolve(e); n.Kind == yaml.ScalarNode && n.Tag != "!!null" { // webhook: https://…
		w.URL, _ = p.httpURL(n, key+".url")
		w.On = append([]string(nil), DefaultNotifyOn...)
		return w, w.URL != ""
	}
	f, ok := p.mapping(e, key, webhookKeys, "write e.g. webhook: {url: https://hooks.example.com/backup, on: [failure]}")
	if !ok {
		return w, false
	}
	errs := len(p.errs)
	if v, ok := f["url"]; ok {
		w.URL, _ = p.httpURL(v.val, key+".url")
	} else {
		p.errorf(resolve(e), key+".url", "add url: https://hooks.example.com/backup", "the webhook has no url")
	}
	if v, ok := f["headers"]; ok {
		w.Headers = p.headers(v.val, key+".headers")
	}
	w.On = p.notifyOn(f, key)
	return w, len(p.errs) == errs
}

// headers reads a mapping of header names to values; any name is allowed.
func (p *parser) headers(n *yaml.Node, key string) map[string]string {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, key, `write e.g. headers: {Authorization: "Bearer TOKEN"}`, "must be a mapping of header names to values, not %s", describe(n))
		return nil
	}
	out := map[string]string{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		hkey := key + "." + k.Value
		if k.Value == "" || strings.ContainsAny(k.Value, " :\r\n") {
			p.errorf(k, hkey, "a header name such as Authorization", "%q is not a header name", k.Value)
			continue
		}
		if s, ok := p.str(v, hkey, `a text value, e.g. "Bearer TOKEN"`); ok {
			if strings.ContainsAny(s, "\r\n") {
				p.errorf(v, hkey, "put the value on one line", "a header value cannot span lines")
				continue
			}
			out[k.Value] = s
		}
	}
	return out
}

func (p *parser) notifyHealthchecks(e *yaml.Node, key string) (NotifyHealthchecks, bool) {
	var h NotifyHealthchecks
	if n := resolve(e); n.Kind == yaml.ScalarNode && n.Tag != "!!null" { // healthchecks: https://hc-ping.com/UUID
		h.URL, _ = p.httpURL(n, key+".url")
		return h, h.URL != ""
	}
	f, ok := p.mapping(e, key, healthKeys, "write e.g. healthchecks: {url: https://hc-ping.com/YOUR-UUID}")
	if !ok {
		return h, false
	}
	errs := len(p.errs)
	for k, dst := range map[string]*string{"url": &h.URL, "start": &h.Start, "success": &h.Success, "failure": &h.Failure} {
		if v, ok := f[k]; ok {
			*dst, _ = p.httpURL(v.val, key+"."+k)
		}
	}
	if h.URL == "" && h.Success == "" && h.Failure == "" && len(p.errs) == errs {
		p.errorf(resolve(e), key+".url", "add url: https://hc-ping.com/YOUR-UUID, or success: and failure: URLs", "healthchecks has no URL to ping for a finished run")
	}
	return h, len(p.errs) == errs
}

package notify

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Healthchecks pings a monitor the way healthchecks.io expects: URL/start
// when a run begins, URL when it wrote a snapshot (success or partial),
// URL/fail when it failed, each a POST whose body is the summary. Start,
// Success and Failure, when set, replace the URLs made from URL.
type Healthchecks struct {
	URL                     string
	Start, Success, Failure string
	// Attempts and Backoff: as Webhook's.
	Attempts int
	Backoff  time.Duration
}

// PingURL returns the URL pinged for status, "" when none.
func (h Healthchecks) PingURL(s Status) string {
	base := strings.TrimRight(h.URL, "/")
	pick := func(explicit, suffix string) string {
		if explicit != "" {
			return explicit
		}
		if base == "" {
			return ""
		}
		return base + suffix
	}
	switch s {
	case Started:
		return pick(h.Start, "/start")
	case Success, Partial:
		return pick(h.Success, "")
	case Failed:
		return pick(h.Failure, "/fail")
	}
	return ""
}

// maxPingBody is what healthchecks.io keeps of a ping's body.
const maxPingBody = 100_000

func (h Healthchecks) send(ctx context.Context, client *http.Client, ev Event) Result {
	target := h.PingURL(ev.Status)
	// the check's id in the path is its secret: name the host only
	r := Result{Channel: "healthchecks " + string(ev.Status) + " ping"}
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		r.Channel += " to " + u.Host
	}
	if target == "" {
		return r
	}
	var body string
	if ev.Status != Started {
		body = Body(ev)
		if len(body) > maxPingBody {
			body = body[:maxPingBody]
		}
	}
	r.Attempts, r.Err = post(ctx, client, target, "text/plain; charset=utf-8", []byte(body), nil, h.Attempts, h.Backoff)
	r.Sent = r.Err == nil
	return r
}

// Package notify tells people and monitors how a run went: e-mail over
// SMTP, a webhook (a JSON POST) and healthchecks-style pings. Each channel
// picks the runs it is told about (failure, flagged, success).
//
// A notification is never part of the backup: Send returns what each
// channel did, for the log, and a channel that cannot send (a dead mail
// server, a webhook that answers 500) changes nothing else.
package notify

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"sync"
	"time"
)

// Status is how a run ended, or that it began.
type Status string

// Statuses.
const (
	Started Status = "started" // only healthchecks are told (their /start ping)
	Success Status = "success" // a snapshot with every file whole
	Partial Status = "partial" // a snapshot with files flagged or failed
	Failed  Status = "failed"  // no snapshot
)

// When selects the runs a channel is told about.
type When string

// Selections, as written in a job file's on: list.
const (
	OnFailure When = "failure" // Failed
	OnFlagged When = "flagged" // Partial
	OnSuccess When = "success" // Success
)

// Whens is every selection, in the documentation's order.
var Whens = []When{OnFailure, OnFlagged, OnSuccess}

// DefaultOn is the selection of a channel that does not choose: the runs
// that need someone to look.
var DefaultOn = []When{OnFailure, OnFlagged}

func (s Status) when() When {
	switch s {
	case Success:
		return OnSuccess
	case Partial:
		return OnFlagged
	case Failed:
		return OnFailure
	}
	return ""
}

// Event is one run to tell about.
type Event struct {
	Job    string
	Host   string
	Kind   string // full, follow-up, drill
	Status Status
	// Snapshot is the id of the snapshot written; "" when none.
	Snapshot   string
	Start, End time.Time
	Outcomes   map[string]int
	// Flagged lists the files not stored whole.
	Flagged []File
	// Summary is the text the terminal showed at the end of the run.
	Summary string
	Errors  []string
}

// File is a file not stored whole.
type File struct {
	Path    string `json:"path"`
	Outcome string `json:"outcome"`
	Reason  string `json:"reason,omitempty"`
}

// maxListed bounds the flagged files an e-mail or a webhook lists; the
// rest are counted.
const maxListed = 1000

// Config is a job's channels.
type Config struct {
	Email        []Email
	Webhook      []Webhook
	Healthchecks []Healthchecks
}

// Result is what one channel did with an event.
type Result struct {
	// Channel names it for the log, without secrets: "email to
	// ops@example.com via smtp.example.com:587", "webhook
	// https://hooks.example.com/backup".
	Channel string
	// Sent: delivered. When false and Err is nil, the channel does not
	// want this kind of run.
	Sent     bool
	Attempts int
	Err      error
	Duration time.Duration
}

func (r Result) String() string {
	switch {
	case r.Err != nil:
		return fmt.Sprintf("%s: not sent after %d attempt(s) in %v: %v", r.Channel, r.Attempts, r.Duration.Round(time.Millisecond), r.Err)
	case r.Sent:
		return fmt.Sprintf("%s: sent", r.Channel)
	}
	return fmt.Sprintf("%s: not wanted for this run", r.Channel)
}

// Notifier sends events to a job's channels.
type Notifier struct {
	cfg  Config
	http *http.Client
}

// New returns a Notifier for the channels in cfg.
func New(cfg Config) *Notifier {
	return &Notifier{cfg: cfg, http: &http.Client{Timeout: defaultHTTPTimeout}}
}

// Send tells every channel that wants it about ev, all at once, and
// returns one Result per channel in the order of the Config (e-mail,
// webhooks, healthchecks). It returns when every channel is done or ctx
// ends; it never panics on a channel's failure.
func (n *Notifier) Send(ctx context.Context, ev Event) []Result {
	if ev.Host == "" {
		ev.Host, _ = os.Hostname()
	}
	type send func(context.Context, Event) Result
	var sends []send
	for _, e := range n.cfg.Email {
		sends = append(sends, e.send)
	}
	for _, w := range n.cfg.Webhook {
		sends = append(sends, func(ctx context.Context, ev Event) Result { return w.send(ctx, n.http, ev) })
	}
	for _, h := range n.cfg.Healthchecks {
		sends = append(sends, func(ctx context.Context, ev Event) Result { return h.send(ctx, n.http, ev) })
	}
	results := make([]Result, len(sends))
	var wg sync.WaitGroup
	for i, s := range sends {
		wg.Add(1)
		go func() {
			defer wg.Done()
			began := time.Now()
			defer func() {
				if r := recover(); r != nil {
					results[i].Err = fmt.Errorf("panic: %v", r)
				}
				results[i].Duration = time.Since(began)
			}()
			results[i] = s(ctx, ev)
		}()
	}
	wg.Wait()
	return results
}

func wants(on []When, s Status) bool {
	if len(on) == 0 {
		on = DefaultOn
	}
	w := s.when()
	for _, o := range on {
		if o == w {
			return true
		}
	}
	return false
}

// redact drops a URL's user, query and fragment, where tokens hide.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(an unreadable URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

func countFlagged(ev Event) int {
	n := 0
	for o, c := range ev.Outcomes {
		if o != "ok" && o != "ok-snapshot" {
			n += c
		}
	}
	return max(n, len(ev.Flagged))
}

package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Webhook POSTs the event as JSON (see Payload).
type Webhook struct {
	URL     string
	Headers map[string]string
	On      []When
	// Attempts bounds the tries (default DefaultAttempts); Backoff is the
	// wait before the second, doubled before each next (default
	// DefaultBackoff).
	Attempts int
	Backoff  time.Duration
}

// Retry defaults of webhooks and pings: four tries within 7 seconds of
// waiting, enough for a restarting receiver, short enough for a daemon
// that has the next run to start.
const (
	DefaultAttempts    = 4
	DefaultBackoff     = time.Second
	defaultHTTPTimeout = 15 * time.Second
)

// Payload is the webhook's JSON body.
type Payload struct {
	Job      string         `json:"job"`
	Host     string         `json:"host"`
	Kind     string         `json:"kind,omitempty"`
	Status   Status         `json:"status"`
	Snapshot string         `json:"snapshot,omitempty"`
	Start    time.Time      `json:"start"`
	End      time.Time      `json:"end"`
	Seconds  float64        `json:"duration_seconds"`
	Outcomes map[string]int `json:"outcomes"`
	// Flagged lists at most 1000 files; FlaggedCount counts them all.
	Flagged          []File   `json:"flagged"`
	FlaggedCount     int      `json:"flagged_count"`
	FlaggedTruncated bool     `json:"flagged_truncated,omitempty"`
	Errors           []string `json:"errors"`
	Summary          string   `json:"summary"`
}

// NewPayload is the webhook body for ev.
func NewPayload(ev Event) Payload {
	p := Payload{Job: ev.Job, Host: ev.Host, Kind: ev.Kind, Status: ev.Status, Snapshot: ev.Snapshot,
		Start: ev.Start, End: ev.End, Seconds: ev.End.Sub(ev.Start).Seconds(), Outcomes: ev.Outcomes,
		Flagged: ev.Flagged, FlaggedCount: countFlagged(ev), Errors: ev.Errors, Summary: ev.Summary}
	if len(p.Flagged) > maxListed {
		p.Flagged, p.FlaggedTruncated = p.Flagged[:maxListed], true
	}
	if p.Flagged == nil {
		p.Flagged = []File{}
	}
	if p.Errors == nil {
		p.Errors = []string{}
	}
	if p.Outcomes == nil {
		p.Outcomes = map[string]int{}
	}
	return p
}

func (w Webhook) send(ctx context.Context, client *http.Client, ev Event) Result {
	r := Result{Channel: "webhook " + redact(w.URL)}
	if !wants(w.On, ev.Status) {
		return r
	}
	body, err := json.Marshal(NewPayload(ev))
	if err != nil {
		r.Err = err
		return r
	}
	r.Attempts, r.Err = post(ctx, client, w.URL, "application/json", body, w.Headers, w.Attempts, w.Backoff)
	r.Sent = r.Err == nil
	return r
}

// post sends body, trying again after a network error, a 5xx or a 429,
// and returns the tries made.
func post(ctx context.Context, client *http.Client, target, contentType string, body []byte, headers map[string]string, attempts int, backoff time.Duration) (int, error) {
	if attempts <= 0 {
		attempts = DefaultAttempts
	}
	if backoff <= 0 {
		backoff = DefaultBackoff
	}
	var last error
	for try := 1; try <= attempts; try++ {
		if try > 1 {
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return try - 1, fmt.Errorf("%w; before that: %v", ctx.Err(), last)
			case <-t.C:
			}
			backoff *= 2
		}
		retry, err := postOnce(ctx, client, target, contentType, body, headers)
		if err == nil {
			return try, nil
		}
		last = err
		if !retry {
			return try, err
		}
	}
	return attempts, last
}

func postOnce(ctx context.Context, client *http.Client, target, contentType string, body []byte, headers map[string]string) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "stillpoint")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return ctx.Err() == nil, fmt.Errorf("POST %s: %v", redact(target), unwrapURLError(err))
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	err = fmt.Errorf("POST %s: %s %s", redact(target), resp.Status, bytes.TrimSpace(msg))
	return resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests, err
}

// unwrapURLError drops the *url.Error wrapper, which repeats the URL with
// its secrets.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

package notify

import "github.com/stillpoint-backup/stillpoint/internal/job"

// FromJob is the Config of a job's notify: section (nil: no channel).
func FromJob(n *job.Notify) Config {
	var c Config
	if n == nil {
		return c
	}
	whens := func(on []string) []When {
		out := make([]When, len(on))
		for i, o := range on {
			out[i] = When(o)
		}
		return out
	}
	for _, e := range n.Email {
		c.Email = append(c.Email, Email{To: e.To, From: e.From, Server: e.Server, Port: e.Port, StartTLS: e.StartTLS, ImplicitTLS: e.Port == ImplicitTLSPort,
			Username: e.Username, PasswordFile: e.PasswordFile, On: whens(e.On)})
	}
	for _, w := range n.Webhook {
		c.Webhook = append(c.Webhook, Webhook{URL: w.URL, Headers: w.Headers, On: whens(w.On)})
	}
	for _, h := range n.Healthchecks {
		c.Healthchecks = append(c.Healthchecks, Healthchecks{URL: h.URL, Start: h.Start, Success: h.Success, Failure: h.Failure})
	}
	return c
}

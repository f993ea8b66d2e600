package notify

import (
	"slices"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/job"
)

func TestFromJob(t *testing.T) {
	j, _, err := job.Parse("app.yaml", []byte(`sources: [/srv]
notify:
  email:
    - {to: [ops@example.com], server: smtp.example.com, on: [success]}
    - {to: [ops@example.com], server: smtp.example.com, port: 465}
  webhook: https://hooks.example.com/x
  healthchecks: {url: "https://hc.example.com/u"}
`))
	if err != nil {
		t.Skip("a Unix job file:", err) // Windows: /srv is not absolute
	}
	c := FromJob(j.Notify)
	if len(c.Email) != 2 || c.Email[0].addr() != "smtp.example.com:587" || !slices.Equal(c.Email[0].On, []When{OnSuccess}) || c.Email[0].StartTLS != StartTLSAuto || c.Email[0].ImplicitTLS {
		t.Errorf("email %+v", c.Email)
	}
	if len(c.Email) == 2 && (c.Email[1].addr() != "smtp.example.com:465" || !c.Email[1].ImplicitTLS) {
		t.Errorf("port 465: %+v, want TLS from the first byte", c.Email[1])
	}
	if len(c.Webhook) != 1 || !slices.Equal(c.Webhook[0].On, DefaultOn) {
		t.Errorf("webhook %+v", c.Webhook)
	}
	if len(c.Healthchecks) != 1 || c.Healthchecks[0].PingURL(Failed) != "https://hc.example.com/u/fail" {
		t.Errorf("healthchecks %+v", c.Healthchecks)
	}
	// the job package's value sets are the ones this package knows
	for _, w := range job.NotifyWhens {
		if !slices.Contains(Whens, When(w)) {
			t.Errorf("job accepts on: %s, which notify does not know", w)
		}
	}
	if !slices.Equal(job.StartTLSModes, StartTLSModes) || job.DefaultSMTPPort != DefaultSMTPPort {
		t.Error("job and notify disagree on STARTTLS modes or the port")
	}
	if len(FromJob(nil).Email) != 0 {
		t.Error("nil section")
	}
}

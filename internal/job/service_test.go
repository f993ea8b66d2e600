package job

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestServiceKeys(t *testing.T) {
	j, warns, err := Parse("/etc/stillpoint/jobs/app-db.yaml", []byte(nativeYAML(`sources: [/srv]
schedule: "0 2 * * *"
jitter: 15m
retry-after: 20m
notify:
  email:
    to: [ops@example.com, "On Call <oncall@example.com>"]
    from: backup@web-1.example.com
    server: smtp.example.com
    starttls: always
    username: backup
    password-file: /etc/stillpoint/smtp-password
    on: [failure, flagged, success]
  webhook:
    - url: https://hooks.example.com/backup?token=abc
      headers: {Authorization: "Bearer xyz"}
      on: failure
    - https://chat.example.com/hook
  healthchecks:
    url: https://hc-ping.com/5f3e
`)))
	if err != nil || len(warns) > 0 {
		t.Fatalf("%v %v", err, warns)
	}
	if j.Name != "app-db" {
		t.Errorf("name %q, want the file's name", j.Name)
	}
	if j.Schedule == nil || j.Schedule.String() != "0 2 * * *" || j.Jitter != 15*time.Minute || j.RetryAfter != 20*time.Minute {
		t.Errorf("schedule %v, jitter %v, retry-after %v", j.Schedule, j.Jitter, j.RetryAfter)
	}
	want := &Notify{
		Email: []NotifyEmail{{To: []string{"ops@example.com", "On Call <oncall@example.com>"}, From: "backup@web-1.example.com",
			Server: "smtp.example.com", Port: 587, StartTLS: "always", Username: "backup", PasswordFile: native("/etc/stillpoint/smtp-password"),
			On: []string{"failure", "flagged", "success"}}},
		Webhook: []NotifyWebhook{
			{URL: "https://hooks.example.com/backup?token=abc", Headers: map[string]string{"Authorization": "Bearer xyz"}, On: []string{"failure"}},
			{URL: "https://chat.example.com/hook", On: []string{"failure", "flagged"}},
		},
		Healthchecks: []NotifyHealthchecks{{URL: "https://hc-ping.com/5f3e"}},
	}
	if !reflect.DeepEqual(j.Notify, want) {
		t.Errorf("got  %+v\nwant %+v", j.Notify, want)
	}
	if p, ok := j.Pos("notify.webhook[1].url"); !ok || p.Line != 18 {
		t.Errorf("position of the second webhook: %v %v", p, ok)
	}

	j, _, err = Parse("job.yaml", []byte(nativeYAML("name: db.nightly\nschedule: every 30s\nsources: [/srv]\n")))
	if err != nil || j.Name != "db.nightly" || j.Schedule.Next(time.Unix(0, 0)) != time.Unix(30, 0) || j.Notify != nil {
		t.Errorf("name and interval: %+v %v", j, err)
	}
}

func TestServiceErrors(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want []string
	}{
		{`schedule: "0 2 * *"`, []string{"job.yaml:2:11: schedule: \"0 2 * *\" is not a cron schedule", `hint: a cron line such as "0 2 * * *"`}},
		{`schedule: "0 0 2 * * *"`, []string{"has 6 fields", "no seconds field", "every 30s"}},
		{"schedule: every 100ms", []string{"at least 1s"}},
		{"schedule: [daily]", []string{"schedule: must be a text value, not a list"}},
		{"schedule: every 1h\njitter: 1h", []string{"job.yaml:3:9: jitter: the jitter 1h0m0s is not below the time between runs", "shorter than 1h0m0s"}},
		{"schedule: '*/5 * * * *'\njitter: 10m", []string{"not below the time between runs", "shorter than 5m0s"}},
		{"jitter: 5m", []string{"jitter without a schedule"}},
		{"schedule: '@daily'\njitter: 5", []string{"the duration 5 has no unit"}},
		{"retry-after: 0", []string{"retry-after must be more than 0"}},
		{"name: 'my job'", []string{`"my job" is not usable as a job name`, "letters, digits"}},
		{"nme: x", []string{`unknown key "nme"`, `did you mean "name"?`}},
		{"notify: {mail: {to: [a@b.c]}}", []string{`notify.mail: unknown key "mail"`, `did you mean "email"?`}},
		{"notify: {sms: {to: x}}", []string{`unknown key "sms"`, "known keys here: email, webhook, healthchecks"}},
		{"notify:\n  email: {server: smtp.example.com}", []string{"job.yaml:3:10: notify.email.to: the e-mail has no recipient"}},
		{"notify:\n  email: {to: [ops], server: smtp.example.com}", []string{`notify.email.to[0]: "ops" is not an e-mail address`}},
		{"notify:\n  email: {to: [a@b.c]}", []string{"notify.email.server: the e-mail has no server"}},
		{"notify:\n  email: {to: [a@b.c], server: 'smtp.example.com:587'}", []string{"is not a host name", "port in port:"}},
		{"notify:\n  email: {to: [a@b.c], server: s.example.com, port: 465, starttls: always}", []string{"starttls does not apply to port 465"}},
		{"notify:\n  email: {to: [a@b.c], server: s.example.com, starttls: sometimes}", []string{`notify.email.starttls: unknown value "sometimes"`, "one of auto, always, never"}},
		{"notify:\n  email: {to: [a@b.c], server: s.example.com, username: u}", []string{"a username without password-file"}},
		{"notify:\n  email: {to: [a@b.c], server: s.example.com, username: u, password-file: /p, starttls: never}", []string{"would send the password in clear to s.example.com"}},
		{"notify:\n  email: {to: [a@b.c], server: s.example.com, password-file: pw, username: u}", []string{`the path "pw" is relative`}},
		{"notify:\n  email: {to: [a@b.c], server: s.example.com, on: [failur]}", []string{`notify.email.on[0]: unknown value "failur"`, `did you mean "failure"?`}},
		{"notify:\n  webhook: {on: [failure]}", []string{"notify.webhook.url: the webhook has no url"}},
		{"notify:\n  webhook: ftp://x.example.com/", []string{`"ftp://x.example.com/" is not an http(s) URL`}},
		{"notify:\n  webhook:\n    - url: https://a.example.com\n    - url: nope", []string{`job.yaml:5:12: notify.webhook[1].url: "nope" is not an http(s) URL`}},
		{"notify:\n  webhook: {url: 'https://a.example.com', headers: [x]}", []string{"headers: must be a mapping"}},
		{"notify:\n  healthchecks: {start: 'https://hc.example.com/s'}", []string{"healthchecks has no URL to ping for a finished run"}},
		{"notify:\n  healthchecks: {url: 'https://hc.example.com/x', fail: y}", []string{`unknown key "fail"`, `did you mean "failure"?`}},
	} {
		_, _, err := Parse("job.yaml", []byte(nativeYAML("sources: [/srv]\n"+c.yaml+"\n")))
		if err == nil {
			t.Errorf("%q: no error", c.yaml)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error\n%v\nlacks %q", c.yaml, err, w)
			}
		}
	}

	// a job named after a file whose name cannot name a job
	_, _, err := Parse("/etc/stillpoint/jobs/my job.yaml", []byte("sources: [/srv]\n"))
	if err == nil || !strings.Contains(err.Error(), `the job is named after its file, "my job"`) || !strings.Contains(err.Error(), "add name:") {
		t.Errorf("file name with a space: %v", err)
	}
}

func TestRetryAfterWarning(t *testing.T) {
	_, warns, err := Parse("job.yaml", []byte(nativeYAML("sources: [/srv]\nschedule: every 1h\nretry-after: 2h\n")))
	if err != nil || len(warns) != 1 || !strings.Contains(warns[0].String(), "job.yaml:3:14: retry-after: the follow-up run 2h0m0s after a run would come no sooner than the next scheduled run") {
		t.Errorf("%v %v", warns, err)
	}
}

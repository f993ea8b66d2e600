package s3

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestClockWatch(t *testing.T) {
	var serverOffset time.Duration
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", time.Now().Add(serverOffset).UTC().Format(http.TimeFormat))
	}))
	defer srv.Close()
	c := &clockWatch{next: http.DefaultTransport, now: time.Now}
	if err := c.check("server"); err != nil {
		t.Fatalf("before any response: %v", err)
	}
	for _, tc := range []struct {
		offset time.Duration
		says   []string
	}{
		{0, nil},
		{2 * time.Second, nil},
		{MaxClockSkew - 10*time.Second, nil},
		{-MaxClockSkew + 10*time.Second, nil},
		{40 * time.Minute, []string{"is 40m", "behind the clock of server"}},
		{-7 * time.Minute, []string{"is 7m", "ahead of the clock of server"}},
	} {
		serverOffset = tc.offset
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		resp, err := c.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		err = c.check("server")
		if tc.says == nil && err != nil {
			t.Errorf("server clock off by %s: %v", tc.offset, err)
		}
		for _, s := range tc.says {
			if err == nil || !strings.Contains(err.Error(), s) {
				t.Errorf("server clock off by %s: %v, want %q", tc.offset, err, s)
			}
		}
	}
}

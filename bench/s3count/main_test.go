package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestKind(t *testing.T) {
	for _, c := range []struct{ method, target, want string }{
		{"GET", "/bucket/prefix/data/ab/abcdef", "GET"},
		{"GET", "/bucket/?list-type=2&prefix=x", "LIST"},
		{"GET", "/bucket?location=", "LIST"},
		{"GET", "/", "LIST"},
		{"HEAD", "/bucket/config", "HEAD"},
		{"PUT", "/bucket/k", "PUT"},
		{"DELETE", "/bucket/k", "DELETE"},
		{"POST", "/bucket?delete=", "POST"},
		{"OPTIONS", "/bucket/k", "OTHER"},
	} {
		r := httptest.NewRequest(c.method, c.target, nil)
		if got := kind(r); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.method, c.target, got, c.want)
		}
	}
}

// TestCountsThroughProxy: requests and body bytes are counted both ways, and
// the upstream sees the Host the client sent (what SigV4 signed).
func TestCountsThroughProxy(t *testing.T) {
	var hosts []string
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts = append(hosts, r.Host)
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			t.Errorf("X-Forwarded-For %q reached the server", xff)
		}
		n, _ := io.Copy(io.Discard, r.Body)
		if r.Method == http.MethodGet {
			_, _ = io.WriteString(w, strings.Repeat("x", 1000))
		}
		if r.Method == http.MethodPut && n != 300 {
			t.Errorf("PUT body of %d bytes reached the server, want 300", n)
		}
	}))
	defer up.Close()
	target, _ := url.Parse(up.URL)
	c := newCounts()
	h := handler(c, target)
	front := httptest.NewServer(h)
	defer front.Close()

	req, _ := http.NewRequest(http.MethodPut, front.URL+"/b/k", strings.NewReader(strings.Repeat("y", 300)))
	req.Host = "signed.example:9000"
	do(t, req)
	req, _ = http.NewRequest(http.MethodGet, front.URL+"/b/k", nil)
	do(t, req)
	req, _ = http.NewRequest(http.MethodGet, front.URL+"/b?list-type=2", nil)
	do(t, req)

	got := c.text()
	for _, want := range []string{"requests 3\n", "sent_bytes 300\n", "received_bytes 2000\n", "PUT 1\n", "GET 1\n", "LIST 1\n", "GET_received_bytes 1000\n", "status_2xx 3\n", "proxy_errors 0\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("counts lack %q:\n%s", want, got)
		}
	}
	if len(hosts) == 0 || hosts[0] != "signed.example:9000" {
		t.Errorf("upstream saw Host %v, want signed.example:9000 first", hosts)
	}
}

func do(t *testing.T, req *http.Request) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

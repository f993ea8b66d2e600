package faultproxy_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend/netwatch"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/faultproxy"
)

var body = func() []byte {
	b := make([]byte, 1<<20)
	_, _ = rand.Read(b)
	return b
}()

// setup starts a server with /big (1 MiB) and /wait (answers when told),
// a proxy before it and a client whose connections are watched with the
// given idle time.
func setup(t *testing.T, idle time.Duration) (*faultproxy.Proxy, *http.Client, string, chan struct{}) {
	t.Helper()
	answer := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(body) })
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.HandleFunc("/wait", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-answer:
		case <-r.Context().Done():
		}
	})
	srv := httptest.NewServer(mux)
	// Close waits for requests in progress: a handler still writing /big
	// into a connection the proxy no longer reads would hold it forever (a
	// run under Wine once timed out with that handler blocked for minutes),
	// so the server's connections are closed first
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
	})
	p := faultproxy.New(t, strings.TrimPrefix(srv.URL, "http://"))
	tr := netwatch.NewTransport(idle)
	tr.DisableKeepAlives = true // one connection per request, so counts are exact
	t.Cleanup(tr.CloseIdleConnections)
	return p, &http.Client{Transport: tr}, "http://" + p.Addr(), answer
}

func get(c *http.Client, url string) ([]byte, error) {
	resp, err := c.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func TestForwardsAndCounts(t *testing.T) {
	p, c, base, _ := setup(t, time.Minute)
	got, err := get(c, base+"/big")
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("through the proxy: %d bytes, %v", len(got), err)
	}
	st := p.Stats()
	if st.Conns != 1 || st.BytesToClient < int64(len(body)) || st.BytesToServer < int64(len("GET /big HTTP/1.1")) || st.Resets != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestLatencyAddsTime(t *testing.T) {
	p, c, base, _ := setup(t, time.Minute)
	p.SetLatency(100 * time.Millisecond)
	start := time.Now()
	if _, err := get(c, base+"/small"); err != nil {
		t.Fatal(err)
	}
	// at least the request's chunk and the response's
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("a request with 100ms per chunk either way took %v", took)
	}
	p.SetLatency(0)
	start = time.Now()
	if _, err := get(c, base+"/small"); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 150*time.Millisecond {
		t.Logf("without latency a request took %v (a loaded machine?)", took)
	}
}

func wantReset(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("a reset connection gave the client no error")
	}
	if !isReset(err) {
		t.Fatalf("a reset gave %v, want a connection reset", err)
	}
}

func TestResetAfterBytes(t *testing.T) {
	p, c, base, _ := setup(t, time.Minute)
	p.ResetAfter(100<<10, 1)
	got, err := get(c, base+"/big")
	wantReset(t, err)
	if len(got) >= len(body) {
		t.Fatalf("the whole body came through a reset after 100 KiB")
	}
	if st := p.Stats(); st.Resets != 1 || st.BytesToClient+st.BytesToServer != 100<<10 {
		t.Fatalf("stats %+v, want 1 reset after exactly 100 KiB", st)
	}
	// the rule fired its one time: the next request goes through
	if got, err := get(c, base+"/big"); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("after the reset: %d bytes, %v", len(got), err)
	}
}

func TestResetNow(t *testing.T) {
	p, c, base, answer := setup(t, time.Minute)
	errc := make(chan error, 1)
	go func() { _, err := get(c, base+"/wait"); errc <- err }()
	for p.Stats().Active == 0 {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // the request reaches the server
	if n := p.ResetAll(); n != 1 {
		t.Fatalf("reset %d connections, want 1", n)
	}
	select {
	case err := <-errc:
		wantReset(t, err)
	case <-time.After(5 * time.Second):
		t.Fatal("the client did not see the reset")
	}
	close(answer)
}

func TestStallTripsTheWatchdog(t *testing.T) {
	p, c, base, _ := setup(t, 300*time.Millisecond)
	p.Stall(true)
	start := time.Now()
	_, err := get(c, base+"/big")
	var se *netwatch.StallError
	if !errors.As(err, &se) {
		t.Fatalf("stalled request: %v, want a netwatch stall", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the stall was noticed after %v", took)
	}
	if p.Stats().Conns == 0 {
		t.Fatal("the stalled request never reached the proxy")
	}
	p.Stall(false)
	if got, err := get(c, base+"/big"); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("after the stall: %d bytes, %v", len(got), err)
	}
}

func TestStallMidTransferKeepsTheConnectionOpen(t *testing.T) {
	p, c, base, _ := setup(t, time.Minute)
	p.SetLatency(20 * time.Millisecond)
	resp, err := c.Get(base + "/big")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadFull(resp.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	p.Stall(true)
	sent := p.Stats().BytesToClient
	time.Sleep(200 * time.Millisecond)
	st := p.Stats()
	if st.BytesToClient-sent > 32<<10 || st.Active != 1 {
		t.Fatalf("while stalled: %d bytes forwarded (at most the chunk under way), %d connections open", st.BytesToClient-sent, st.Active)
	}
	p.Stall(false)
	p.SetLatency(0)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || 1000+len(rest) != len(body) {
		t.Fatalf("after the stall: %d more bytes, %v", len(rest), err)
	}
}

func TestBlackhole(t *testing.T) {
	p, c, base, _ := setup(t, 300*time.Millisecond)
	p.Blackhole(true)
	_, err := get(c, base+"/small")
	var se *netwatch.StallError
	if !errors.As(err, &se) {
		t.Fatalf("blackholed request: %v, want a netwatch stall", err)
	}
	if st := p.Stats(); st.Blackholed != 1 || st.BytesToServer != 0 {
		t.Fatalf("stats %+v", st)
	}
	p.Blackhole(false)
	if got, err := get(c, base+"/small"); err != nil || string(got) != "ok" {
		t.Fatalf("after the blackhole: %q, %v", got, err)
	}
}

package netwatch_test

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend/netwatch"
)

const idle = 200 * time.Millisecond

// pair returns a watched client connection and the server's end of it.
func pair(t *testing.T) (*netwatch.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv := <-accepted
	if srv == nil {
		t.Fatal("accept failed")
	}
	w := netwatch.Wrap(c, idle)
	t.Cleanup(func() { w.Close(); srv.Close() })
	return w, srv
}

func wantStall(t *testing.T, err error, op string) {
	t.Helper()
	var se *netwatch.StallError
	if !errors.As(err, &se) || se.Op != op || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err %v, want a %s stall", err, op)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a stall is not a net.Error timeout: %v", err)
	}
}

func TestSlowButMovingTransferIsNotCut(t *testing.T) {
	c, srv := pair(t)
	go func() {
		for range 12 { // 12 × idle/4 = 3 idle periods
			time.Sleep(idle / 4)
			if _, err := srv.Write([]byte("x")); err != nil {
				return
			}
		}
		srv.Close()
	}()
	data, err := io.ReadAll(c)
	if err != nil || len(data) != 12 {
		t.Fatalf("read %d bytes of a slow stream: %v", len(data), err)
	}
}

func TestSilentPeerIsCut(t *testing.T) {
	c, _ := pair(t)
	start := time.Now()
	_, err := c.Read(make([]byte, 10))
	took := time.Since(start)
	wantStall(t, err, "read")
	if took < idle*9/10 || took > 5*idle {
		t.Fatalf("cut after %v; idle is %v", took, idle)
	}
	if !strings.Contains(err.Error(), "no byte moved for 200ms") {
		t.Fatalf("message: %v", err)
	}
}

func TestUploadKeepsAPendingReadAlive(t *testing.T) {
	c, srv := pair(t)
	go func() { _, _ = io.Copy(io.Discard, srv) }()
	readErr := make(chan error, 1)
	go func() { _, err := c.Read(make([]byte, 1)); readErr <- err }()
	for range 12 { // 3 idle periods of upload, the response not yet due
		time.Sleep(idle / 4)
		if _, err := c.Write([]byte("part of a request body")); err != nil {
			t.Fatalf("write: %v", err)
		}
		select {
		case err := <-readErr:
			t.Fatalf("the pending read failed while the upload moved: %v", err)
		default:
		}
	}
	// the upload is done and no answer comes: now the read is cut
	select {
	case err := <-readErr:
		wantStall(t, err, "read")
	case <-time.After(5 * idle):
		t.Fatal("the pending read was never cut")
	}
}

func TestStalledWriteIsCut(t *testing.T) {
	c, _ := pair(t) // the server never reads: the socket buffers fill
	_, err := c.Write(make([]byte, 64<<20))
	wantStall(t, err, "write")
}

func TestUserDeadlineIsKept(t *testing.T) {
	c, _ := pair(t)
	if err := c.SetReadDeadline(time.Now().Add(idle / 4)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	var se *netwatch.StallError
	if !errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &se) {
		t.Fatalf("user deadline: %v, want a plain deadline error", err)
	}
	if took := time.Since(start); took > idle*3/4 {
		t.Fatalf("the user's deadline of %v passed after %v", idle/4, took)
	}
	// a user deadline later than the watchdog's does not lift it
	if err := c.SetReadDeadline(time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	_, err = c.Read(make([]byte, 1))
	wantStall(t, err, "read")
}

func TestHTTPThroughWatchedTransport(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/slow-answer", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(10 * idle):
		case <-r.Context().Done():
		}
		_, _ = io.WriteString(w, "late")
	})
	mux.HandleFunc("/trickle", func(w http.ResponseWriter, r *http.Request) {
		for range 12 {
			_, _ = io.WriteString(w, "x")
			w.(http.Flusher).Flush()
			time.Sleep(idle / 4)
		}
	})
	mux.HandleFunc("/upload", func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, strings.Repeat("y", int(n%7)))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tr := netwatch.NewTransport(idle)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	start := time.Now()
	_, err := client.Get(srv.URL + "/slow-answer")
	var se *netwatch.StallError
	if !errors.As(err, &se) || time.Since(start) > 5*idle {
		t.Fatalf("a server that does not answer: %v after %v", err, time.Since(start))
	}
	for range 2 { // the second request comes after the pooled connection aged
		resp, err := client.Get(srv.URL + "/trickle")
		if err != nil {
			t.Fatalf("a slow but moving response: %v", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || len(body) != 12 {
			t.Fatalf("trickled body: %d bytes, %v", len(body), err)
		}
		time.Sleep(idle * 3 / 4)
	}
	// a slowly uploaded body keeps the request alive
	pr, pw := io.Pipe()
	go func() {
		for range 12 {
			time.Sleep(idle / 4)
			_, _ = pw.Write([]byte("chunk"))
		}
		pw.Close()
	}()
	resp, err := client.Post(srv.URL+"/upload", "application/octet-stream", pr)
	if err != nil {
		t.Fatalf("slow upload: %v", err)
	}
	resp.Body.Close()
}

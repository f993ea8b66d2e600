// Command s3count is a counting HTTP reverse proxy for the S3 benchmarks
// (bench/s3.sh): every tool talks to the S3 server through it, so the
// requests of restic, kopia and stillpoint are counted the same way.
//
//	s3count -listen 127.0.0.1:PORT -upstream http://127.0.0.1:S3PORT -control 127.0.0.1:CPORT
//
// It forwards each request unchanged (the Host header the client signed is
// kept, so SigV4 signatures stay valid) and counts, per kind of request, the
// requests, the bytes of the request bodies (sent) and of the response bodies
// (received), and the responses by status class. The control address serves
//
//	GET  /counts        the totals since the last reset, one "key value" a line
//	POST /reset         zero the totals (answers the totals it dropped)
//
// and SIGUSR1 writes the totals to stderr. Both listen on loopback only
// unless told otherwise.
//
// Kinds: GET (object reads, ranged or whole), LIST (GET of a bucket: listing,
// location and other bucket queries), HEAD, PUT, DELETE, POST (multi-object
// delete, multipart upload steps) and OTHER.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

var kinds = []string{"GET", "LIST", "HEAD", "PUT", "DELETE", "POST", "OTHER"}

type counter struct {
	requests, sent, received int64
}

type counts struct {
	mu       sync.Mutex
	byKind   map[string]*counter
	byStatus map[string]int64
	// errors are requests that got no response from the upstream (502 from the proxy)
	errors int64
}

func newCounts() *counts {
	c := &counts{}
	c.reset()
	return c
}

func (c *counts) reset() {
	c.byKind = map[string]*counter{}
	for _, k := range kinds {
		c.byKind[k] = &counter{}
	}
	c.byStatus = map[string]int64{}
	c.errors = 0
}

func (c *counts) add(kind string, f func(*counter)) {
	c.mu.Lock()
	f(c.byKind[kind])
	c.mu.Unlock()
}

// text renders the totals as "key value" lines: requests, sent and received
// bytes in total and per kind, and responses per status class.
func (c *counts) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	var tot counter
	for _, k := range kinds {
		x := c.byKind[k]
		tot.requests += x.requests
		tot.sent += x.sent
		tot.received += x.received
	}
	fmt.Fprintf(&b, "requests %d\nsent_bytes %d\nreceived_bytes %d\n", tot.requests, tot.sent, tot.received)
	for _, k := range kinds {
		x := c.byKind[k]
		fmt.Fprintf(&b, "%s %d\n%s_sent_bytes %d\n%s_received_bytes %d\n", k, x.requests, k, x.sent, k, x.received)
	}
	st := make([]string, 0, len(c.byStatus))
	for s := range c.byStatus {
		st = append(st, s)
	}
	sort.Strings(st)
	for _, s := range st {
		fmt.Fprintf(&b, "status_%s %d\n", s, c.byStatus[s])
	}
	fmt.Fprintf(&b, "proxy_errors %d\n", c.errors)
	return b.String()
}

// kind classifies a request. Path-style addressing is assumed (every tool
// here is pointed at 127.0.0.1): "/bucket" or "/bucket/" is the bucket, any
// longer path an object.
func kind(r *http.Request) string {
	switch r.Method {
	case http.MethodGet:
		p := strings.Trim(r.URL.Path, "/")
		if p == "" || !strings.Contains(p, "/") {
			return "LIST"
		}
		return "GET"
	case http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodPost:
		return r.Method
	}
	return "OTHER"
}

// countingBody counts the bytes read through it into *n (under the lock).
type countingBody struct {
	io.ReadCloser
	c    *counts
	kind string
	sent bool
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.c.add(b.kind, func(x *counter) {
			if b.sent {
				x.sent += int64(n)
			} else {
				x.received += int64(n)
			}
		})
	}
	return n, err
}

// handler forwards every request to target and counts it in c.
func handler(c *counts, target *url.URL) http.Handler {
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// keep the Host the client signed (SigV4 covers it)
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Del("X-Forwarded-For")
		},
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 256,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		FlushInterval: -1,
		ModifyResponse: func(resp *http.Response) error {
			k := kind(resp.Request)
			c.mu.Lock()
			c.byStatus[fmt.Sprintf("%dxx", resp.StatusCode/100)]++
			c.mu.Unlock()
			resp.Body = &countingBody{ReadCloser: resp.Body, c: c, kind: k}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			c.mu.Lock()
			c.errors++
			c.mu.Unlock()
			log.Printf("%s %s: %v", r.Method, r.URL.Path, err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		k := kind(r)
		c.add(k, func(x *counter) { x.requests++ })
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &countingBody{ReadCloser: r.Body, c: c, kind: k, sent: true}
		}
		proxy.ServeHTTP(w, r)
	})
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address the proxy serves S3 on")
	upstream := flag.String("upstream", "", "the S3 server, http://HOST:PORT")
	control := flag.String("control", "127.0.0.1:0", "address of /counts and /reset")
	ready := flag.String("ready-file", "", "write \"PROXYADDR CONTROLADDR\" to this file once both listen")
	flag.Parse()
	log.SetPrefix("s3count: ")
	log.SetFlags(0)
	target, err := url.Parse(*upstream)
	if err != nil || target.Host == "" || (target.Scheme != "http" && target.Scheme != "https") {
		log.Fatalf("-upstream %q: want http://HOST:PORT", *upstream)
	}
	c := newCounts()

	s3 := handler(c, target)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /counts", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, c.text())
	})
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, _ *http.Request) {
		t := c.text()
		c.mu.Lock()
		c.reset()
		c.mu.Unlock()
		_, _ = io.WriteString(w, t)
	})

	pl, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	cl, err := net.Listen("tcp", *control)
	if err != nil {
		log.Fatal(err)
	}
	if *ready != "" {
		tmp := *ready + ".tmp"
		if err := os.WriteFile(tmp, []byte(pl.Addr().String()+" "+cl.Addr().String()+"\n"), 0o644); err != nil {
			log.Fatal(err)
		}
		if err := os.Rename(tmp, *ready); err != nil {
			log.Fatal(err)
		}
	}
	ps := &http.Server{Handler: s3, ReadHeaderTimeout: time.Minute}
	cs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := cs.Serve(cl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()
	go func() {
		if err := ps.Serve(pl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Fatal(err)
		}
	}()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, append(dumpSignals, syscall.SIGTERM, os.Interrupt)...)
	for s := range sig {
		if slices.Contains(dumpSignals, s) {
			fmt.Fprint(os.Stderr, c.text())
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = ps.Shutdown(ctx)
		_ = cs.Shutdown(ctx)
		cancel()
		fmt.Fprint(os.Stderr, c.text())
		return
	}
}

package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"time"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Server is the status pages, the JSON API and /metrics of a daemon. It
// is an http.Handler; ListenAndServe serves it on Options.Addr.
type Server struct {
	src   Source
	opts  Options
	auth  *auth
	pages map[string]*pageTemplate
	mux   *http.ServeMux
	h     http.Handler
	// csrfKey signs the anti-CSRF tokens of the forms; it is new for each
	// server, so a restart invalidates pages opened before.
	csrfKey []byte
	// now is the clock the pages compare times with (replaced in tests).
	now func() time.Time
	// ErrorLog receives errors of requests and of the listener (log's
	// standard logger when nil).
	ErrorLog *log.Logger
}

// New returns a server of src's jobs, runs and snapshots. It checks opts
// as CheckOptions does.
func New(src Source, opts Options) (*Server, error) {
	a, err := newAuth(opts)
	if err != nil {
		return nil, err
	}
	s := &Server{src: src, opts: opts, auth: a, mux: http.NewServeMux(), csrfKey: make([]byte, 32), now: time.Now}
	if err := s.parsePages(); err != nil {
		return nil, err
	}
	rand.Read(s.csrfKey)
	s.routes()
	// a page of another site must not make the browser post to this one:
	// the form tokens say so for the forms, this for the API too
	s.h = a.wrap(securityHeaders(http.NewCrossOriginProtection().Handler(s.mux)))
	return s, nil
}

func (s *Server) routes() {
	static, _ := fs.Sub(assets, "static")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))

	s.mux.HandleFunc("GET /{$}", s.pageJobs)
	s.mux.HandleFunc("GET /jobs/{name}", s.pageJob)
	s.mux.HandleFunc("POST /jobs/{name}/run", s.formRunNow)
	s.mux.HandleFunc("GET /runs/{id}", s.pageRun)
	s.mux.HandleFunc("GET /snapshots", s.pageSnapshots)
	s.mux.HandleFunc("GET /snapshots/{id}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, snapshotURL(r.PathValue("id")), http.StatusSeeOther)
	})
	s.mux.HandleFunc("GET /snapshots/{id}/browse/{path...}", s.pageBrowse)
	s.mux.HandleFunc("GET /snapshots/{id}/file/{path...}", s.downloadFile)
	s.mux.HandleFunc("GET /snapshots/{id}/archive/{path...}", s.downloadArchive)

	s.mux.HandleFunc("GET /api/v1/jobs", s.apiJobs)
	s.mux.HandleFunc("GET /api/v1/jobs/{name}", s.apiJob)
	s.mux.HandleFunc("GET /api/v1/jobs/{name}/runs", s.apiRuns)
	s.mux.HandleFunc("POST /api/v1/jobs/{name}/run", s.apiRunNow)
	s.mux.HandleFunc("GET /api/v1/runs/{id}", s.apiRun)
	s.mux.HandleFunc("GET /api/v1/snapshots", s.apiSnapshots)
	s.mux.HandleFunc("GET /api/v1/snapshots/{id}", s.apiSnapshot)
	s.mux.HandleFunc("GET /api/v1/snapshots/{id}/tree/{path...}", s.apiTree)
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, &httpError{code: http.StatusNotFound, err: fmt.Errorf("no API endpoint %s %s (see docs/api.md)", r.Method, r.URL.Path)})
	})

	if s.opts.Metrics != nil {
		s.mux.Handle("GET /metrics", s.opts.Metrics.Handler())
	}
}

// ServeHTTP serves the pages, the API and /metrics, behind the
// authentication the options ask for.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.h.ServeHTTP(w, r) }

func securityHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		h.ServeHTTP(w, r)
	})
}

// Listen opens the listener for opts.Addr: it refuses a non-loopback
// address without authentication (ErrNeedAuth), and with a certificate
// it returns a TLS listener.
func Listen(opts Options) (net.Listener, error) {
	if _, err := newAuth(opts); err != nil {
		return nil, err
	}
	addr := opts.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	var cfg *tls.Config
	if opts.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(opts.CertFile, opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS certificate %s and key %s: %w", opts.CertFile, opts.KeyFile, err)
		}
		cfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	return ln, nil
}

// ListenAndServe serves on the server's address until ctx ends, then
// shuts down, giving requests in flight a few seconds.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := Listen(s.opts)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, ErrorLog: s.ErrorLog,
		BaseContext: func(net.Listener) context.Context { return ctx }}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	if e := <-done; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}

const csrfCookie = "stillpoint_csrf"

// csrfToken returns the form token for this browser, setting the cookie
// it is derived from when the browser has none (signed double submit:
// the token is the HMAC of the cookie's nonce).
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	nonce := ""
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 32 {
		nonce = c.Value
	} else {
		b := make([]byte, 16)
		rand.Read(b)
		nonce = hex.EncodeToString(b)
		http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: nonce, Path: "/", HttpOnly: true,
			Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	}
	return s.sign(nonce)
}

func (s *Server) sign(nonce string) string {
	m := hmac.New(sha256.New, s.csrfKey)
	m.Write([]byte(nonce))
	return hex.EncodeToString(m.Sum(nil))
}

// checkCSRF tells whether a form post carries the token of its cookie.
func (s *Server) checkCSRF(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil {
		return false
	}
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(s.sign(c.Value)))
}

// httpError is an error with the status code to answer it with.
type httpError struct {
	code int
	err  error
}

func (e *httpError) Error() string { return e.err.Error() }
func (e *httpError) Unwrap() error { return e.err }

// statusOf picks the HTTP status for an error of a Source or a repository.
func statusOf(err error) int {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.code
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrBusy):
		return http.StatusConflict
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (s *Server) logf(format string, args ...any) {
	if s.ErrorLog != nil {
		s.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

//go:build linux

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/backendtest"
	"github.com/stillpoint-backup/stillpoint/internal/backend/netwatch"
	"github.com/stillpoint-backup/stillpoint/internal/backend/s3"
	"github.com/stillpoint-backup/stillpoint/internal/livefile"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/run"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/faultproxy"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/s3server"
)

// watchIdle is the netwatch idle time of the tests: short, so that a
// stall costs little time, and far above a loopback request's pauses.
const watchIdle = 500 * time.Millisecond

// s3Backend is the S3 backend of bucket/prefix on srv. With a proxy, its
// connections go through it (the requests still name the server's host,
// so their signatures hold) and are watched by netwatch.
func s3Backend(t *testing.T, srv *s3server.Server, bucket, prefix string, p *faultproxy.Proxy) (*s3.Backend, *http.Transport) {
	t.Helper()
	loc, err := s3.ParseLocation(srv.Location(bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	opts := s3.Options{Region: srv.Region, Credentials: credentials.NewStaticV4(srv.Admin.AccessKey, srv.Admin.SecretKey, "")}
	var tr *http.Transport
	if p != nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
		dialer := &net.Dialer{Timeout: 5 * time.Second}
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, p.Addr())
		}
		netwatch.Watch(tr, watchIdle)
		t.Cleanup(tr.CloseIdleConnections)
		opts.Transport = tr
	}
	b, err := s3.New(loc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b, tr
}

// retryLog counts the retried failures by their cause.
type retryLog struct {
	mu      sync.Mutex
	byCause map[string]int
	last    []string
}

func (l *retryLog) note(op string, h backend.Handle, attempt int, err error) {
	var stall *netwatch.StallError
	cause := "other"
	switch {
	case errors.As(err, &stall):
		cause = "stall"
	case errors.Is(err, backend.ErrTimeout):
		cause = "deadline"
	case strings.Contains(err.Error(), "connection reset"), strings.Contains(err.Error(), "EOF"), strings.Contains(err.Error(), "broken pipe"):
		cause = "reset"
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byCause == nil {
		l.byCause = map[string]int{}
	}
	l.byCause[cause]++
	if len(l.last) < 20 || cause == "other" {
		l.last = append(l.last, fmt.Sprintf("%s %s (attempt %d): %v", op, h, attempt, err))
	}
}

func (l *retryLog) counts() map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, v := range l.byCause {
		out[k] = v
	}
	return out
}

// faultPolicy is the remote policy with times sized for a test.
func faultPolicy(l *retryLog) backend.Policy {
	p := backend.RemotePolicy()
	p.Attempts, p.Backoff, p.MaxBackoff = 10, 50*time.Millisecond, 400*time.Millisecond
	p.RequestBase = 10 * time.Second
	p.OnRetry = l.note
	return p
}

// TestS3ThroughFaultyNetwork runs the S3 backend, wrapped in the remote
// policy, through a TCP proxy that adds latency, resets connections, stalls
// and blackholes them: the conformance suite passes, every backup succeeds
// after retries without hanging, and the repository checks clean and
// restores byte-exact read straight from the server.
func TestS3ThroughFaultyNetwork(t *testing.T) {
	srv := s3Server(t)
	proxy := faultproxy.New(t, srv.Endpoint)

	t.Run("ConformanceWithLatency", func(t *testing.T) {
		proxy.SetLatency(2 * time.Millisecond)
		defer proxy.SetLatency(0)
		bucket := srv.NewBucket(t)
		n := 0
		var log retryLog
		backendtest.Run(t, func(t *testing.T) backend.Backend {
			n++
			b, _ := s3Backend(t, srv, bucket, fmt.Sprintf("conformance-%d", n), proxy)
			pol := faultPolicy(&log)
			pol.Attempts = 3 // the suite's loads past the end fail as short reads, which are retried
			return backend.WithPolicy(b, pol)
		})
	})

	t.Run("StalledServerGivesAClearError", func(t *testing.T) {
		bucket := srv.NewBucket(t)
		raw, _ := s3Backend(t, srv, bucket, "stalled", proxy)
		var log retryLog
		pol := faultPolicy(&log)
		pol.Attempts = 3
		b := backend.WithPolicy(raw, pol)
		proxy.Stall(true)
		defer proxy.Stall(false)
		h := backend.Handle{Kind: backend.Snapshots, Name: "0123abcd"}
		start := time.Now()
		_, err := b.Stat(context.Background(), h)
		took := time.Since(start)
		if err == nil || !strings.Contains(err.Error(), "stat snapshots/0123abcd") || !strings.Contains(err.Error(), "connection stalled") ||
			!strings.Contains(err.Error(), "gave up after 3 attempts") {
			t.Fatalf("stat on a stalled connection: %v", err)
		}
		if took > 3*(watchIdle+time.Second) {
			t.Fatalf("three stalled attempts took %v", took)
		}
		if log.counts()["stall"] != 2 {
			t.Fatalf("retries: %v, want 2 stalls retried", log.counts())
		}
	})

	t.Run("BackupRestoreCheck", func(t *testing.T) {
		ctx := context.Background()
		bucket := srv.NewBucket(t)
		var log retryLog
		raw, tr := s3Backend(t, srv, bucket, "faults", proxy)
		through := backend.WithPolicy(raw, faultPolicy(&log))
		direct, _ := s3Backend(t, srv, bucket, "faults", nil)
		cred := repo.Credential{KeyFile: repo.NewKeyFileSecret()}
		if _, err := repo.Init(ctx, through, cred, smallConfig()); err != nil {
			t.Fatal(err)
		}
		src := filepath.Join(t.TempDir(), "src")
		genTree(t, src, 41, 4<<20)

		// each fault starts with the backup and returns its end
		phases := []struct {
			name  string
			cause string // the retried cause the phase must show ("": none)
			start func() (stop func())
		}{
			{"latency", "", func() func() {
				proxy.SetLatency(3 * time.Millisecond)
				return func() { proxy.SetLatency(0) }
			}},
			{"resets after bytes", "reset", func() func() {
				proxy.ResetAfter(150<<10, 6)
				return func() { proxy.ResetAfter(0, 0) }
			}},
			{"resets now and then", "", func() func() {
				done := make(chan struct{})
				go func() {
					tick := time.NewTicker(40 * time.Millisecond)
					defer tick.Stop()
					for {
						select {
						case <-done:
							return
						case <-tick.C:
							proxy.ResetAll()
						}
					}
				}()
				return func() { close(done) }
			}},
			{"stall", "stall", func() func() {
				proxy.Stall(true)
				release := time.AfterFunc(3*watchIdle, func() { proxy.Stall(false) })
				return func() { release.Stop(); proxy.Stall(false) }
			}},
			{"blackhole", "stall", func() func() {
				tr.CloseIdleConnections() // the next requests need new connections
				proxy.Blackhole(true)
				release := time.AfterFunc(2*watchIdle, func() { proxy.Blackhole(false) })
				return func() { release.Stop(); proxy.Blackhole(false) }
			}},
		}
		want := map[string]map[string]string{}
		for i, ph := range phases {
			writeRandom(t, filepath.Join(src, "new", fmt.Sprintf("phase-%d", i)), uint64(700+i), 1536<<10)
			before, resetsBefore := log.counts(), proxy.Stats().Resets
			stop := ph.start()
			rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			rp, err := repo.Open(rctx, through, cred)
			var res *run.BackupResult
			if err == nil {
				res, err = run.Backup(rctx, rp, run.BackupOptions{Sources: []run.Source{{Path: src, OpenFiles: livefile.DefaultConfig()}}, Host: "faulty-net"})
			}
			hung := rctx.Err() != nil
			cancel()
			stop()
			if hung {
				t.Fatalf("%s: the backup hung: %v", ph.name, err)
			}
			if err != nil {
				t.Fatalf("%s: backup through the faulty network: %v\nretries: %q", ph.name, err, log.last)
			}
			want[res.Snapshot.ID.String()] = treeHash(t, src)
			after := log.counts()
			t.Logf("%s: retried %v (before %v), %d connections reset", ph.name, after, before, proxy.Stats().Resets-resetsBefore)
			if ph.cause != "" && after[ph.cause] <= before[ph.cause] {
				t.Errorf("%s: no %s was retried (retries %v)", ph.name, ph.cause, after)
			}
			if ph.cause == "reset" && proxy.Stats().Resets == resetsBefore {
				t.Errorf("%s: the proxy reset nothing", ph.name)
			}
		}

		// a restore through the faulty network
		proxy.ResetAfter(200<<10, 4)
		proxy.SetLatency(time.Millisecond)
		rp, err := repo.Open(ctx, through, cred)
		if err != nil {
			t.Fatal(err)
		}
		snaps, bad, err := rp.Snapshots(ctx)
		if err != nil || len(bad) > 0 || len(snaps) != len(phases) {
			t.Fatalf("snapshots through the proxy: %d, %v, %v", len(snaps), bad, err)
		}
		for _, s := range snaps {
			restoreInProcess(t, rp, s, src, want[s.ID.String()])
		}
		proxy.ResetAfter(0, 0)
		proxy.SetLatency(0)

		// no damage: read straight from the server
		clean, err := repo.Open(ctx, direct, cred)
		if err != nil {
			t.Fatal(err)
		}
		chk, err := clean.Check(ctx, repo.CheckOptions{ReadData: true})
		if err != nil || !chk.OK() {
			t.Fatalf("check --read-data after the faults: %v %+v", err, chk)
		}
		for _, s := range snaps {
			restoreInProcess(t, clean, s, src, want[s.ID.String()])
		}
		st := proxy.Stats()
		t.Logf("proxy: %d connections (%d blackholed), %d reset, %d bytes up, %d down; retries %v",
			st.Conns, st.Blackholed, st.Resets, st.BytesToServer, st.BytesToClient, log.counts())
		for _, l := range log.last {
			if !strings.Contains(l, "connection reset") {
				t.Logf("retried: %s", l)
			}
		}
	})
}

//go:build linux

package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/backendtest"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/s3server"
)

var ctx = context.Background()

// TestServers runs every test against each real server, one server per
// kind for all of them.
func TestServers(t *testing.T) {
	for _, kind := range s3server.Kinds() {
		t.Run(string(kind), func(t *testing.T) {
			srv := s3server.Start(t, kind)
			for _, tc := range []struct {
				name string
				fn   func(t *testing.T, srv *s3server.Server)
			}{
				{"Conformance", testConformance},
				{"ConformanceAtBucketRoot", testConformanceAtRoot},
				{"WrongCredentials", testWrongCredentials},
				{"MissingBucket", testMissingBucket},
				{"ContentMD5", testContentMD5},
				{"ConditionalCreate", testConditionalCreate},
				{"LoadPastTheEndIsNotRetried", testLoadPastTheEnd},
				{"StatFirstFallback", testStatFirst},
				{"Concurrent16", testConcurrent16},
				{"Pagination", testPagination},
				{"StorageClassOnPacksOnly", testStorageClass},
				{"NoDeleteIdentity", testNoDelete},
				{"ClockSkewRefusesLocks", testClockSkew},
				{"TLSWithItsCA", testTLS},
				{"ServerKilledAndRestarted", testKillRestart}, // last: it stops the server for a while
			} {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, srv) })
			}
		})
	}
}

type opener struct {
	srv    *s3server.Server
	bucket string
	n      atomic.Int64
}

// open returns a backend on a fresh prefix of the bucket.
func (o *opener) open(t *testing.T, opts Options) *Backend {
	t.Helper()
	prefix := fmt.Sprintf("%s/repo-%d", strings.ReplaceAll(t.Name(), "/", "-"), o.n.Add(1))
	return newBackend(t, o.srv, o.bucket, prefix, o.srv.Admin, opts)
}

func newBackend(t *testing.T, srv *s3server.Server, bucket, prefix string, c s3server.Credentials, opts Options) *Backend {
	t.Helper()
	loc, err := ParseLocation(srv.Location(bucket, prefix))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Credentials == nil {
		opts.Credentials = credentials.NewStaticV4(c.AccessKey, c.SecretKey, "")
	}
	if opts.Region == "" {
		opts.Region = srv.Region
	}
	b, err := New(loc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func testConformance(t *testing.T, srv *s3server.Server) {
	o := &opener{srv: srv, bucket: srv.NewBucket(t)}
	backendtest.Run(t, func(t *testing.T) backend.Backend { return o.open(t, Options{}) })
}

// the suite once more with the repository at the bucket's root: a fresh
// bucket for every subtest
func testConformanceAtRoot(t *testing.T, srv *s3server.Server) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		return newBackend(t, srv, srv.NewBucket(t), "", srv.Admin, Options{})
	})
}

var anyHandle = backend.Handle{Kind: backend.Config, Name: "config"}

func testWrongCredentials(t *testing.T, srv *s3server.Server) {
	bucket := srv.NewBucket(t)
	for _, c := range []struct {
		name string
		cred s3server.Credentials
		says string
	}{
		{"unknown access key", s3server.Credentials{AccessKey: "nosuchkey" + srv.Admin.AccessKey, SecretKey: srv.Admin.SecretKey}, "is not known to the server"},
		{"wrong secret", s3server.Credentials{AccessKey: srv.Admin.AccessKey, SecretKey: "wrong" + srv.Admin.SecretKey}, "the secret key does not match"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := newBackend(t, srv, bucket, "repo", c.cred, Options{})
			retried := 0
			r := backend.NewRetry(b)
			r.OnRetry = func(string, backend.Handle, int, error) { retried++ }
			for op, call := range map[string]func() error{
				"stat":   func() error { _, err := r.Stat(ctx, anyHandle); return err },
				"load":   func() error { _, err := r.Load(ctx, anyHandle, 0, 0); return err },
				"save":   func() error { return r.Save(ctx, anyHandle, []byte("x")) },
				"list":   func() error { return r.List(ctx, backend.Snapshots, func(backend.FileInfo) error { return nil }) },
				"create": func() error { return r.Create(ctx) },
			} {
				err := call()
				if err == nil {
					t.Fatalf("%s with %s succeeded", op, c.name)
				}
				want := "wrong credentials for " + srv.Endpoint
				if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), c.says) {
					t.Errorf("%s: %q; want it to say %q and %q", op, err, want, c.says)
				}
				if !backend.Permanent(err) || backend.IsNotFound(err) {
					t.Errorf("%s: %v is not a permanent failure (or claims the file is missing)", op, err)
				}
			}
			if retried > 0 {
				t.Errorf("wrong credentials were retried %d times", retried)
			}
		})
	}
}

func testMissingBucket(t *testing.T, srv *s3server.Server) {
	b := newBackend(t, srv, "stillpoint-no-such-bucket-"+fmt.Sprint(time.Now().UnixNano()), "repo", srv.Admin, Options{})
	want := "does not exist at " + srv.Endpoint
	for op, call := range map[string]func() error{
		"create": func() error { return b.Create(ctx) },
		"stat":   func() error { _, err := b.Stat(ctx, anyHandle); return err },
		"load":   func() error { _, err := b.Load(ctx, anyHandle, 0, 0); return err },
		"save":   func() error { return b.Save(ctx, anyHandle, []byte("x")) },
		"list":   func() error { return b.List(ctx, backend.Locks, func(backend.FileInfo) error { return nil }) },
		"empty":  func() error { _, err := b.IsEmpty(ctx); return err },
	} {
		err := call()
		var bm *bucketMissing
		if err == nil || !strings.Contains(err.Error(), want) || !errors.As(err, &bm) {
			t.Errorf("%s in a missing bucket: %v; want it to say %q", op, err, want)
		}
		if err != nil && (!backend.Permanent(err) || backend.IsNotFound(err)) {
			t.Errorf("%s: %v is not a permanent failure (or claims only the file is missing)", op, err)
		}
	}
}

// recorder is a transport that records the requests' headers and can
// damage the body of the next PUT (same length, one byte changed).
type recorder struct {
	next    http.RoundTripper
	mu      sync.Mutex
	puts    []http.Header
	keys    []string
	corrupt atomic.Bool
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPut {
		r.mu.Lock()
		r.puts = append(r.puts, req.Header.Clone())
		r.keys = append(r.keys, req.URL.Path)
		r.mu.Unlock()
		if req.Body != nil && req.ContentLength > 0 && r.corrupt.CompareAndSwap(true, false) {
			data, err := io.ReadAll(req.Body)
			if err != nil {
				return nil, err
			}
			data[len(data)/2] ^= 0xff
			req = req.Clone(req.Context())
			req.Body = io.NopCloser(bytes.NewReader(data))
		}
	}
	return r.next.RoundTrip(req)
}

func newRecorder(t *testing.T) *recorder {
	t.Helper()
	tr, err := minio.DefaultTransport(false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &recorder{next: tr}
}

func testContentMD5(t *testing.T, srv *s3server.Server) {
	rec := newRecorder(t)
	o := &opener{srv: srv, bucket: srv.NewBucket(t)}
	b := o.open(t, Options{Transport: rec})
	h := backend.Handle{Kind: backend.Packs, Name: backendtest.Name()}
	data := bytes.Repeat([]byte("stillpoint "), 10000)
	if err := b.Save(ctx, h, data); err != nil {
		t.Fatal(err)
	}
	sum := md5.Sum(data)
	if got, want := rec.puts[0].Get("Content-Md5"), base64.StdEncoding.EncodeToString(sum[:]); got != want {
		t.Fatalf("the PUT carried Content-MD5 %q, want %q", got, want)
	}
	if got := rec.puts[0].Get("If-None-Match"); got != "*" {
		t.Fatalf("the PUT carried If-None-Match %q, want *", got)
	}

	// a body damaged on the way is refused by the server, and nothing is stored
	damaged := backend.Handle{Kind: backend.Packs, Name: backendtest.Name()}
	rec.corrupt.Store(true)
	err := b.Save(ctx, damaged, data)
	if err == nil {
		t.Fatal("a PUT whose body does not match its Content-MD5 was accepted")
	}
	if backend.Permanent(err) {
		t.Errorf("a damaged upload is a failure a retry cures, but was marked permanent: %v", err)
	}
	if _, err := b.Stat(ctx, damaged); !backend.IsNotFound(err) {
		t.Fatalf("after a refused damaged upload, Stat says %v; want not found", err)
	}
	// through the retry wrapper the second attempt stores it whole
	rec.corrupt.Store(true)
	r := backend.NewRetry(b)
	r.Backoff = time.Millisecond
	if err := r.Save(ctx, damaged, data); err != nil {
		t.Fatalf("a retried damaged upload: %v", err)
	}
	got, err := b.Load(ctx, damaged, 0, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("load after retried upload: %d bytes, %v", len(got), err)
	}
}

func testConditionalCreate(t *testing.T, srv *s3server.Server) {
	o := &opener{srv: srv, bucket: srv.NewBucket(t)}
	b := o.open(t, Options{})
	// Create writes a scratch key twice and wants the second refused
	if err := b.Create(ctx); err != nil {
		t.Fatalf("Create (which checks that the server refuses a second conditional write): %v", err)
	}
	if empty, err := b.IsEmpty(ctx); err != nil || !empty {
		t.Fatalf("after Create the prefix is not empty (%v, %v): its scratch key was left", empty, err)
	}
	h := backend.Handle{Kind: backend.Snapshots, Name: backendtest.Name()}
	if err := b.Save(ctx, h, []byte("one")); err != nil {
		t.Fatal(err)
	}
	err := b.Save(ctx, h, []byte("two"))
	if !errors.Is(err, backend.ErrExists) || !backend.Permanent(err) {
		t.Fatalf("second Save: %v, want ErrExists", err)
	}
	if empty, err := b.IsEmpty(ctx); err != nil || empty {
		t.Fatalf("IsEmpty with a file: %v, %v", empty, err)
	}
}

// a file shorter than a load asks (a damaged repository) is said at once:
// the server's InvalidRange is no failure a retry cures
func testLoadPastTheEnd(t *testing.T, srv *s3server.Server) {
	o := &opener{srv: srv, bucket: srv.NewBucket(t)}
	b := o.open(t, Options{})
	h := backend.Handle{Kind: backend.Indexes, Name: backendtest.Name()}
	if err := b.Save(ctx, h, []byte("short")); err != nil {
		t.Fatal(err)
	}
	p := backend.RemotePolicy()
	var retries int
	p.OnRetry = func(string, backend.Handle, int, error) { retries++ }
	wrapped := backend.WithPolicy(b, p)
	_, err := wrapped.Load(ctx, h, 100, 10)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !backend.Permanent(err) || retries != 0 {
		t.Fatalf("load past the end: %v (permanent %v), %d retries", err, backend.Permanent(err), retries)
	}
	if err := wrapped.LoadInto(ctx, h, 100, nil); !errors.Is(err, io.ErrUnexpectedEOF) || retries != 0 {
		t.Fatalf("empty load past the end: %v, %d retries", err, retries)
	}
}

func testStatFirst(t *testing.T, srv *s3server.Server) {
	o := &opener{srv: srv, bucket: srv.NewBucket(t)}
	rec := newRecorder(t)
	b := o.open(t, Options{ConditionalWrite: StatFirst, Transport: rec})
	if err := b.Create(ctx); err != nil {
		t.Fatal(err)
	}
	h := backend.Handle{Kind: backend.Indexes, Name: backendtest.Name()}
	if err := b.Save(ctx, h, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx, h, []byte("two")); !errors.Is(err, backend.ErrExists) {
		t.Fatalf("second Save with stat first: %v, want ErrExists", err)
	}
	if got, _ := b.Load(ctx, h, 0, 0); string(got) != "one" {
		t.Fatalf("overwritten: %q", got)
	}
	for _, hd := range rec.puts {
		if hd.Get("If-None-Match") != "" || hd.Get("Content-Md5") == "" {
			t.Fatalf("a PUT with stat first carried If-None-Match %q, Content-MD5 %q", hd.Get("If-None-Match"), hd.Get("Content-Md5"))
		}
	}
}

func testConcurrent16(t *testing.T, srv *s3server.Server) {
	o := &opener{srv: srv, bucket: srv.NewBucket(t)}
	b := o.open(t, Options{})
	const workers, each = 16, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				h := backend.Handle{Kind: backend.Packs, Name: backendtest.Name()}
				data := bytes.Repeat([]byte{byte(w), byte(i)}, 64<<10+w*100+i)
				if err := b.Save(ctx, h, data); err != nil {
					errs <- err
					continue
				}
				part := make([]byte, 1000)
				if err := b.LoadInto(ctx, h, int64(len(data)-1000), part); err != nil || !bytes.Equal(part, data[len(data)-1000:]) {
					errs <- fmt.Errorf("LoadInto the tail of %s: %v", h, err)
				}
				got, err := b.Load(ctx, h, 0, 0)
				if err != nil || !bytes.Equal(got, data) {
					errs <- fmt.Errorf("load %s: %d bytes, %v", h, len(got), err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n := 0
	if err := b.List(ctx, backend.Packs, func(backend.FileInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != workers*each {
		t.Fatalf("List shows %d packs, want %d", n, workers*each)
	}
}

func testPagination(t *testing.T, srv *s3server.Server) {
	o := &opener{srv: srv, bucket: srv.NewBucket(t)}
	b := o.open(t, Options{})
	const n = 1234 // more than the 1,000 keys of one listing page
	want := map[string]int64{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	names := make(chan string)
	errs := make(chan error, n)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range names {
				data := []byte(name[:len(name)%7])
				if err := b.Save(ctx, backend.Handle{Kind: backend.Locks, Name: name}, data); err != nil {
					errs <- err
				}
				mu.Lock()
				want[name] = int64(len(data))
				mu.Unlock()
			}
		}()
	}
	for range n {
		names <- backendtest.Name()
	}
	close(names)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := map[string]int64{}
	if err := b.List(ctx, backend.Locks, func(fi backend.FileInfo) error {
		if _, dup := got[fi.Name]; dup {
			return fmt.Errorf("%s listed twice", fi.Name)
		}
		got[fi.Name] = fi.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("List shows %d of %d files", len(got), n)
	}
	for name, size := range want {
		if got[name] != size {
			t.Fatalf("%s listed with size %d, want %d", name, got[name], size)
		}
	}
	// stopping the listing late, on the second page, returns the fn's error
	stop := errors.New("enough")
	calls := 0
	err := b.List(ctx, backend.Locks, func(backend.FileInfo) error {
		if calls++; calls == 1100 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 1100 {
		t.Fatalf("a listing stopped after 1100 files: %v after %d calls", err, calls)
	}
}

func testStorageClass(t *testing.T, srv *s3server.Server) {
	rec := newRecorder(t)
	o := &opener{srv: srv, bucket: srv.NewBucket(t)}
	b := o.open(t, Options{StorageClass: "STANDARD", Transport: rec})
	for _, k := range []backend.Kind{backend.Packs, backend.Indexes, backend.Snapshots} {
		if err := b.Save(ctx, backend.Handle{Kind: k, Name: backendtest.Name()}, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	for i, hd := range rec.puts {
		isPack := strings.Contains(rec.keys[i], "/data/")
		if got := hd.Get("X-Amz-Storage-Class"); (got == "STANDARD") != isPack {
			t.Errorf("PUT %s carried storage class %q", rec.keys[i], got)
		}
	}
}

func testNoDelete(t *testing.T, srv *s3server.Server) {
	nd := srv.NeedNoDelete(t)
	bucket := srv.NewBucket(t)
	b := newBackend(t, srv, bucket, "repo", nd, Options{})
	h := backend.Handle{Kind: backend.Snapshots, Name: backendtest.Name()}
	if err := b.Save(ctx, h, []byte("kept")); err != nil {
		t.Fatalf("Save without delete rights: %v", err)
	}
	if got, err := b.Load(ctx, h, 0, 0); err != nil || string(got) != "kept" {
		t.Fatalf("Load without delete rights: %q, %v", got, err)
	}
	n := 0
	if err := b.List(ctx, backend.Snapshots, func(backend.FileInfo) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("List without delete rights: %d files, %v", n, err)
	}
	err := b.Remove(ctx, h)
	if err == nil || !backend.Permanent(err) || !errors.Is(err, backend.ErrDenied) || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("Remove without delete rights: %v; want a permanent access denied (backend.ErrDenied)", err)
	}
	// the repository's pre-flight check of forget and prune removes a name
	// that was never written: the server must refuse that too
	if err := b.Remove(ctx, backend.Handle{Kind: backend.Locks, Name: backendtest.Name()}); !errors.Is(err, backend.ErrDenied) {
		t.Fatalf("Remove of a missing file without delete rights: %v; want backend.ErrDenied", err)
	}
	if _, err := b.Stat(ctx, h); err != nil {
		t.Fatalf("the file is gone after a refused Remove: %v", err)
	}
}

// shiftedDates makes the server's clock look off by offset.
type shiftedDates struct {
	next   http.RoundTripper
	offset time.Duration
}

func (s shiftedDates) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.next.RoundTrip(req)
	if err == nil {
		if d, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
			resp.Header.Set("Date", d.Add(s.offset).UTC().Format(http.TimeFormat))
		}
	}
	return resp, err
}

func testClockSkew(t *testing.T, srv *s3server.Server) {
	o := &opener{srv: srv, bucket: srv.NewBucket(t)}
	b := o.open(t, Options{Transport: shiftedDates{next: newRecorder(t), offset: 40 * time.Minute}})
	if err := b.Save(ctx, backend.Handle{Kind: backend.Packs, Name: backendtest.Name()}, []byte("data")); err != nil {
		t.Fatalf("a pack with a skewed clock: %v", err)
	}
	lock := backend.Handle{Kind: backend.Locks, Name: backendtest.Name()}
	err := b.Save(ctx, lock, []byte("{}"))
	if err == nil || !backend.Permanent(err) || !strings.Contains(err.Error(), "behind the clock of "+srv.Endpoint) {
		t.Fatalf("a lock with a clock 40 minutes behind the server's: %v", err)
	}
	// a fresh backend learns the skew from the lock's own PUT: the lock is removed again
	b2 := o.open(t, Options{Transport: shiftedDates{next: newRecorder(t), offset: -40 * time.Minute}})
	if err := b2.Save(ctx, lock, []byte("{}")); err == nil || !strings.Contains(err.Error(), "ahead of") {
		t.Fatalf("a first request that is a lock, clock 40 minutes ahead: %v", err)
	}
	if _, err := b2.Stat(ctx, lock); !backend.IsNotFound(err) {
		t.Fatalf("the refused lock was left: %v", err)
	}
}

func testKillRestart(t *testing.T, srv *s3server.Server) {
	if srv.Kind == s3server.External {
		t.Skip("an external endpoint is not killed")
	}
	o := &opener{srv: srv, bucket: srv.NewBucket(t)}
	b := o.open(t, Options{})
	before := backend.Handle{Kind: backend.Packs, Name: backendtest.Name()}
	data := bytes.Repeat([]byte("acknowledged before the crash "), 20000)
	if err := b.Save(ctx, before, data); err != nil {
		t.Fatal(err)
	}
	srv.Kill(t)
	if srv.Running() {
		t.Fatal("the server runs after Kill")
	}
	during := backend.Handle{Kind: backend.Packs, Name: backendtest.Name()}
	err := b.Save(ctx, during, []byte("x"))
	if err == nil || backend.Permanent(err) {
		t.Fatalf("a Save while the server is down: %v; want a failure a retry may cure", err)
	}
	srv.Restart(t)
	got, err := b.Load(ctx, before, 0, 0)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("a file acknowledged before the crash, after the restart: %d bytes, %v", len(got), err)
	}
	if err := b.Save(ctx, during, []byte("x")); err != nil {
		t.Fatalf("a Save after the restart: %v", err)
	}
}

func testTLS(t *testing.T, srv *s3server.Server) {
	if srv.Kind == s3server.External {
		t.Skip("the TLS test starts a server of its own")
	}
	tlsSrv := s3server.StartWith(t, srv.Kind, s3server.Options{TLS: true})
	bucket := tlsSrv.NewBucket(t)
	if loc := tlsSrv.Location(bucket, "r"); !strings.HasPrefix(loc, "s3:https://127.0.0.1:") {
		t.Fatalf("a TLS server's location is %s", loc)
	}
	b := newBackend(t, tlsSrv, bucket, "r", tlsSrv.Admin, Options{CACertFile: tlsSrv.CACert})
	h := backend.Handle{Kind: backend.Snapshots, Name: backendtest.Name()}
	if err := b.Save(ctx, h, []byte("over https")); err != nil {
		t.Fatalf("Save over https with the CA given: %v", err)
	}
	if got, err := b.Load(ctx, h, 0, 0); err != nil || string(got) != "over https" {
		t.Fatalf("Load over https: %q, %v", got, err)
	}
	// without the CA the certificate is not trusted: said, and not retried
	untrusting := newBackend(t, tlsSrv, bucket, "r", tlsSrv.Admin, Options{})
	_, err := untrusting.Stat(ctx, h)
	if err == nil || !backend.Permanent(err) || !strings.Contains(err.Error(), "is not trusted") || !strings.Contains(err.Error(), "--cacert") {
		t.Fatalf("Stat over https without the CA: %v; want a permanent error naming --cacert", err)
	}
	t.Logf("without the CA: %v", err)
}

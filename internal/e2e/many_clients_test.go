//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/s3"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// The many-clients test: manyClients processes, each with its own --host,
// cache and tree, back up manyRounds times into one repository, while one
// more process runs forget --keep-last manyKeep --prune and check in a
// loop. A client's tree changes between its rounds so that a prune always
// has something to take away from under a running backup:
//
//   - own/: new content every round (garbage once its round is forgotten);
//   - cycle/: the client's content of round r-manyCycle again, which only
//     forgotten snapshots hold when the round starts: the backup
//     deduplicates against packs that the prune beside it marks at the
//     same time;
//   - shared/: content all clients write in the same round, deduplicated
//     across hosts;
//   - common.bin: the same for every client and round (written once).
const (
	manyClients = 4
	manyRounds  = 14
	manyKeep    = 2
	manyCycle   = 3 // > manyKeep: the cycle's content comes back after its snapshot was forgotten
)

// TestManyClientsLocal is the many-clients test on a local repository.
func TestManyClientsLocal(t *testing.T) {
	dir := t.TempDir()
	repoDir := filepath.Join(dir, "repo")
	if err := initSmall(repoDir); err != nil {
		t.Fatal(err)
	}
	runManyClients(t, backend.NewLocal(repoDir), func(*testing.T) *env {
		e := newEnv(t)
		e.repo = repoDir
		return e
	})
}

// TestManyClientsS3 is the many-clients test on SeaweedFS (or the endpoint
// of STILLPOINT_S3_TEST_ENDPOINT).
func TestManyClientsS3(t *testing.T) {
	srv := s3Server(t)
	bucket := srv.NewBucket(t)
	loc, err := s3.ParseLocation(srv.Location(bucket, "many"))
	if err != nil {
		t.Fatal(err)
	}
	be, err := s3.New(loc, s3.Options{Region: srv.Region, Credentials: credentials.NewStaticV4(srv.Admin.AccessKey, srv.Admin.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := be.Create(ctx); err != nil {
		t.Fatal(err)
	}
	// small packs, as on the local repository: prune has work in seconds
	if _, err := repo.Init(ctx, backend.Backend(be), repo.Credential{Password: prunePassword}, smallConfig()); err != nil {
		t.Fatal(err)
	}
	runManyClients(t, be, func(t *testing.T) *env { return s3Env(t, srv, bucket, "many", srv.Admin) })
}

// manyRound is one backup of one client.
type manyRound struct {
	client, round int
	id            string
	want          map[string]string // the tree right before the backup
}

// be is the repository's store: the test holds a backup's lock in it
// across prunes of the loop, the way a long backup does, so that a mark
// must wait for its holder whatever the clients' timing.
func runManyClients(t *testing.T, be backend.Backend, newClient func(*testing.T) *env) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	mk := func() *env {
		e := newClient(t)
		e.extra = append(e.extra, "STILLPOINT_PASSWORD="+prunePassword)
		return e
	}
	srcBase := t.TempDir()
	var (
		mu       sync.Mutex
		rounds   []manyRound
		failures []string
		pruned   struct{ runs, removedPacks, waited int }
		loopWall struct {
			n             int
			forget, check time.Duration
		}
	)
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		failures = append(failures, fmt.Sprintf(format, args...))
	}
	failed := func() bool { mu.Lock(); defer mu.Unlock(); return len(failures) > 0 }

	var clients sync.WaitGroup
	for c := range manyClients {
		e, src := mk(), filepath.Join(srcBase, fmt.Sprintf("client-%d", c))
		clients.Go(func() {
			host := fmt.Sprintf("many-%d", c)
			for r := range manyRounds {
				if failed() {
					return
				}
				if err := manyTree(src, c, r); err != nil {
					fail("%s round %d: %v", host, r, err)
					return
				}
				want := treeHash(t, src)
				res, err := e.exec(ctx, "--json", "backup", "--host", host, "--snapshot", "off", src)
				if ctx.Err() != nil {
					return // the loop failed and stopped the test
				}
				if err != nil || res.code != 0 {
					fail("%s round %d: %v %s", host, r, err, res)
					return
				}
				id := jsonSummary(res.stdout)["snapshot_id"]
				if s, ok := id.(string); !ok || s == "" {
					fail("%s round %d: no snapshot id: %s", host, r, res)
					return
				}
				mu.Lock()
				rounds = append(rounds, manyRound{client: c, round: r, id: id.(string), want: want})
				mu.Unlock()
			}
		})
	}
	done := make(chan struct{})
	go func() { clients.Wait(); close(done) }()

	// forget --prune and check in a loop until the clients are done; from
	// the second round on, a long backup's lock is held until a prune has
	// found a mark waiting for it
	admin := mk()
	held, err := repo.Open(ctx, be, repo.Credential{Password: prunePassword})
	if err != nil {
		t.Fatal(err)
	}
	var longBackup *repo.Lock
	defer func() { longBackup.Unlock() }()
	loop := func() bool {
		if loopWall.n == 1 {
			if longBackup, err = held.Lock(ctx, false, "backup"); err != nil {
				fail("a backup's lock: %v", err)
				return false
			}
		}
		t0 := time.Now()
		res, err := admin.exec(ctx, "--json", "forget", "--keep-last", fmt.Sprint(manyKeep), "--prune")
		t1 := time.Now()
		if err != nil || res.code != 0 {
			fail("forget --prune: %v %s", err, res)
			return false
		}
		for _, sum := range jsonSummaries(res.stdout) {
			if r, ok := sum["result"].(map[string]any); ok {
				mu.Lock()
				pruned.runs++
				n, _ := r["removed_packs"].(float64)
				pruned.removedPacks += int(n)
				if p, _ := r["marks_pending"].(float64); p > 0 {
					pruned.waited++
				}
				mu.Unlock()
			}
		}
		if longBackup != nil && pruned.waited > 0 {
			longBackup.Unlock()
			longBackup = nil
		}
		// a snapshot whose data a prune took is caught here, before a
		// later forget removes the evidence
		res, err = admin.exec(ctx, "check")
		mu.Lock()
		loopWall.n++
		loopWall.forget += t1.Sub(t0)
		loopWall.check += time.Since(t1)
		mu.Unlock()
		if err != nil || res.code != 0 {
			fail("check while the clients run: %v %s", err, res)
			return false
		}
		return true
	}
	for running := true; running; {
		select {
		case <-done:
			running = false
		default:
			if !loop() {
				cancel() // the clients' commands end, and so the test
				<-done
				running = false
			}
		}
	}
	for _, f := range failures {
		t.Error(f)
	}
	if t.Failed() {
		return
	}
	loops := time.Since(start)

	// the last rounds' snapshots, and only they, are left: no snapshot
	// lost, forget's choice per host
	admin.must(t, 0, "forget", "--keep-last", fmt.Sprint(manyKeep), "--prune")
	wantIDs := map[string]manyRound{}
	for _, r := range rounds {
		if r.round >= manyRounds-manyKeep {
			wantIDs[r.id] = r
		}
	}
	got := admin.snapshotIDs(t)
	if len(got) != len(wantIDs) {
		t.Errorf("%d snapshots left, want %d (the last %d of each of %d clients)", len(got), len(wantIDs), manyKeep, manyClients)
	}
	for _, id := range got {
		if _, ok := wantIDs[id]; !ok {
			t.Errorf("snapshot %s is left, but is not one of the last %d rounds of a client", id[:8], manyKeep)
		}
	}
	chk := admin.must(t, 0, "check", "--read-data")
	if !strings.HasPrefix(chk.stdout, "no errors:") || !strings.Contains(chk.stdout, "all data read") {
		t.Fatalf("check --read-data:\n%s", chk)
	}
	for _, r := range wantIDs {
		admin.restoreAndCompare(t, r.id, filepath.Join(srcBase, fmt.Sprintf("client-%d", r.client)), r.want)
	}
	// prune ran beside the backups: it deleted, and a mark had to wait for one
	t.Logf("%d backups, %d prunes beside them (%d packs deleted, %d left a mark waiting) in %s; verified in %s",
		len(rounds), pruned.runs, pruned.removedPacks, pruned.waited, loops.Round(time.Second), (time.Since(start) - loops).Round(time.Second))
	if loopWall.n > 0 {
		t.Logf("%d rounds of the loop: forget --prune %s, check %s on average", loopWall.n,
			(loopWall.forget / time.Duration(loopWall.n)).Round(time.Millisecond), (loopWall.check / time.Duration(loopWall.n)).Round(time.Millisecond))
	}
	if pruned.runs < 2 || pruned.removedPacks == 0 || pruned.waited == 0 {
		t.Errorf("prune did not run beside the backups: %d prunes, %d packs deleted, %d marks waiting", pruned.runs, pruned.removedPacks, pruned.waited)
	}
}

// manyTree makes client c's tree of round r (see the constants).
func manyTree(src string, c, r int) error {
	seed := func(kind, i, v int) uint64 { return uint64(kind)<<40 | uint64(c)<<32 | uint64(i)<<16 | uint64(v) }
	write := func(p string, s uint64, size int64) error {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		if err := fill(f, newChaCha(s), size); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	if err := os.RemoveAll(filepath.Join(src, "own")); err != nil {
		return err
	}
	for i := range 3 {
		if err := write(filepath.Join(src, "own", fmt.Sprintf("r%d-%d.bin", r, i)), seed(1, i, r), int64(64<<10+(c*3+i+r)%5*96<<10)); err != nil {
			return err
		}
	}
	for i := range 4 {
		v := r % manyCycle
		if err := write(filepath.Join(src, "cycle", fmt.Sprintf("%d.bin", i)), seed(2, i, v), int64(256<<10+(i+v)%3*256<<10)); err != nil {
			return err
		}
	}
	for i := range 2 {
		// the same for every client: its seed leaves c out
		s := uint64(3)<<40 | uint64(i)<<16 | uint64(r)
		if err := write(filepath.Join(src, "shared", fmt.Sprintf("%d.bin", i)), s, 384<<10); err != nil {
			return err
		}
	}
	if r == 0 {
		if err := write(filepath.Join(src, "common.bin"), 4<<40, 1<<20); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(src, "round.txt"), fmt.Appendf(nil, "client %d round %d\n", c, r), 0o644)
}

// exec runs the binary without the testing.T, for other goroutines: the
// error is for a process that could not run.
func (e *env) exec(ctx context.Context, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := e.command(ctx, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	res := result{stdout: out.String(), stderr: errb.String(), args: args}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		res.code = ee.ExitCode()
	default:
		return res, fmt.Errorf("stillpoint %s: %w", strings.Join(args, " "), err)
	}
	return res, nil
}

// jsonSummaries are the summary events of --json output (forget --prune
// writes forget's, then prune's).
func jsonSummaries(out string) []map[string]any {
	var sums []map[string]any
	for _, line := range strings.Split(out, "\n") {
		var ev map[string]any
		if json.Unmarshal([]byte(line), &ev) == nil && ev["type"] == "summary" {
			sums = append(sums, ev)
		}
	}
	return sums
}

// jsonSummary is the first summary event of --json output, or nil.
func jsonSummary(out string) map[string]any {
	if sums := jsonSummaries(out); len(sums) > 0 {
		return sums[0]
	}
	return nil
}

// newChaCha is a random stream for a seed.
func newChaCha(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

package retryq_test

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/retryq"
)

// When STILLPOINT_RETRYQ_ADDER is set, the test binary is a second process
// that adds its own entries to the queue in that directory.
func init() {
	dir := os.Getenv("STILLPOINT_RETRYQ_ADDER")
	if dir == "" {
		return
	}
	who := os.Getenv("STILLPOINT_RETRYQ_WHO")
	q, err := retryq.Open(dir, "shared")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := range adds {
		if err := q.Add(t0, []retryq.Failure{locked(fmt.Sprintf("/%s/%03d", who, i))}, retryq.Policy{RetryAfter: time.Minute}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	os.Exit(0)
}

const adds = 60

// Two processes (the service and a `run` from the command line) changing
// one job's queue at once lose none of each other's entries.
func TestTwoProcessesLoseNoEntries(t *testing.T) {
	dir := t.TempDir()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 3)
	for i, who := range []string{"a", "b", "c"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(exe, "-test.run=^$")
			cmd.Env = append(os.Environ(), "STILLPOINT_RETRYQ_ADDER="+dir, "STILLPOINT_RETRYQ_WHO="+who)
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("adder %s: %v: %s", who, err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	q := open(t, dir, "shared")
	if n := q.Len(); n != 3*adds {
		t.Fatalf("the queue holds %d entries, want %d: concurrent changes lost some", n, 3*adds)
	}
}

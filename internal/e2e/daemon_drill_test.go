//go:build linux

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The daemon drills a job on its drill.schedule: (every 2s, a command
// verifier that checks the restored file): the API lists a drill run that
// passed, the job shows it as its last drill, /metrics says it passed, the
// history has it as kind drill, and `stillpoint snapshots` shows the
// snapshot verified.
func TestDaemonDrillsOnItsSchedule(t *testing.T) {
	src := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(src, 0o755)
	app := filepath.Join(src, "app.txt")
	mustWrite(t, app, []byte("the application's data"))
	jobs, state, scratch := t.TempDir(), t.TempDir(), t.TempDir()
	writeNamedJob(t, jobs, "appjob", fmt.Sprintf(`version: 1
sources:
  - path: %s
    snapshot: off
schedule: every 1h
drill:
  schedule: every 2s
  scratch: %s
  verify:
    - command: grep -q "application's data" "$STILLPOINT_DRILL_PATH"
      path: %s
`, src, scratch, app))
	e := newEnv(t)
	e.must(t, 0, "init")
	d := startDaemon(t, e, jobs, state)

	type apiRun struct {
		ID, Kind, Status, Snapshot, Error string
	}
	var drill apiRun
	waitFor(t, "a drill run in the API", func() bool {
		var body struct{ Runs []apiRun }
		if err := json.Unmarshal(d.get(t, "/api/v1/jobs/appjob/runs"), &body); err != nil {
			t.Fatal(err)
		}
		for _, r := range body.Runs {
			if r.Kind == "drill" && r.Status != "running" {
				drill = r
				return true
			}
		}
		return false
	})
	if drill.Status != "ok" || drill.Snapshot == "" || drill.Error != "" {
		t.Fatalf("the drill in the API: %+v", drill)
	}
	var detail struct {
		Checks []struct {
			Name    string
			OK      bool
			Message string
		}
	}
	if err := json.Unmarshal(d.get(t, "/api/v1/runs/"+drill.ID), &detail); err != nil {
		t.Fatal(err)
	}
	names := []string{}
	for _, c := range detail.Checks {
		names = append(names, c.Name)
		if !c.OK {
			t.Errorf("check %s failed: %s", c.Name, c.Message)
		}
	}
	if strings.Join(names, ",") != "check,restore,command" {
		t.Errorf("the drill's checks %v, want check, restore, command", names)
	}
	var job struct {
		Job struct {
			DrillSchedule string `json:"drill_schedule"`
			LastDrill     *struct {
				Kind, Status string
			} `json:"last_drill"`
			LastRun *struct{ Kind string } `json:"last_run"`
		}
	}
	if err := json.Unmarshal(d.get(t, "/api/v1/jobs/appjob"), &job); err != nil {
		t.Fatal(err)
	}
	if job.Job.DrillSchedule != "every 2s" || job.Job.LastDrill == nil || job.Job.LastDrill.Kind != "drill" || job.Job.LastRun == nil || job.Job.LastRun.Kind != "backup" {
		t.Errorf("the job in the API: %+v", job.Job)
	}
	if m := scrapeMetrics(t, d, "appjob"); m["stillpoint_last_drill_passed"] != 1 || m["stillpoint_last_drill_success_timestamp_seconds"] == 0 || m["stillpoint_drills_total{ok}"] < 1 {
		t.Errorf("drill metrics: %v", m)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("the daemon exited %d on SIGTERM", code)
	}
	if entries, _ := os.ReadDir(scratch); len(entries) != 0 {
		t.Errorf("the drills left %d entries in their scratch directory", len(entries))
	}

	drills := 0
	for _, h := range historyOf(t, e, state, "appjob") {
		if h.Kind == "drill" {
			drills++
			if h.Status != "success" {
				t.Errorf("a drill in the history: %+v", h)
			}
		}
	}
	if drills == 0 {
		t.Error("no drill in the history")
	}
	if out := e.must(t, 0, "snapshots"); !strings.Contains(out.stdout, "verified") || !strings.Contains(out.stdout, "command") {
		t.Errorf("snapshots does not show the snapshot verified:\n%s", out.stdout)
	}
	if dr := e.snapshotDrill(t); dr == nil || dr["ok"] != true {
		t.Errorf("snapshots --json: drill %v", dr)
	}
}

// notifications are the datagrams a test's NOTIFY_SOCKET received.
type notifications struct {
	mu   sync.Mutex
	msgs []string
	// readyAnswered: whether the status address answered when each
	// READY=1 arrived
	readyAnswered []bool
}

func (n *notifications) has(msg string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, m := range n.msgs {
		if m == msg || strings.HasPrefix(m, msg) {
			return true
		}
	}
	return false
}

func (n *notifications) count(msg string) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := 0
	for _, m := range n.msgs {
		if m == msg {
			c++
		}
	}
	return c
}

func (n *notifications) list() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.msgs...)
}

// freePort is a port of 127.0.0.1 free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// The daemon under a service manager's NOTIFY_SOCKET with a watchdog of
// 1s: READY=1 comes once the status address answers, STATUS= lines and
// WATCHDOG=1 pings follow, SIGHUP gives RELOADING=1 then READY=1, SIGTERM
// STOPPING=1.
func TestDaemonTellsTheServiceManager(t *testing.T) {
	dir, err := os.MkdirTemp("", "sdnotify") // a socket path must be short
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	addr := freePort(t)
	n := &notifications{}
	go func() {
		buf := make([]byte, 4096)
		client := &http.Client{Timeout: 2 * time.Second}
		for {
			k, err := conn.Read(buf)
			if err != nil {
				return
			}
			msg := string(buf[:k])
			answered := false
			if msg == "READY=1" {
				if resp, err := client.Get("http://" + addr + "/api/v1/jobs"); err == nil {
					answered = resp.StatusCode == 200
					resp.Body.Close()
				}
			}
			n.mu.Lock()
			n.msgs = append(n.msgs, msg)
			if msg == "READY=1" {
				n.readyAnswered = append(n.readyAnswered, answered)
			}
			n.mu.Unlock()
		}
	}()

	src := t.TempDir()
	mustWrite(t, filepath.Join(src, "a"), []byte("a"))
	jobs, state := t.TempDir(), t.TempDir()
	writeNamedJob(t, jobs, "home", fmt.Sprintf("version: 1\nsources:\n  - path: %s\n    snapshot: off\nschedule: every 1h\n", src))
	e := newEnv(t)
	e.must(t, 0, "init")
	e.extra = append(e.extra, "NOTIFY_SOCKET="+sock, "WATCHDOG_USEC=1000000")
	d := startDaemon(t, e, jobs, state, "--listen", addr)
	if d.addr != "http://"+addr {
		t.Fatalf("the daemon listens on %s, want %s", d.addr, addr)
	}
	waitFor(t, "READY=1", func() bool { return n.has("READY=1") })
	waitFor(t, "a STATUS= line", func() bool { return n.has("STATUS=") })
	waitFor(t, "three WATCHDOG=1 pings", func() bool { return n.count("WATCHDOG=1") >= 3 })
	n.mu.Lock()
	if len(n.readyAnswered) != 1 || !n.readyAnswered[0] {
		t.Errorf("READY=1 came before the status address answered (%v)", n.readyAnswered)
	}
	n.mu.Unlock()
	if first := n.list()[0]; first != "READY=1" && !strings.HasPrefix(first, "STATUS=") {
		t.Errorf("the first notification is %q", first)
	}

	d.cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, "READY=1 after the reload", func() bool { return n.count("READY=1") >= 2 })
	msgs := n.list()
	reloading, ready := -1, -1
	for i, m := range msgs {
		switch {
		case m == "RELOADING=1" && reloading < 0:
			reloading = i
		case m == "READY=1" && reloading >= 0 && ready < 0:
			ready = i
		}
	}
	if reloading < 0 || ready < reloading {
		t.Errorf("SIGHUP: want RELOADING=1 then READY=1, got %q", msgs)
	}
	var statusLines []string
	for _, m := range msgs {
		if strings.HasPrefix(m, "STATUS=") {
			statusLines = append(statusLines, m)
		}
	}
	if !strings.Contains(strings.Join(statusLines, "\n"), "next home at ") {
		t.Errorf("no STATUS= line names the next run: %q", statusLines)
	}
	if code := d.stop(t); code != 0 {
		t.Fatalf("the daemon exited %d on SIGTERM", code)
	}
	waitFor(t, "STOPPING=1", func() bool { return n.has("STOPPING=1") })
	t.Logf("notifications: %q", n.list())
}

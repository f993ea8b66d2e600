package service

import (
	"context"
	"encoding/xml"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func testConfig(t *testing.T) Config {
	t.Helper()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return Config{Binary: bin, JobsDir: "/etc/stillpoint/jobs.d", Listen: "127.0.0.1:8424"}
}

func TestSystemdUnit(t *testing.T) {
	text, err := SystemdUnit(testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Type=notify", "WatchdogSec=", "KillMode=mixed", "NoNewPrivileges=yes", "WantedBy=multi-user.target",
		" daemon --jobs /etc/stillpoint/jobs.d --listen 127.0.0.1:8424\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("the unit lacks %q:\n%s", want, text)
		}
	}
	// what a backup needs must not be taken away
	for _, never := range []string{"ProtectHome=", "ProtectSystem=strict", "PrivateTmp=yes", "PrivateDevices=yes", "CapabilityBoundingSet="} {
		if strings.Contains(text, never) {
			t.Errorf("the unit has %q, which would keep backups or snapshots from working", never)
		}
	}
}

// TestSystemdUnitVerifies has systemd itself check the unit.
func TestSystemdUnitVerifies(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("systemd runs on Linux")
	}
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-analyze is missing (test.sh installs systemd)")
		}
		t.Skip("systemd-analyze is missing")
	}
	dir := t.TempDir()
	c := testConfig(t)
	c.Extra = []string{"--note", "a b\"c$HOME%h"}
	text, err := SystemdUnit(c)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(dir, Name+".service")
	if err := os.WriteFile(unit, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", "--man=no", unit).CombinedOutput()
	// verify also complains about the machine (no running systemd, other
	// units' dependencies): only lines about our unit count
	var ours []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.Contains(l, Name+".service") && !strings.Contains(l, "Unit is bound to inactive unit") {
			ours = append(ours, l)
		}
	}
	if len(ours) > 0 {
		t.Fatalf("systemd-analyze verify (%v):\n%s", err, strings.Join(ours, "\n"))
	}
}

func TestConfigTakesEveryPlatformsAbsolutePaths(t *testing.T) {
	for _, bin := range []string{"/usr/bin/stillpoint", `C:\Program Files\stillpoint\stillpoint.exe`, "c:/tools/stillpoint.exe", `\\server\share\stillpoint.exe`} {
		if err := (Config{Binary: bin}).Validate(); err != nil {
			t.Errorf("%s: %v", bin, err)
		}
	}
}

func TestSystemdCommandQuoting(t *testing.T) {
	got := systemdCommand([]string{"/opt/my tools/stillpoint", "daemon", `a"b`, `c\d`, "100%", "$X", ""})
	want := `"/opt/my tools/stillpoint" daemon "a\"b" "c\\d" 100%% $$X ""`
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestLaunchdPlist(t *testing.T) {
	c := testConfig(t)
	c.Extra = []string{"--note", "<&>"}
	text, err := LaunchdPlist(c)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Dict struct {
			Keys    []string `xml:"key"`
			Strings []string `xml:"string"`
			Array   struct {
				Strings []string `xml:"string"`
			} `xml:"array"`
		} `xml:"dict"`
	}
	if err := xml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatalf("not XML: %v\n%s", err, text)
	}
	want := append([]string{c.Binary}, c.DaemonArgs()...)
	if !reflect.DeepEqual(doc.Dict.Array.Strings, want) {
		t.Errorf("ProgramArguments = %q, want %q", doc.Dict.Array.Strings, want)
	}
	for _, k := range []string{"Label", "ProgramArguments", "RunAtLoad", "KeepAlive", "ExitTimeOut"} {
		if !contains(doc.Dict.Keys, k) {
			t.Errorf("the plist lacks %s", k)
		}
	}
	if !contains(doc.Dict.Strings, LaunchdLabel) {
		t.Errorf("the plist's label is not %s", LaunchdLabel)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestConfigRefusesRelativePaths(t *testing.T) {
	for _, c := range []Config{{}, {Binary: "stillpoint"}, {Binary: "/usr/bin/stillpoint", JobsDir: "jobs"}, {Binary: `C:stillpoint.exe`}} {
		if _, err := SystemdUnit(c); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

type recorder struct {
	calls [][]string
	fail  string // a command that fails
}

func (r *recorder) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	r.calls = append(r.calls, append([]string{name}, args...))
	if strings.Join(append([]string{name}, args...), " ") == r.fail {
		return []byte("Unit stillpoint.service not loaded."), errors.New("exit status 5")
	}
	return nil, nil
}

func TestInstallAndUninstallSystemd(t *testing.T) {
	root := t.TempDir()
	rec := &recorder{}
	m := Manager{OS: "linux", Runner: rec, Root: root}
	res, err := m.Install(context.Background(), testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Enabled {
		t.Error("not reported enabled")
	}
	written, err := os.ReadFile(filepath.Join(root, UnitPath))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := SystemdUnit(testConfig(t))
	if string(written) != want {
		t.Error("the unit written differs from SystemdUnit's")
	}
	wantCalls := [][]string{{"systemctl", "daemon-reload"}, {"systemctl", "enable", "--now", "stillpoint.service"}}
	if !reflect.DeepEqual(rec.calls, wantCalls) {
		t.Errorf("install ran %q, want %q", rec.calls, wantCalls)
	}

	// a stop that fails (unit not loaded) still removes the file and
	// reloads, and says what failed
	rec.calls, rec.fail = nil, "systemctl disable --now stillpoint.service"
	_, err = m.Uninstall(context.Background())
	if err == nil || !strings.Contains(err.Error(), "not loaded") {
		t.Errorf("uninstall: %v, want the failed stop reported", err)
	}
	if _, err := os.Stat(filepath.Join(root, UnitPath)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unit is still there: %v", err)
	}
	wantCalls = [][]string{{"systemctl", "disable", "--now", "stillpoint.service"}, {"systemctl", "daemon-reload"}}
	if !reflect.DeepEqual(rec.calls, wantCalls) {
		t.Errorf("uninstall ran %q, want %q", rec.calls, wantCalls)
	}
	if _, err := m.Uninstall(context.Background()); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Errorf("a second uninstall: %v, want 'not installed'", err)
	}
}

func TestInstallLaunchd(t *testing.T) {
	root := t.TempDir()
	rec := &recorder{}
	m := Manager{OS: "darwin", Runner: rec, Root: root}
	if _, err := m.Install(context.Background(), testConfig(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, PlistPath)); err != nil {
		t.Fatal(err)
	}
	if want := [][]string{{"launchctl", "bootstrap", "system", PlistPath}}; !reflect.DeepEqual(rec.calls, want) {
		t.Errorf("ran %q, want %q", rec.calls, want)
	}
}

func TestInstallForPackagingRunsNothing(t *testing.T) {
	root := t.TempDir()
	res, err := Manager{OS: "linux", Root: root}.Install(context.Background(), testConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	if res.Enabled || len(res.Steps) > 0 {
		t.Errorf("a packaging install ran %q", res.Steps)
	}
}

func TestNotifier(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no sd_notify on Windows")
	}
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", "")
	n := FromEnvironment()
	if n == nil {
		t.Fatal("no notifier under NOTIFY_SOCKET")
	}
	if os.Getenv("NOTIFY_SOCKET") != "" {
		t.Error("NOTIFY_SOCKET stays in the environment: hooks would inherit it")
	}
	if n.WatchdogInterval() != 200*time.Millisecond {
		t.Errorf("watchdog %v", n.WatchdogInterval())
	}
	read := func() string {
		buf := make([]byte, 256)
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		k, err := conn.Read(buf)
		if err != nil {
			return "(" + err.Error() + ")"
		}
		return string(buf[:k])
	}
	if err := n.Ready(); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "READY=1" {
		t.Errorf("got %q", got)
	}
	_ = n.Status("running home\nnext: 4h")
	if got := read(); got != "STATUS=running home next: 4h" {
		t.Errorf("got %q", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	healthy := true
	go n.KeepAlive(ctx, func() bool { return healthy })
	if got := read(); got != "WATCHDOG=1" {
		t.Errorf("got %q", got)
	}
	cancel()

	var nilNotifier *Notifier
	if err := nilNotifier.Ready(); err != nil {
		t.Errorf("a nil notifier: %v", err)
	}
}

func TestWatchdogStopsWhenUnhealthy(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no sd_notify on Windows")
	}
	sock := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	t.Setenv("NOTIFY_SOCKET", sock)
	t.Setenv("WATCHDOG_USEC", "100000")
	n := FromEnvironment()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.KeepAlive(ctx, func() bool { return false })
	_ = conn.SetReadDeadline(time.Now().Add(400 * time.Millisecond))
	if k, err := conn.Read(make([]byte, 64)); err == nil {
		t.Fatalf("a hung daemon still pinged the watchdog (%d bytes)", k)
	}
}

func TestCommandInhibitor(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("sh")
	}
	dir := t.TempDir()
	args := filepath.Join(dir, "args")
	exited := filepath.Join(dir, "exited")
	inh := commandInhibitor{argv: func(why string) []string {
		return []string{"sh", "-c", `echo "$1" > "$2"; cat; echo done > "$3"`, "sh", why, args, exited}
	}}
	release, err := inh.Inhibit("backup of home")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(args); strings.TrimSpace(string(b)) != "backup of home" {
		t.Errorf("the helper got %q", b)
	}
	if _, err := os.Stat(exited); err == nil {
		t.Fatal("the lock ended before release")
	}
	release()
	if _, err := os.Stat(exited); err != nil {
		t.Fatal("release did not end the helper")
	}

	failing := commandInhibitor{argv: func(string) []string {
		return []string{"sh", "-c", "echo 'Failed to inhibit: no logind' >&2; exit 1"}
	}}
	if _, err := failing.Inhibit("x"); err == nil || !strings.Contains(err.Error(), "no logind") {
		t.Errorf("a helper that cannot take the lock: %v", err)
	}
}

func TestSleepInhibitorCommand(t *testing.T) {
	c, ok := SleepInhibitor().(commandInhibitor)
	if !ok {
		t.Skip("not a command on this platform")
	}
	argv := c.argv("backup")
	if argv[len(argv)-1] != "cat" {
		t.Errorf("the helper must hold the lock with cat on our pipe: %q", argv)
	}
	if runtime.GOOS == "linux" && !contains(argv, "--what=sleep:idle") {
		t.Errorf("%q", argv)
	}
}

// Package browser starts Debian's chromium, headless, for tests that drive
// the status pages, and keeps their screenshots.
package browser

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stillpoint-backup/stillpoint/internal/testutil/ci"
)

// Chromium finds chromium; without it the test skips, except in CI. The
// browser tests run on Linux only: the Windows build's tests run under
// Wine, which has no chromium to drive.
func Chromium(t testing.TB) string {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skip("the browser tests run on Linux, with Debian's chromium")
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if ci.Enabled() {
		t.Fatal("chromium is not installed (test.sh installs Debian's chromium)")
	}
	t.Skip("chromium is not installed")
	return ""
}

// Artifacts is where screenshots go: $STILLPOINT_ARTIFACTS, else the
// test's temporary directory.
func Artifacts(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("STILLPOINT_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// New starts a headless chromium and returns a context of its first tab,
// with timeout for everything the test does in it. The browser is ended
// (and waited for) when the test ends.
func New(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(Chromium(t)), chromedp.NoSandbox, chromedp.DisableGPU,
		// containers often give /dev/shm a few MiB only
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1400, 900), chromedp.UserDataDir(t.TempDir()),
		// chromium makes a directory for its singleton socket in TMPDIR
		// and leaves it behind
		chromedp.Env("TMPDIR="+t.TempDir()))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(cancel)
	// the first action starts the browser: it gets no deadline of its own
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancelTimeout := context.WithTimeout(ctx, timeout)
	t.Cleanup(cancelTimeout)
	return ctx
}

// Screenshot saves the whole page as name in Artifacts and logs its path.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	p := filepath.Join(Artifacts(t), name)
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
	return p
}

// Text is the text of the first element sel matches.
func Text(t testing.TB, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

package drill

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
)

// Environment variables a command verifier gets.
const (
	EnvPath     = "STILLPOINT_DRILL_PATH"     // the restored form of the verifier's path (or the root)
	EnvOriginal = "STILLPOINT_DRILL_ORIGINAL" // the verifier's path as it was backed up
	EnvRoot     = "STILLPOINT_DRILL_ROOT"     // the directory the snapshot was restored below
	EnvSnapshot = "STILLPOINT_DRILL_SNAPSHOT" // the snapshot's id
)

// outputTail is how much of a command's output is kept for its message.
const outputTail = 64 << 10

// verifyCommand runs the spec's command line with the restored path in
// its environment; exit code 0 passes.
func verifyCommand(ctx context.Context, e verifyEnv) (string, error) {
	cmd := shellCommand(ctx, e.spec.Command)
	inGroup(cmd)
	cmd.Env = append(os.Environ(), EnvPath+"="+e.restored, EnvOriginal+"="+e.spec.Path, EnvRoot+"="+e.scratch, EnvSnapshot+"="+e.snapshot)
	cmd.Dir = e.scratch
	if fi, err := os.Stat(e.restored); err == nil && fi.IsDir() {
		cmd.Dir = e.restored
	}
	out := &tailBuffer{max: outputTail}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("%s: %v%s", e.spec.Command, err, lastLines(out.Bytes(), 5))
	}
	return "exit 0" + lastLines(out.Bytes(), 1), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.buf)
}

// lastLines is ": " and the last n non-empty lines of out, joined by " / ",
// or "" when there are none.
func lastLines(out []byte, n int) string {
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return ""
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return ": " + strings.Join(lines, " / ")
}

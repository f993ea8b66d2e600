//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const benchPassword = "stillpoint-torture-password"

// A backupResult is what one backup run reported.
type backupResult struct {
	id   string
	exit int
	// problems maps files (relative to the source) that stillpoint did not
	// class ok / ok-snapshot to their outcome.
	problems    map[string]string
	consistency string // the source's, as stillpoint recorded it
	heldMs      float64
	holdMsg     string
	summary     string // stillpoint's --json summary line, kept with a torn restore
	// toSnapshot is stillpoint's time from the start of the run to the
	// snapshot set's creation: the inactivity wait, writers' freeze, the
	// snapshot itself.
	toSnapshot time.Duration
	wait       waitResult
}

// waitResult is what stillpoint reported of its inactivity wait.
type waitResult struct {
	waited    bool // the job had an inactivity wait
	quiet     bool // it ended after a quiet period, not at max-wait
	resnapped int  // snapshots released because a write landed while they were made
	waitedMs  float64
}

func (w waitResult) String() string {
	s := fmt.Sprintf("waited %.0fms", w.waitedMs)
	if !w.quiet {
		s += " (not quiet)"
	}
	if w.resnapped > 0 {
		s += fmt.Sprintf(", snapped again %d×", w.resnapped)
	}
	return s
}

// A backupTool backs a source up and restores it.
type backupTool interface {
	init(ctx context.Context) error
	backup(ctx context.Context, src string) (backupResult, error)
	// restore restores the backup into target (which does not exist) and
	// returns the directory that holds the source's contents.
	restore(ctx context.Context, r backupResult, src, target string) (string, error)
}

// command runs name args with env added, as its own process group, and
// stops it with SIGTERM (stillpoint then releases its snapshots) when ctx
// ends. Exit codes in okCodes count as success.
func command(ctx context.Context, env []string, okCodes []int, name string, args ...string) (stdout string, code int, err error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	code = -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			for _, c := range okCodes {
				if c == code {
					return out.String(), code, nil
				}
			}
		}
		return out.String(), code, fmt.Errorf("%s %s: %v: %s", filepath.Base(name), strings.Join(args, " "), err, lastLines(errb.String(), 6))
	}
	return out.String(), code, nil
}

// cpTool copies the live files; the copy is the restore.
type cpTool struct{ dir string }

func (t *cpTool) init(context.Context) error { return os.MkdirAll(t.dir, 0o755) }

func (t *cpTool) backup(ctx context.Context, src string) (backupResult, error) {
	dst, err := os.MkdirTemp(t.dir, "copy-")
	if err != nil {
		return backupResult{}, err
	}
	os.Chmod(dst, 0o755)
	// 1: some file could not be copied (a journal that vanished): the copy
	// is still what a restore would give
	_, code, err := command(ctx, nil, []int{1}, "cp", "-a", src, dst)
	return backupResult{id: filepath.Join(dst, filepath.Base(src)), exit: code}, err
}

func (t *cpTool) restore(_ context.Context, r backupResult, _, _ string) (string, error) {
	return r.id, nil
}

// resticTool is restic with a fresh repository per workload and mode.
type resticTool struct{ bin, dir string }

func (t *resticTool) env() []string {
	return []string{"RESTIC_PASSWORD=" + benchPassword, "RESTIC_CACHE_DIR=" + filepath.Join(t.dir, "cache")}
}

func (t *resticTool) init(ctx context.Context) error {
	_, _, err := command(ctx, t.env(), nil, t.bin, "-r", filepath.Join(t.dir, "repo"), "init", "-q")
	return err
}

func (t *resticTool) backup(ctx context.Context, src string) (backupResult, error) {
	// 3: the snapshot was written, some files could not be read
	out, code, err := command(ctx, t.env(), []int{3}, t.bin, "-r", filepath.Join(t.dir, "repo"), "backup", "--json", "--host", "torture", src)
	r := backupResult{exit: code}
	if err != nil {
		return r, err
	}
	for _, line := range strings.Split(out, "\n") {
		var s struct {
			Type string `json:"message_type"`
			ID   string `json:"snapshot_id"`
		}
		if json.Unmarshal([]byte(line), &s) == nil && s.Type == "summary" {
			r.id = s.ID
		}
	}
	if r.id == "" {
		return r, errors.New("restic backup: no snapshot id in its output")
	}
	return r, nil
}

func (t *resticTool) restore(ctx context.Context, r backupResult, src, target string) (string, error) {
	_, _, err := command(ctx, t.env(), nil, t.bin, "-r", filepath.Join(t.dir, "repo"), "restore", r.id, "--target", target)
	return filepath.Join(target, src), err
}

// kopiaTool is kopia with a fresh repository per workload and mode.
type kopiaTool struct{ bin, dir string }

func (t *kopiaTool) env() []string {
	return []string{"KOPIA_PASSWORD=" + benchPassword, "KOPIA_CHECK_FOR_UPDATES=false",
		"KOPIA_CONFIG_PATH=" + filepath.Join(t.dir, "config", "repository.config"),
		"KOPIA_CACHE_DIRECTORY=" + filepath.Join(t.dir, "cache"), "KOPIA_LOG_DIR=" + filepath.Join(t.dir, "logs"),
		"KOPIA_PERSIST_CREDENTIALS_ON_CONNECT=false", "KOPIA_USE_KEYRING=false"}
}

func (t *kopiaTool) init(ctx context.Context) error {
	_, _, err := command(ctx, t.env(), nil, t.bin, "repository", "create", "filesystem", "--path", filepath.Join(t.dir, "repo"))
	return err
}

func (t *kopiaTool) backup(ctx context.Context, src string) (backupResult, error) {
	out, code, err := command(ctx, t.env(), nil, t.bin, "snapshot", "create", "--json", "--no-progress", src)
	r := backupResult{exit: code}
	var m struct {
		Root struct {
			Obj string `json:"obj"`
		} `json:"rootEntry"`
	}
	// a snapshot with errors (a file that vanished) still prints its manifest
	if jerr := json.Unmarshal([]byte(out), &m); jerr != nil || m.Root.Obj == "" {
		if err == nil {
			err = fmt.Errorf("kopia snapshot create: no root object in its output (%v)", jerr)
		}
		return r, err
	}
	r.id = m.Root.Obj
	return r, nil
}

func (t *kopiaTool) restore(ctx context.Context, r backupResult, _, target string) (string, error) {
	_, _, err := command(ctx, t.env(), nil, t.bin, "snapshot", "restore", "--no-progress", r.id, target)
	return target, err
}

// stillpointTool runs `stillpoint backup` with args, or with a job file
// when job is set.
type stillpointTool struct {
	bin, dir string
	args     []string
	job      string
}

func (t *stillpointTool) env() []string {
	return []string{"STILLPOINT_REPOSITORY=" + filepath.Join(t.dir, "repo"), "STILLPOINT_PASSWORD=" + benchPassword,
		"STILLPOINT_CACHE_DIR=" + filepath.Join(t.dir, "cache")}
}

func (t *stillpointTool) init(ctx context.Context) error {
	_, _, err := command(ctx, t.env(), nil, t.bin, "init")
	return err
}

func (t *stillpointTool) backup(ctx context.Context, src string) (backupResult, error) {
	args := append([]string{"--json", "backup"}, t.args...)
	if t.job != "" {
		args = append(args, "--job", t.job)
	} else {
		args = append(args, src)
	}
	// 3: the snapshot was written, some files were not stored whole
	out, code, err := command(ctx, t.env(), []int{3}, t.bin, args...)
	r := backupResult{exit: code, problems: map[string]string{}}
	if err != nil {
		return r, err
	}
	var sum struct {
		Type        string    `json:"type"`
		ID          string    `json:"snapshot_id"`
		Consistency string    `json:"consistency"`
		Time        time.Time `json:"time"`
		Problems    []struct {
			Path    string `json:"path"`
			Outcome string `json:"outcome"`
		} `json:"problems"`
		Sources []struct {
			Path        string    `json:"path"`
			Consistency string    `json:"consistency"`
			Created     time.Time `json:"created"`
		} `json:"sources"`
		Quiesce *struct {
			WaitedMs  float64 `json:"waited_ms"`
			Quiet     bool    `json:"quiet"`
			Resnapped int     `json:"resnapped"`
			Writers   []struct {
				HeldMs float64 `json:"held_ms"`
			} `json:"writers"`
			Hold *struct {
				HeldMs   float64 `json:"held_ms"`
				TimedOut bool    `json:"timed_out"`
				Message  string  `json:"message"`
			} `json:"hold"`
		} `json:"quiesce"`
	}
	for _, line := range strings.Split(out, "\n") {
		var probe struct {
			Type string `json:"type"`
		}
		if json.Unmarshal([]byte(line), &probe) == nil && probe.Type == "summary" {
			if err := json.Unmarshal([]byte(line), &sum); err != nil {
				return r, fmt.Errorf("stillpoint summary: %v", err)
			}
			r.summary = line
		}
	}
	if sum.ID == "" {
		return r, errors.New("stillpoint backup: no summary with a snapshot id in its output")
	}
	r.id, r.consistency = sum.ID, sum.Consistency
	for _, p := range sum.Problems {
		rel, err := filepath.Rel(src, p.Path)
		if err != nil || strings.HasPrefix(rel, "..") {
			rel = p.Path
		}
		r.problems[rel] = p.Outcome
	}
	if len(sum.Sources) > 0 && !sum.Sources[0].Created.IsZero() {
		r.toSnapshot = sum.Sources[0].Created.Sub(sum.Time)
	}
	// the source's own consistency: the top-level one is the weakest over
	// all sources
	for _, s := range sum.Sources {
		if s.Path == src && s.Consistency != "" {
			r.consistency = s.Consistency
		}
	}
	if q := sum.Quiesce; q != nil {
		r.wait = waitResult{waited: q.WaitedMs > 0 || q.Quiet, quiet: q.Quiet, resnapped: q.Resnapped, waitedMs: q.WaitedMs}
		for _, w := range q.Writers {
			r.heldMs = max(r.heldMs, w.HeldMs)
		}
		if hd := q.Hold; hd != nil {
			r.heldMs = max(r.heldMs, hd.HeldMs)
			r.holdMsg = hd.Message
			if hd.TimedOut && r.holdMsg == "" {
				r.holdMsg = "timed out"
			}
		}
	}
	return r, nil
}

func (t *stillpointTool) restore(ctx context.Context, r backupResult, src, target string) (string, error) {
	_, _, err := command(ctx, t.env(), []int{3}, t.bin, "restore", r.id, "--target", target)
	return filepath.Join(target, src), err
}

//go:build linux

package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// gitChurn is a git repository under commit churn: a loop that changes a
// few files, `git add -A` and `git commit`, one commit after another,
// without a pause (gc.auto 0: git never packs on its own). git writes each
// object before anything refers to it and a ref last, so every moment of
// the repository passes `git fsck --full`; a copy in which later writes
// landed and earlier ones did not may not.
//
// The loop runs with its working directory in the repository, as a script
// started there would (-git-outside: elsewhere, running `git -C REPO`; then
// between two commits nothing ties it to the filesystem, not even a
// working directory, and a hold cannot find it).
//
// Every backup window starts from a fresh copy of the template repository
// (packed, synced to disk before the churn starts): a history that grew
// over a run would make each restore slower, not the test harder.
type gitChurn struct{}

const (
	gitRepo       = "repo"
	gitFiles      = 64 // files of the initial commit
	gitMaxFileKiB = 16
)

func (gitChurn) name() string { return "git-churn" }

// gitEnv keeps the user's and the system's git configuration out.
func gitEnv(home string) []string {
	return append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null",
		"GIT_AUTHOR_NAME=torture", "GIT_AUTHOR_EMAIL=torture@localhost",
		"GIT_COMMITTER_NAME=torture", "GIT_COMMITTER_EMAIL=torture@localhost", "LC_ALL=C")
}

// git runs git in repo.
func git(ctx context.Context, home, repo string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", repo}, args...)...)
	cmd.Env = gitEnv(home)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("git %s: %v: %s", strings.Join(args, " "), err, lastLines(string(out), 5))
	}
	return string(out), nil
}

// template makes the repository with its first commit.
func (gitChurn) template(ctx context.Context, cfg *config, dir string) error {
	if _, err := exec.LookPath("git"); err != nil {
		return fmt.Errorf("git is missing (Debian: apt-get install git): %v", err)
	}
	return makeGitRepo(ctx, filepath.Join(dir, gitRepo), dir)
}

func makeGitRepo(ctx context.Context, repo, home string) error {
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"config", "gc.auto", "0"},
		{"config", "maintenance.auto", "false"},
		{"config", "commit.gpgsign", "false"},
	} {
		if _, err := git(ctx, home, repo, args...); err != nil {
			return err
		}
	}
	r := rand.New(rand.NewPCG(3, 4))
	for i := range gitFiles {
		if err := writeChurnFile(r, filepath.Join(repo, churnFile(i))); err != nil {
			return err
		}
	}
	for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", "initial"}, {"gc", "-q"}} {
		if _, err := git(ctx, home, repo, args...); err != nil {
			return err
		}
	}
	return nil
}

func churnFile(i int) string { return fmt.Sprintf("src/%02d/file-%03d.txt", i%8, i) }

// writeChurnFile writes a text file of 1 to gitMaxFileKiB KiB of random lines.
func writeChurnFile(r *rand.Rand, path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	for n := 1 + r.IntN(gitMaxFileKiB*1024); b.Len() < n; {
		fmt.Fprintf(&b, "%016x %016x %016x\n", r.Uint64(), r.Uint64(), r.Uint64())
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func (gitChurn) setup(ctx context.Context, e *wlEnv) error { return freshGitRepo(ctx, e) }

// freshGitRepo replaces the repository in e.src with a copy of the
// template's, and syncs it to disk, so that no write of the copy is in
// flight when the churn starts.
func freshGitRepo(ctx context.Context, e *wlEnv) error {
	repo := filepath.Join(e.src, gitRepo)
	if err := os.RemoveAll(repo); err != nil {
		return err
	}
	if out, err := exec.CommandContext(ctx, "cp", "-a", filepath.Join(e.template, gitRepo), e.src).CombinedOutput(); err != nil {
		return fmt.Errorf("cp: %v: %s", err, out)
	}
	return syncFS(e.src)
}

func (gitChurn) start(ctx context.Context, e *wlEnv, window int) (running, error) {
	if window > 1 {
		if err := freshGitRepo(ctx, e); err != nil {
			return nil, err
		}
	}
	repo := filepath.Join(e.src, gitRepo)
	// as a script run in the repository; -git-outside: as a job that runs
	// `git -C REPO` from elsewhere
	dir := repo
	if e.cfg.gitOutside {
		dir = ""
	}
	return startWorkIn(ctx, e, dir, latPath(e, window), "git-churn", "-repo", repo)
}

// writerEntry pauses the churn loop between two commits through its pause
// API.
func (gitChurn) writerEntry(e *wlEnv) string { return ctlWriterEntry(e) }

func (gitChurn) teardown(*wlEnv) {}

func (gitChurn) verify(ctx context.Context, e *wlEnv, restored string) verdict {
	return verifyGitRepo(ctx, filepath.Join(restored, gitRepo), e.aux)
}

// verifyGitRepo: `git fsck --full` passes and HEAD names a commit.
func verifyGitRepo(ctx context.Context, repo, home string) verdict {
	if _, err := os.Stat(filepath.Join(repo, ".git")); err != nil {
		return tornf("%v", err)
	}
	if _, err := git(ctx, home, repo, "fsck", "--full", "--no-progress"); err != nil {
		return tornf("%v", err)
	}
	if _, err := git(ctx, home, repo, "rev-parse", "--verify", "-q", "HEAD^{commit}"); err != nil {
		return tornf("HEAD does not resolve to a commit: %v", err)
	}
	return verdict{}
}

// workGitChurn is the application: commits until stopped. Each commit
// rewrites 1–4 of the tracked files, and every 8th adds a file; the time
// from the first change to the end of `git commit` is one op. Between
// commits it is at a safe point, where it answers pause and stop.
func workGitChurn(args []string) error {
	fs := flag.NewFlagSet("git-churn", flag.ContinueOnError)
	repo := fs.String("repo", "", "the repository")
	wf := addWriterFlags(fs)
	lat, err := wf.parse(fs, args)
	if err != nil {
		return err
	}
	defer lat.close()
	ctx := context.Background()
	out, err := git(ctx, *wf.aux, *repo, "ls-files")
	if err != nil {
		return err
	}
	files := strings.Fields(out)
	ctl, err := newAppControl(*wf.aux, lat)
	if err != nil {
		return err
	}
	defer ctl.close()
	ready()
	r := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(os.Getpid())))
	for n := 1; ctl.safePoint(); n++ {
		start := time.Now()
		for range 1 + r.IntN(4) {
			if err := writeChurnFile(r, filepath.Join(*repo, files[r.IntN(len(files))])); err != nil {
				return err
			}
		}
		if n%8 == 0 {
			f := churnFile(len(files))
			if err := writeChurnFile(r, filepath.Join(*repo, f)); err != nil {
				return err
			}
			files = append(files, f)
		}
		if _, err := git(ctx, *wf.aux, *repo, "add", "-A"); err != nil {
			return err
		}
		if _, err := git(ctx, *wf.aux, *repo, "commit", "-q", "-m", fmt.Sprintf("churn %d", n)); err != nil {
			return err
		}
		lat.add(start, time.Since(start))
	}
	return nil
}

package drill

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// verifyGit runs git fsck --full on every repository at or below the
// restored path: working trees (a .git directory) and bare repositories.
func verifyGit(ctx context.Context, e verifyEnv) (string, error) {
	gitBin, err := exec.LookPath("git")
	if err != nil {
		return "", errors.New("git is not installed (Debian: apt-get install git)")
	}
	repos, skipped, err := findGitRepos(e.restored)
	if err != nil {
		return "", err
	}
	if len(repos) == 0 {
		return "", fmt.Errorf("no git repository at or below %s", e.spec.Path)
	}
	var bad []string
	for _, gitDir := range repos {
		cmd := exec.CommandContext(ctx, gitBin, "-c", "safe.directory=*", "--git-dir="+gitDir, "fsck", "--full", "--no-progress", "--no-dangling")
		inGroup(cmd)
		cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0")
		out := &tailBuffer{max: outputTail}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			bad = append(bad, fmt.Sprintf("%s: git fsck: %v%s", originalOf(e, gitDir), err, lastLines(out.Bytes(), 3)))
		}
	}
	if len(bad) > 0 {
		return "", failWith(bad, "%d of %d repositories fail git fsck --full, first: %s", len(bad), len(repos), bad[0])
	}
	msg := fmt.Sprintf("git fsck --full passed for %d repositories", len(repos))
	if len(skipped) > 0 {
		msg += fmt.Sprintf("; skipped %d linked to a git directory outside the snapshot (%s)", len(skipped), strings.Join(skipped, ", "))
	}
	return msg, nil
}

// findGitRepos returns the git directories at or below root. A .git file
// (a worktree or submodule) that points outside root is skipped: fsck
// would check the live repository, not the restored one.
func findGitRepos(root string) (repos, skipped []string, err error) {
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if d.Name() == ".git" && p != root {
			return filepath.SkipDir // found from its working tree
		}
		if isBareRepo(p) {
			repos = append(repos, p)
			return filepath.SkipDir
		}
		dotGit := filepath.Join(p, ".git")
		fi, err := os.Lstat(dotGit)
		switch {
		case err != nil:
			return nil
		case fi.IsDir():
			repos = append(repos, dotGit)
		case fi.Mode().IsRegular():
			target, ok := gitFileTarget(dotGit)
			if ok && within(target, root) {
				repos = append(repos, target)
			} else {
				skipped = append(skipped, p)
			}
		}
		return nil
	})
	return repos, skipped, err
}

func isBareRepo(dir string) bool {
	for _, n := range []string{"HEAD", "objects", "refs"} {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			return false
		}
	}
	return true
}

// gitFileTarget reads a "gitdir: PATH" file.
func gitFileTarget(file string) (string, bool) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", false
	}
	t, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir:")
	if !ok {
		return "", false
	}
	t = strings.TrimSpace(t)
	if !filepath.IsAbs(t) {
		t = filepath.Join(filepath.Dir(file), t)
	}
	return filepath.Clean(t), true
}

func within(p, base string) bool {
	rel, err := filepath.Rel(base, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// originalOf names a restored path by its original path.
func originalOf(e verifyEnv, restored string) string {
	rel, err := filepath.Rel(e.scratch, restored)
	if err != nil {
		return restored
	}
	return "/" + filepath.ToSlash(rel)
}

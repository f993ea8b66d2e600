package drill

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/report"
	"github.com/stillpoint-backup/stillpoint/internal/restore"
)

// Level is how deep a drill goes; each level includes the ones before.
type Level int

// The levels.
const (
	Check Level = iota + 1
	Read
	Restore
)

var levelNames = map[Level]string{Check: "check", Read: "read", Restore: "restore"}

func (l Level) String() string { return levelNames[l] }

// ParseLevel reads check, read or restore.
func ParseLevel(s string) (Level, error) {
	for l, n := range levelNames {
		if n == s {
			return l, nil
		}
	}
	return 0, fmt.Errorf("unknown drill level %q: use check, read or restore", s)
}

// Spec is one verifier as the job names it.
type Spec struct {
	Kind     string // sqlite, postgres, mysql, git, command
	Path     string // the original path it judges (command: optional)
	Command  string // command: the shell command line
	Query    string
	Database string
	User     string
	Timeout  time.Duration
}

// DefaultTimeout bounds a verifier whose spec gives none.
const DefaultTimeout = 10 * time.Minute

// maxProblems bounds the files or objects a step lists.
const maxProblems = 20

// Repository is what a drill needs of the repository.
type Repository interface {
	restore.Repo
	Check(ctx context.Context, opts repo.CheckOptions) (*repo.CheckResult, error)
}

// Options say how to drill.
type Options struct {
	Level     Level
	Verifiers []Spec
	// Scratch is the directory the restore goes below (a fresh directory
	// in it, removed at the end); "" is the system's temporary directory.
	Scratch string
	// ReadBack is M: each drill reads 1/M of the packs (1: all of them).
	ReadBack int
	// CursorFile keeps the read-back rotation; "" always reads bucket 1.
	CursorFile string
	Host       string
	// Progress is told about each step; may be nil.
	Progress func(msg string)
	// now is the clock; nil is time.Now.
	now func() time.Time
}

// Run drills snapshot s. A verification that fails is a result with OK
// false; an error means the drill could not be made (no scratch space, the
// repository unreadable) and nothing is to be stored.
func Run(ctx context.Context, r Repository, s *repo.Snapshot, opts Options) (*repo.DrillResult, error) {
	now := opts.now
	if now == nil {
		now = time.Now
	}
	if opts.Level == 0 {
		opts.Level = Read
	}
	if opts.ReadBack <= 0 {
		opts.ReadBack = 1
	}
	if opts.ReadBack > repo.MaxBuckets {
		return nil, fmt.Errorf("read-back %d: at most %d", opts.ReadBack, repo.MaxBuckets)
	}
	say := func(format string, args ...any) {
		if opts.Progress != nil {
			opts.Progress(fmt.Sprintf(format, args...))
		}
	}
	started := now()
	res := &repo.DrillResult{Snapshot: s.ID, Origin: s.Origin(), Time: started, Host: opts.Host, Level: opts.Level.String()}

	// the scratch space first: a drill that cannot restore should say so
	// before it spends time on the check
	var scratch string
	if opts.Level >= Read {
		parent := opts.Scratch
		if parent == "" {
			parent = os.TempDir()
		}
		var err error
		if scratch, err = makeScratch(parent, spaceNeeded(s.Stats.Bytes)); err != nil {
			return nil, err
		}
		defer removeScratch(scratch)
	}

	if err := checkStep(ctx, r, opts, say, res); err != nil {
		return nil, err
	}
	if opts.Level >= Read {
		say("restoring snapshot %s to %s", s.ID.Short(), scratch)
		if err := restoreStep(ctx, r, s, scratch, res); err != nil {
			return nil, err
		}
	}
	if opts.Level >= Restore {
		for _, sp := range opts.Verifiers {
			say("verifying %s %s", sp.Kind, firstNonEmpty(sp.Path, sp.Command))
			res.Steps = append(res.Steps, runVerifier(ctx, sp, scratch, s))
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
	}
	res.OK = true
	for _, st := range res.Steps {
		res.OK = res.OK && st.OK
	}
	res.DurationSecs = now().Sub(started).Seconds()
	if scratch != "" {
		if err := removeScratch(scratch); err != nil {
			return res, err
		}
	}
	return res, nil
}

func checkStep(ctx context.Context, r Repository, opts Options, say func(string, ...any), res *repo.DrillResult) error {
	cur := cursor{path: opts.CursorFile}
	bucket := cur.next(opts.ReadBack)
	say("checking the repository and reading back packs %d/%d", bucket, opts.ReadBack)
	t0 := time.Now()
	subset := repo.ReadSubset{Bucket: bucket, Buckets: opts.ReadBack}
	if opts.ReadBack == 1 {
		subset = repo.ReadSubset{}
	}
	cr, err := r.Check(ctx, repo.CheckOptions{ReadData: opts.ReadBack == 1, Subset: subset})
	if err != nil {
		return fmt.Errorf("check: %w", err)
	}
	res.ReadSubset = fmt.Sprintf("%d/%d", bucket, opts.ReadBack)
	res.PacksRead = cr.PacksRead
	st := repo.DrillStep{Name: "check", OK: cr.OK(), DurationSecs: time.Since(t0).Seconds()}
	if cr.OK() {
		st.Message = fmt.Sprintf("structure of %s verified; packs %s read back (%s)", report.Count(cr.Snapshots, "snapshot"), res.ReadSubset, report.Count(cr.PacksRead, "pack"))
	} else {
		for _, p := range cr.Errors {
			st.Problems = appendProblem(st.Problems, p.Object+": "+p.Message)
		}
		st.Message = fmt.Sprintf("the repository has %d errors, first: %s: %s", len(cr.Errors), cr.Errors[0].Object, cr.Errors[0].Message)
	}
	res.Steps = append(res.Steps, st)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return cur.advance(bucket, opts.ReadBack)
}

func restoreStep(ctx context.Context, r Repository, s *repo.Snapshot, scratch string, res *repo.DrillResult) error {
	t0 := time.Now()
	rr, err := restore.Run(ctx, r, s.Tree, restore.Options{Target: scratch})
	if ctx.Err() != nil {
		return ctx.Err()
	}
	st := repo.DrillStep{Name: "restore", Restored: scratch}
	if rr != nil {
		res.Files, res.Bytes = rr.Files, rr.Bytes
		for _, e := range rr.Events {
			if e.Kind == "error" {
				st.Problems = appendProblem(st.Problems, e.Path+": "+e.Message)
			}
		}
	}
	switch {
	case err != nil:
		st.Message = "the restore failed: " + err.Error()
	case rr.Errors > 0:
		st.Message = fmt.Sprintf("%d files or directories could not be restored whole, first: %s", rr.Errors, st.Problems[0])
	default:
		st.OK = true
		st.Message = fmt.Sprintf("%d files, %s restored and verified against their hashes", rr.Files, report.Bytes(rr.Bytes))
		if rr.NotWhole > 0 {
			st.Message += fmt.Sprintf("; %d of them were not backed up whole (see stillpoint ls -l)", rr.NotWhole)
		}
	}
	st.DurationSecs = time.Since(t0).Seconds()
	res.Steps = append(res.Steps, st)
	return nil
}

func appendProblem(list []string, p string) []string {
	if len(list) >= maxProblems {
		return list
	}
	return append(list, p)
}

// restoredPath is where the drill restored the original path p.
func restoredPath(scratch, p string) string {
	return filepath.Join(scratch, filepath.FromSlash(p))
}

// runVerifier runs one verifier under its timeout.
func runVerifier(ctx context.Context, sp Spec, scratch string, s *repo.Snapshot) repo.DrillStep {
	st := repo.DrillStep{Name: sp.Kind, Path: sp.Path}
	if sp.Path != "" {
		st.Restored = restoredPath(scratch, sp.Path)
	} else {
		st.Restored = scratch
	}
	timeout := sp.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	vctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t0 := time.Now()
	var err error
	if _, serr := os.Lstat(st.Restored); sp.Path != "" && serr != nil {
		err = fmt.Errorf("%s is not in snapshot %s (its paths: %s)", sp.Path, s.ID.Short(), strings.Join(s.Paths, ", "))
	} else {
		env := verifyEnv{spec: sp, restored: st.Restored, scratch: scratch, snapshot: s.ID.String()}
		switch sp.Kind {
		case "sqlite":
			st.Message, err = verifySQLite(vctx, env)
		case "postgres":
			st.Message, err = verifyPostgres(vctx, env)
		case "mysql":
			st.Message, err = verifyMySQL(vctx, env)
		case "git":
			st.Message, err = verifyGit(vctx, env)
		case "command":
			st.Message, err = verifyCommand(vctx, env)
		default:
			err = fmt.Errorf("unknown verifier kind %q (sqlite, postgres, mysql, git, command)", sp.Kind)
		}
	}
	st.DurationSecs = time.Since(t0).Seconds()
	if err != nil && errors.Is(vctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("did not finish within %s: killed, with every process it started (last word: %v)", timeout, err)
	}
	if err != nil {
		st.Message = err.Error()
		var pe *problemsError
		if errors.As(err, &pe) {
			st.Problems = pe.problems
		}
		return st
	}
	st.OK = true
	return st
}

// verifyEnv is what a verifier gets.
type verifyEnv struct {
	spec     Spec
	restored string // the restored form of spec.Path (or the scratch root)
	scratch  string // the root the snapshot was restored below
	snapshot string
}

// problemsError is a verifier's failure with the objects it names.
type problemsError struct {
	msg      string
	problems []string
}

func (e *problemsError) Error() string { return e.msg }

func failWith(problems []string, format string, args ...any) error {
	if len(problems) > maxProblems {
		problems = problems[:maxProblems]
	}
	return &problemsError{msg: fmt.Sprintf(format, args...), problems: problems}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

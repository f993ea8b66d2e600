package livefile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// Result says what happened to one file.
type Result struct {
	Outcome outcome.Outcome
	// Reason is one of the outcome.Reason* strings for a failed or skipped
	// file. It is "" when the failure came from attempt itself (Err is then
	// the archiver's own error, e.g. the repository's) or from ctx.
	Reason string
	// Detail says in words what was seen ("size 4096 → 8192 while read"),
	// for the file log; "" for a plain ok.
	Detail string
	// Holder is a process that had the file open for writing or locked,
	// when one was seen.
	Holder *Holder
	// Attempts is how many times the file was opened: read, or found busy
	// and left alone.
	Attempts int
	// Stored tells whether the content attempt consumed in its last call is
	// to be kept. When false, whatever attempt produced is discarded and
	// the previous version of the file, if any, is carried forward.
	Stored bool
	Err    error
	// Deferred files go to the second pass at the end of the run.
	Deferred bool
}

// Attempt consumes an open file fully (the archiver chunks and stores it).
// st is the metadata to record for the file. It may be called more than
// once for one file: each call replaces what the previous one produced.
type Attempt func(f view.File, st *view.Stat) error

// Reader reads live files with a Strategy. It is safe for concurrent use.
type Reader struct {
	cfg   Config
	stage *stagingArea
	// firstPass is the strategy of the run a second-pass Reader follows; 0
	// for a first-pass Reader.
	firstPass Strategy
}

// NewReader checks cfg and, for the stage strategy, creates the Reader's
// staging directory below cfg.StagingDir.
func NewReader(cfg Config) (*Reader, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	r := &Reader{cfg: cfg}
	if cfg.Strategy == StrategyStage {
		s, err := newStagingArea(cfg.StagingDir)
		if err != nil {
			return nil, err
		}
		r.stage = s
	}
	return r, nil
}

// Strategy is the strategy the Reader applies.
func (r *Reader) Strategy() Strategy { return r.cfg.Strategy }

// SecondPass returns the Reader for the files the run deferred, to be used
// once the first pass is over: each deferred file is read again with retry
// semantics and Config.SecondPassRetries retries. open is a fresh
// ScanOpenForWrite (nil keeps the run's first one). After skip, a file that
// is still locked or changing stays skipped-open and is not stored: skip
// never stores a torn file. Close the first Reader only after the second
// pass.
//
// The archiver's end of run:
//
//	open2, _ := livefile.ScanOpenForWrite()
//	second := reader.SecondPass(open2)
//	for _, p := range deferred {
//		res := second.Read(ctx, v, p, attempt) // never Deferred again
//		...
//	}
//	reader.Close()
func (r *Reader) SecondPass(open *OpenFiles) *Reader {
	cfg := r.cfg
	cfg.Strategy = StrategyRetry
	cfg.Retries = cfg.SecondPassRetries
	if open != nil {
		cfg.Open = open
	}
	return &Reader{cfg: cfg, firstPass: r.cfg.Strategy}
}

// Close removes the staging directory, with anything an interrupted read
// left in it.
func (r *Reader) Close() error {
	if r.stage == nil {
		return nil
	}
	return r.stage.remove()
}

// Read reads the file at path (an original path) through v. attempt is
// called with an open file and must consume it fully; it may be called
// more than once (retries). Every problem is in the Result.
func (r *Reader) Read(ctx context.Context, v view.View, path string, attempt Attempt) Result {
	return r.ReadListed(ctx, v, path, nil, attempt)
}

// ReadListed is Read of a file whose lstat the caller took when it listed
// the file (nil: none): the first try judges the path by it instead of an
// lstat of its own (type, open for writing) before it opens the file. The
// open file's fstat is what the read is checked against in either case.
func (r *Reader) ReadListed(ctx context.Context, v view.View, path string, listed *view.Stat, attempt Attempt) Result {
	switch r.cfg.Strategy {
	case StrategyRead:
		return r.try(v, path, attempt, tryOptions{listed: listed}).result(1)
	case StrategySkip:
		t := r.try(v, path, attempt, tryOptions{probeLocks: true, skipBusy: true, listed: listed})
		switch t.state {
		case stateBusy, stateLocked, stateChanged:
			return t.skipped(1, true)
		}
		return t.result(1)
	case StrategyStage:
		if r.needsStaging(v, path, listed) {
			return r.readStaged(ctx, v, path, listed, attempt)
		}
	}
	t, n, err := r.retrying(ctx, v, path, listed, attempt)
	if err != nil {
		return Result{Outcome: outcome.Failed, Holder: t.holder, Attempts: n, Err: err}
	}
	if r.firstPass == StrategySkip && (t.state == stateChanged || t.state == stateLocked) {
		return t.skipped(n, false)
	}
	return t.result(n)
}

// retrying tries up to 1+Retries times while the file changes under the
// read or is locked, and returns the last try and the number of tries.
// listed, the caller's lstat, serves the first try; the later ones take
// their own.
func (r *Reader) retrying(ctx context.Context, v view.View, path string, listed *view.Stat, attempt Attempt) (tryResult, int, error) {
	var t tryResult
	n := 0
	for {
		t = r.try(v, path, attempt, tryOptions{probeLocks: true, listed: listed})
		listed = nil
		n++
		if (t.state != stateChanged && t.state != stateLocked) || n > r.cfg.Retries {
			return t, n, nil
		}
		if err := r.cfg.Clock.Sleep(ctx, r.cfg.backoff(n)); err != nil {
			return t, n, fmt.Errorf("reading %s: %w", r.shown(path), err)
		}
	}
}

// needsStaging tells whether stage copies this file: one the scan saw open
// for writing, or any file when there was no scan to ask (StageAll, or a
// platform without one). A file nobody has open gains nothing from a copy
// but twice the I/O; it is read directly, with the checks and retries of
// retry.
func (r *Reader) needsStaging(v view.View, path string, listed *view.Stat) bool {
	if r.cfg.StageAll || !r.cfg.Open.Available() {
		return true
	}
	if listed != nil {
		return r.openHolder(listed) != nil
	}
	st, err := v.Lstat(path)
	return err != nil || r.openHolder(st) != nil // errors are reported by the read
}

// readStaged copies the file into the staging area, with the checks and
// retries of retry, and gives attempt the still copy.
func (r *Reader) readStaged(ctx context.Context, v view.View, path string, listed *view.Stat, attempt Attempt) Result {
	staged, err := r.stage.path(path)
	if err != nil {
		return Result{Outcome: outcome.Failed, Reason: outcome.ReasonIO, Err: err}
	}
	// A staged copy lives only as long as its read: the staging area never
	// holds more than the files being read at the moment.
	defer os.Remove(staged)
	var copyErr error
	copyAttempt := func(f view.File, st *view.Stat) error { copyErr = copyTo(staged, f); return copyErr }
	t, n, err := r.retrying(ctx, v, path, listed, copyAttempt)
	if err != nil {
		return Result{Outcome: outcome.Failed, Holder: t.holder, Attempts: n, Err: err}
	}
	if t.state == stateAttemptFailed {
		return Result{Outcome: outcome.Failed, Reason: outcome.ReasonIO, Holder: t.holder, Attempts: n,
			Err: fmt.Errorf("staging %s in %s: %w", r.shown(path), r.stage.dir, cmp.Or(copyErr, t.err))}
	}
	res := t.result(n)
	if t.state != stateWhole && t.state != stateChanged {
		return res
	}
	f, err := os.Open(staged)
	if err != nil {
		return Result{Outcome: outcome.Failed, Reason: outcome.ReasonIO, Holder: t.holder, Attempts: n,
			Err: fmt.Errorf("opening the staged copy of %s: %w", r.shown(path), err)}
	}
	defer f.Close()
	if err := attempt(&stagedFile{File: f, st: t.stat}, t.stat); err != nil {
		return Result{Outcome: outcome.Failed, Holder: t.holder, Attempts: n,
			Err: fmt.Errorf("storing %s (staged copy %s): %w", r.shown(path), staged, err)}
	}
	return res
}

// stagedFile is a staged copy that reports the metadata of the original.
type stagedFile struct {
	*os.File
	st *view.Stat
}

func (f *stagedFile) Stat() (*view.Stat, error) { c := *f.st; return &c, nil }

func copyTo(dst string, src io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, src); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

type tryOptions struct {
	probeLocks bool       // look for an exclusive lock before reading
	skipBusy   bool       // do not read a file open for writing
	listed     *view.Stat // the caller's lstat of the path, nil to take one
}

type tryState uint8

const (
	stateWhole         tryState = iota // read whole and unchanged
	stateChanged                       // read, but it changed while read
	stateLocked                        // not read: an exclusive lock is held
	stateBusy                          // not read: open for writing and skipBusy
	stateFileFailed                    // the file could not be read
	stateAttemptFailed                 // attempt failed for a reason of its own
)

// tryResult is what one try at a file saw.
type tryResult struct {
	state  tryState
	holder *Holder
	reason string     // for stateFileFailed
	detail string     // what changed, who holds the lock
	stat   *view.Stat // metadata of the file read
	err    error
}

// result turns the last try into a Result.
func (t tryResult) result(attempts int) Result {
	res := Result{Holder: t.holder, Attempts: attempts, Detail: t.detail}
	switch t.state {
	case stateWhole:
		res.Outcome, res.Stored = outcome.OK, true
	case stateChanged:
		res.Outcome, res.Stored = outcome.Changed, true
	case stateLocked:
		res.Outcome, res.Reason, res.Err = outcome.Failed, outcome.ReasonLocked, t.err
	case stateBusy:
		res.Outcome, res.Reason, res.Deferred = outcome.SkippedOpen, outcome.ReasonOpen, true
	case stateFileFailed:
		res.Outcome, res.Reason, res.Err = outcome.Failed, t.reason, t.err
	case stateAttemptFailed:
		res.Outcome, res.Err = outcome.Failed, t.err
	}
	return res
}

// skipped is the Result of a busy, locked or changing file under skip.
func (t tryResult) skipped(attempts int, deferred bool) Result {
	reason := outcome.ReasonOpen
	if t.state == stateLocked {
		reason = outcome.ReasonLocked
	}
	return Result{Outcome: outcome.SkippedOpen, Reason: reason, Detail: t.detail, Holder: t.holder, Attempts: attempts, Deferred: deferred}
}

// timestampSlack is how recent a modification must be for a read of a file
// open for writing to be unprovable: the kernel stamps mtime from a coarse
// clock (one tick, 1–10 ms), so a write during our read in the same tick
// as the last one would leave mtime as it was. Filesystems with whole-second
// timestamps (ext4 with small inodes, FAT: 2 s) need coarseTimestampSlack.
const (
	timestampSlack       = 25 * time.Millisecond
	coarseTimestampSlack = 2 * time.Second
)

// modifiedTooRecently tells whether a read started at start could have
// missed a write because mtime would not have moved.
func modifiedTooRecently(start, mtime time.Time) bool {
	slack := timestampSlack
	if mtime.Nanosecond() == 0 {
		// almost surely a filesystem without sub-second timestamps
		slack = coarseTimestampSlack
	}
	return start.Sub(mtime) < slack
}

// try opens, checks and reads the file once.
func (r *Reader) try(v view.View, path string, consume Attempt, opts tryOptions) tryResult {
	before := opts.listed
	if before == nil {
		var err error
		if before, err = v.Lstat(path); err != nil {
			return r.fileFailed(path, err)
		}
	}
	if before.Type != view.TypeRegular {
		return r.notRegular(path)
	}
	holder := r.openHolder(before)
	if opts.skipBusy && holder != nil {
		return tryResult{state: stateBusy, holder: holder, detail: "open for writing by " + holder.String()}
	}
	f, err := v.Open(path)
	if err != nil {
		return r.fileFailed(path, err)
	}
	defer f.Close()
	start := time.Now()
	// The fstat of the open file is the baseline: it describes exactly the
	// file being read, even when the path was replaced (an editor saving by
	// rename) between the lstat and the open.
	base, err := f.Stat()
	if err != nil {
		return r.fileFailed(path, err)
	}
	switch base.Type {
	case view.TypeDir, view.TypeFIFO, view.TypeSocket, view.TypeDevice, view.TypeCharDevice:
		// replaced since the lstat (the listed one can be a while ago);
		// the view's open does not wait on a FIFO (on Linux)
		return r.notRegular(path)
	}
	if base.Dev != before.Dev || base.Ino != before.Ino {
		holder = r.openHolder(base)
		if opts.skipBusy && holder != nil {
			return tryResult{state: stateBusy, holder: holder, detail: "open for writing by " + holder.String()}
		}
	}
	if opts.probeLocks {
		// A failed probe (a filesystem without locks) leaves the read to
		// change detection alone.
		if h, err := probeViewFile(f, base, r.cfg.Open); err == nil && h != nil && h.Exclusive {
			return tryResult{state: stateLocked, holder: h, detail: "locked by " + h.String(),
				err: fmt.Errorf("%s is locked by %s", r.shown(path), h)}
		}
	}
	cf := &countingFile{File: f}
	if err := consume(cf, base); err != nil {
		if cf.readErr != nil {
			return r.fileFailed(path, cf.readErr)
		}
		return tryResult{state: stateAttemptFailed, holder: holder, err: fmt.Errorf("storing %s: %w", r.shown(path), err)}
	}
	after, err := f.Stat()
	if err != nil {
		return r.fileFailed(path, err)
	}
	t := tryResult{state: stateChanged, holder: holder, stat: base}
	switch {
	case base.Ino != after.Ino || base.Dev != after.Dev:
		t.detail = "replaced while read"
	case base.Size != after.Size:
		t.detail = fmt.Sprintf("size %d → %d while read", base.Size, after.Size)
	case !base.Mtime.Equal(after.Mtime):
		t.detail = "modified while read"
	case !base.Ctime.Equal(after.Ctime):
		t.detail = "metadata changed while read"
	case cf.sawEOF && cf.n != after.Size:
		t.detail = fmt.Sprintf("read %d bytes of %d: written while read", cf.n, after.Size)
	case cf.n != after.Size:
		return tryResult{state: stateAttemptFailed, holder: holder,
			err: fmt.Errorf("reading %s: stopped after %d of %d bytes before the end of the file", r.shown(path), cf.n, after.Size)}
	case holder != nil && modifiedTooRecently(start, base.Mtime):
		t.detail = "open for writing and modified just before it was read"
	default:
		t.state = stateWhole
		if holder != nil {
			t.detail = "open for writing by " + holder.String() + ", read whole"
		}
	}
	return t
}

func (r *Reader) notRegular(path string) tryResult {
	return tryResult{state: stateFileFailed, reason: outcome.ReasonVanished,
		err: fmt.Errorf("%s is no longer a regular file", r.shown(path))}
}

// openHolder returns the first process the run's scan saw with the file
// open for writing, or nil.
func (r *Reader) openHolder(st *view.Stat) *Holder {
	hs := r.cfg.Open.Holders(st.Dev, st.Ino)
	if len(hs) == 0 {
		return nil
	}
	h := hs[0]
	return &h
}

// shown is how messages name the file at path (a repository path, as
// given to Read): C:\data\x.txt, not /C/data/x.txt, on Windows.
func (r *Reader) shown(path string) string { return r.rules().Display(path) }

func (r *Reader) rules() pathmap.Rules {
	if r.cfg.Rules != nil {
		return *r.cfg.Rules
	}
	return pathmap.Native
}

// fileFailed classifies an error of the file itself. An error that names
// another path than the file's own (a snapshot's) says which file it is.
func (r *Reader) fileFailed(path string, err error) tryResult {
	var pe *fs.PathError
	if !errors.As(err, &pe) || !r.isOwnPath(pe.Path, path) {
		err = fmt.Errorf("reading %s: %w", r.shown(path), err)
	}
	if lockViolation(err) {
		// retried, and deferred to the second pass, as a lock found by a probe
		return tryResult{state: stateLocked, detail: "locked: another program holds it without sharing", err: err}
	}
	return tryResult{state: stateFileFailed, reason: reasonFor(err), err: err}
}

// reasonFor maps an error to an outcome reason.
func reasonFor(err error) string {
	switch {
	case errors.Is(err, fs.ErrPermission):
		return outcome.ReasonPermission
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ESTALE), errors.Is(err, syscall.ELOOP), errors.Is(err, syscall.ENOTDIR):
		// gone, its NFS handle gone, or the path now leads through or to a
		// symlink (opens do not follow them): the file we listed is not there
		return outcome.ReasonVanished
	default:
		return outcome.ReasonIO
	}
}

// countingFile counts what attempt consumed and keeps the file's own read
// error apart from attempt's errors.
type countingFile struct {
	view.File
	n       int64
	sawEOF  bool
	readErr error
}

func (c *countingFile) Read(p []byte) (int, error) {
	n, err := c.File.Read(p)
	c.n += int64(n)
	switch {
	case err == io.EOF:
		c.sawEOF = true
	case err != nil && c.readErr == nil:
		c.readErr = err
	}
	return n, err
}

// isOwnPath tells whether errPath, the path of an error of the system,
// names the file at path: as given, or as the system spells it (C:\data\x
// or \\?\C:\data\x for /C/data/x).
func (r *Reader) isOwnPath(errPath, path string) bool {
	if errPath == path {
		return true
	}
	rules := r.rules()
	c, err := rules.Clean(errPath)
	return err == nil && rules.Equal(c, rules.Display(path))
}

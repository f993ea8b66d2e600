package archiver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// Attempt reads an open file completely into the repository and returns
// how many bytes it consumed. st is the open file's stat that the reader
// took before the read and compares with one after it, and the metadata
// recorded for the content; nil has the attempt take it (f.Stat). A
// FileReader may call it more than once.
type Attempt func(f view.File, st *view.Stat) (int64, error)

// ReadResult is a FileReader's verdict on one file.
type ReadResult struct {
	Outcome outcome.Outcome
	Reason  string
	Holder  string
	// Stored: the last attempt's content is to be kept.
	Stored bool
	// Deferred: try the file again at the end of the run.
	Deferred bool
	// Detail says what was seen ("size 4096 → 8192 while read"); it is
	// the reason of a changed file that has none.
	Detail string
	Err    error
}

// FileReader decides how a file that may be in use is read: once, with
// retries, skipped, or from a staged copy.
type FileReader interface {
	ReadFile(ctx context.Context, v view.View, path string, before *view.Stat, secondPass bool, attempt Attempt) ReadResult
}

// DirectReader reads each file once and compares the open file's metadata
// before and after: a file that changed while read is stored and classed
// changed. The baseline is the open file's own stat, not the walk's lstat:
// a clone or a replaced file is judged by what was really read.
type DirectReader struct{}

// ReadFile implements FileReader.
func (DirectReader) ReadFile(ctx context.Context, v view.View, p string, _ *view.Stat, _ bool, attempt Attempt) ReadResult {
	f, err := v.Open(p)
	if err != nil {
		return ReadResult{Outcome: outcome.Failed, Reason: classify(err), Err: err}
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return ReadResult{Outcome: outcome.Failed, Reason: classify(err), Err: err}
	}
	n, err := attempt(f, before)
	if err != nil {
		return ReadResult{Outcome: outcome.Failed, Reason: classify(err), Err: err}
	}
	after, err := f.Stat()
	if err != nil {
		return ReadResult{Outcome: outcome.Failed, Reason: classify(err), Err: err}
	}
	if Changed(before, after) || n != after.Size {
		return ReadResult{Outcome: outcome.Changed, Stored: true, Reason: describeChange(before, after, n)}
	}
	return ReadResult{Outcome: outcome.OK, Stored: true}
}

// Changed tells whether a file's metadata shows a change between two stats.
func Changed(before, after *view.Stat) bool {
	return before.Size != after.Size || !before.Mtime.Equal(after.Mtime) ||
		!before.Ctime.Equal(after.Ctime) || before.Ino != after.Ino
}

// describeChange says what differs between the stat a read started from
// and the one after it, of which read bytes were consumed, e.g. "size 10
// → 20, mtime changed while read".
func describeChange(before, after *view.Stat, read int64) string {
	if before.Ino != after.Ino || before.Dev != after.Dev {
		return "replaced while read"
	}
	var what []string
	if before.Size != after.Size {
		what = append(what, fmt.Sprintf("size %d → %d", before.Size, after.Size))
	}
	if !before.Mtime.Equal(after.Mtime) {
		what = append(what, "mtime")
	}
	if !before.Ctime.Equal(after.Ctime) {
		what = append(what, "ctime")
	}
	if len(what) == 0 {
		if read != after.Size {
			return fmt.Sprintf("read %d of %d bytes: written while read", read, after.Size)
		}
		return "changed while read"
	}
	return strings.Join(what, ", ") + " changed while read"
}

// changeReason is the reason to record for a file the reader classed
// changed: its own words, else what the file's metadata shows now against
// the open file's at the start of the read.
func (a *Archiver) changeReason(j *fileJob, res ReadResult) string {
	if res.Reason != "" {
		return res.Reason
	}
	if res.Detail != "" {
		return res.Detail
	}
	if j.openSt == nil {
		return "changed while read"
	}
	now, err := a.view.Lstat(j.path)
	if err != nil {
		return "changed while read, then removed"
	}
	return describeChange(j.openSt, now, j.read)
}

type fileJob struct {
	path       string
	st         *view.Stat
	old        *repo.Node
	fut        *future
	secondPass bool
	content    []repo.ID
	read       int64
	fromSnap   bool
	openSt     *view.Stat // the opened file's stat: what the content belongs to
}

type chunkJob struct {
	data []byte // from chunkBufs
	id   repo.ID
	err  error
	wg   *sync.WaitGroup
}

// unchangedContent returns the parent's content when the file did not change.
func (a *Archiver) unchangedContent(old *repo.Node, st *view.Stat) ([]repo.ID, bool) {
	// Device numbers differ between snapshots of the same data, so they are
	// not compared; inode, size and both times are.
	if old == nil || old.Type != repo.NodeFile || !old.Outcome.Whole() ||
		old.Size != uint64(st.Size) || old.Mtime != st.Mtime.UnixNano() ||
		old.Ctime != st.Ctime.UnixNano() || old.Inode != st.Ino {
		return nil, false
	}
	if !a.allKnown(old.Content) {
		return nil, false
	}
	return old.Content, true
}

// allKnown tells whether the repository still counts every blob as stored
// (a blob only a prune's marked packs hold may be deleted).
func (a *Archiver) allKnown(ids []repo.ID) bool {
	for _, id := range ids {
		if !a.repo.Known(id) {
			return false
		}
	}
	return true
}

func (a *Archiver) walkFile(p string, st *view.Stat, old *repo.Node) *future {
	a.stats.files.Add(1)
	a.stats.bytes.Add(st.Size)
	if content, ok := a.unchangedContent(old, st); ok {
		a.stats.filesUnchanged.Add(1)
		n := a.baseNode(p, st, old)
		n.Content = content
		n.Outcome = old.Outcome
		a.count(n.Outcome)
		a.opts.Progress.fileDone(st.Size)
		return ready(n)
	}
	f := newFuture()
	a.pending.Add(1)
	select {
	case a.fileJobs <- &fileJob{path: p, st: st, old: old, fut: f}:
	case <-a.ctx.Done():
		a.pending.Add(-1)
		f.resolve(nil)
	}
	return f
}

func (a *Archiver) fileWorker() {
	defer a.workersWG.Done()
	for j := range a.fileJobs {
		if a.ctx.Err() != nil {
			j.fut.resolve(nil)
			a.pending.Add(-1)
			continue
		}
		a.opts.Progress.setCurrent(j.path)
		a.processFile(j)
		a.pending.Add(-1)
	}
}

func (a *Archiver) processFile(j *fileJob) {
	var readErr error
	attempt := func(f view.File, st *view.Stat) (int64, error) {
		j.content, j.read = j.content[:0], 0
		j.fromSnap = a.opts.FromSnapshot != nil && a.opts.FromSnapshot(f)
		if st != nil {
			c := *st
			j.openSt = &c
		} else {
			j.openSt, _ = f.Stat()
		}
		err := a.readContent(f, j)
		if err != nil && readErr == nil {
			readErr = err
		}
		return j.read, err
	}
	res := a.opts.Reader.ReadFile(a.ctx, a.view, j.path, j.st, j.secondPass, attempt)
	if a.ctx.Err() != nil {
		j.fut.resolve(nil)
		return
	}
	if res.Deferred && !j.secondPass {
		a.defMu.Lock()
		a.deferred = append(a.deferred, j)
		a.defMu.Unlock()
		return
	}
	a.stats.bytesRead.Add(j.read)
	if res.Stored {
		a.stats.filesRead.Add(1)
		st := j.st
		if j.openSt != nil {
			st = j.openSt
		}
		n := a.baseNode(j.path, st, nil)
		n.Content = append([]repo.ID(nil), j.content...)
		n.Size = uint64(j.read)
		n.Outcome = res.Outcome
		if n.Outcome == outcome.OK && j.fromSnap {
			n.Outcome = outcome.OKSnapshot
		}
		if n.Outcome == outcome.Changed {
			res.Reason = a.changeReason(j, res)
		}
		if !n.Outcome.Whole() {
			n.Reason, n.Holder = res.Reason, res.Holder
			a.record(Problem{Path: j.path, Outcome: n.Outcome, Reason: res.Reason, Holder: res.Holder, Error: errString(res.Err)})
		}
		a.count(n.Outcome)
		a.opts.Progress.fileDone(j.st.Size)
		j.fut.resolve(n)
		return
	}
	// Not stored: keep the parent's version, marked stale, rather than
	// letting the file look deleted.
	o := res.Outcome
	if o.Whole() {
		o = outcome.Failed
	}
	// only a version that was really stored can be kept: a placeholder of a
	// file that failed before has no content to offer
	keepOld := j.old != nil && j.old.Type == repo.NodeFile && j.old.Outcome != outcome.Failed &&
		j.old.Outcome != outcome.SkippedOpen && (len(j.old.Content) > 0 || j.old.Size == 0) &&
		res.Reason != outcome.ReasonVanished && a.allKnown(j.old.Content)
	a.record(Problem{Path: j.path, Outcome: o, Reason: res.Reason, Holder: res.Holder, Error: errString(res.Err)})
	a.count(o)
	a.opts.Progress.fileDone(j.st.Size)
	switch {
	case keepOld:
		n := *j.old
		n.Outcome, n.Reason, n.Holder = outcome.Stale, res.Reason, res.Holder
		j.fut.resolve(&n)
	case res.Reason == outcome.ReasonVanished:
		j.fut.resolve(nil)
	default:
		// recorded without content so ls and restore can say it was there
		n := a.newNode(j.path, j.st, nil, false)
		n.Size = 0
		n.Outcome, n.Reason, n.Holder = o, res.Reason, res.Holder
		j.fut.resolve(n)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// repoError marks a failure to store, which ends the run.
type repoError struct{ err error }

func (e *repoError) Error() string { return e.err.Error() }
func (e *repoError) Unwrap() error { return e.err }

// readContent chunks and stores an open file. Small files (one chunk) are
// hashed and stored in this goroutine; larger ones hand their chunks to the
// blob workers so one big file still uses every core.
func (a *Archiver) readContent(f view.File, j *fileJob) error {
	if j.st.Size >= a.smallMax {
		return a.chunkStream(f, j)
	}
	buf := a.chunkBufs.Get(int(j.st.Size) + 1)
	defer a.chunkBufs.Put(buf)
	n, err := io.ReadFull(f, buf)
	switch {
	case err == nil:
		// grew while read: chunk it all, starting with what we have
		return a.chunkStream(io.MultiReader(bytes.NewReader(buf[:n]), f), j)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
	default:
		return err
	}
	j.read = int64(n)
	a.opts.Progress.bytesRead(int64(n))
	if n > 0 {
		id := a.repo.Hash(buf[:n])
		if _, err := a.repo.SaveBlob(a.ctx, repo.DataBlob, id, buf[:n]); err != nil {
			a.fail(fmt.Errorf("store %s: %w", j.path, err))
			return &repoError{err}
		}
		j.content = append(j.content, id)
	}
	return nil
}

func (a *Archiver) chunkStream(r io.Reader, j *fileJob) error {
	// as many large files at once as there are blob workers to take their
	// chunks: more would only hold buffers while waiting
	select {
	case a.chunkSem <- struct{}{}:
	case <-a.ctx.Done():
		return a.ctx.Err()
	}
	defer func() { <-a.chunkSem }()
	var ch *repo.Chunker
	select {
	case ch = <-a.chunkers:
	default:
		var err error
		if ch, err = a.repo.NewChunker(); err != nil {
			return err
		}
	}
	defer func() { a.chunkers <- ch }()
	ch.Reset(r)
	var (
		wg   sync.WaitGroup
		jobs []*chunkJob
	)
	var readErr error
	for {
		chunk, err := ch.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			readErr = err
			break
		}
		data := a.chunkBufs.Get(len(chunk))
		copy(data, chunk)
		cj := &chunkJob{data: data, wg: &wg}
		wg.Add(1)
		jobs = append(jobs, cj)
		select {
		case a.chunkJobs <- cj:
		case <-a.ctx.Done():
			wg.Done()
			readErr = a.ctx.Err()
		}
		if readErr != nil {
			break
		}
		j.read += int64(len(chunk))
		a.opts.Progress.bytesRead(int64(len(chunk)))
	}
	wg.Wait()
	if readErr != nil {
		return readErr
	}
	for _, cj := range jobs {
		if cj.err != nil {
			a.fail(fmt.Errorf("store %s: %w", j.path, cj.err))
			return &repoError{cj.err}
		}
		j.content = append(j.content, cj.id)
	}
	return nil
}

func (a *Archiver) blobWorker() {
	defer a.blobWG.Done()
	for cj := range a.chunkJobs {
		if err := a.ctx.Err(); err != nil {
			cj.err = err
		} else {
			cj.id = a.repo.Hash(cj.data)
			_, cj.err = a.repo.SaveBlob(a.ctx, repo.DataBlob, cj.id, cj.data)
		}
		a.chunkBufs.Put(cj.data)
		cj.data = nil // the file's job list lives until its last chunk is stored
		cj.wg.Done()
	}
}

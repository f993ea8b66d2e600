package archiver

import (
	"path"
	"sync/atomic"

	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// Progress holds live counters of a run; read them from any goroutine.
type Progress struct {
	FilesDone  atomic.Int64
	DirsDone   atomic.Int64
	BytesDone  atomic.Int64 // size of files done, read or not
	BytesRead  atomic.Int64 // file content read so far
	FilesTotal atomic.Int64 // from the scanner
	BytesTotal atomic.Int64
	ScanDone   atomic.Bool
	current    atomic.Value
}

func (p *Progress) fileDone(size int64) {
	p.FilesDone.Add(1)
	p.BytesDone.Add(size)
}

func (p *Progress) dirDone()            { p.DirsDone.Add(1) }
func (p *Progress) bytesRead(n int64)   { p.BytesRead.Add(n) }
func (p *Progress) setCurrent(s string) { p.current.Store(s) }

// Current is the file most recently started.
func (p *Progress) Current() string {
	s, _ := p.current.Load().(string)
	return s
}

// scan counts what the run will see, for the ETA. It reads only metadata.
func (a *Archiver) scan(roots []string) {
	var walk func(p string)
	walk = func(p string) {
		if a.ctx.Err() != nil {
			return
		}
		st, err := a.view.Lstat(p)
		if err != nil {
			return
		}
		if a.opts.Excludes.Excluded(p, st.Type == view.TypeDir) {
			return
		}
		switch st.Type {
		case view.TypeRegular:
			a.opts.Progress.FilesTotal.Add(1)
			a.opts.Progress.BytesTotal.Add(st.Size)
		case view.TypeDir:
			names, err := a.view.ReadDir(p)
			if err != nil {
				return
			}
			for _, n := range names {
				walk(path.Join(p, n))
			}
		default:
			a.opts.Progress.FilesTotal.Add(1)
		}
	}
	for _, r := range roots {
		walk(r)
	}
	a.opts.Progress.ScanDone.Store(true)
}

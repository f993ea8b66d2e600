package mount

import (
	"context"
	"sync"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// Pack windows: the blobs of small files backed up together lie near each
// other in a pack, and a read of a few hundred KiB costs about what a read
// of one small blob does (a disk seek, an S3 request). So a blob smaller
// than half a window is read with the aligned window of its pack that holds
// it, and the blobs found there later come from memory. Windows sit on a
// grid, so blobs met in any order share them.
const (
	windowSize = 256 << 10
	windowKeep = 32 // windows kept (8 MiB), most recent first
)

// Packs is what a window loader needs of a repository.
type Packs interface {
	LookupBlob(id repo.ID) (repo.BlobInfo, bool)
	LoadBlob(ctx context.Context, id repo.ID) ([]byte, error)
	Index() *repo.Index
	OpenPack(id repo.ID) *repo.PackReader
}

// WindowLoader loads blobs through windows of their packs.
type WindowLoader struct {
	r Packs

	mu      sync.Mutex
	windows []*window
	reads   int64 // pack reads, for tests
}

type window struct {
	pack  repo.ID
	start int64
	data  []byte
	open  *repo.PackReader
}

// NewWindowLoader reads blobs of r through pack windows.
func NewWindowLoader(r Packs) *WindowLoader { return &WindowLoader{r: r} }

// LoadBlob reads, decrypts, decompresses and verifies a blob.
func (w *WindowLoader) LoadBlob(ctx context.Context, id repo.ID) ([]byte, error) {
	bi, ok := w.r.LookupBlob(id)
	if !ok || bi.Length >= windowSize/2 {
		return w.r.LoadBlob(ctx, id) // the same error, or a blob worth its own read
	}
	start, end := int64(bi.Offset), int64(bi.Offset)+int64(bi.Length)
	win := w.find(bi.Pack, start, end)
	if win == nil {
		size, ok := w.r.Index().PackSize(bi.Pack)
		if !ok || size < end {
			return w.r.LoadBlob(ctx, id)
		}
		from := start - start%windowSize
		to := min(max(from+windowSize, end), size)
		pr := w.r.OpenPack(bi.Pack)
		data, err := pr.ReadRange(ctx, from, to-from)
		if err != nil {
			return nil, &repo.BlobError{ID: id, Pack: bi.Pack, Err: err}
		}
		win = &window{pack: bi.Pack, start: from, data: data, open: pr}
		w.add(win)
	}
	// Blob decrypts in place: it gets its own copy of the sealed bytes
	sealed := append([]byte(nil), win.data[start-win.start:end-win.start]...)
	return win.open.Blob(bi, sealed)
}

func (w *WindowLoader) find(pack repo.ID, start, end int64) *window {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, win := range w.windows {
		if win.pack == pack && start >= win.start && end <= win.start+int64(len(win.data)) {
			copy(w.windows[1:i+1], w.windows[:i])
			w.windows[0] = win
			return win
		}
	}
	return nil
}

func (w *WindowLoader) add(win *window) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reads++
	if len(w.windows) < windowKeep {
		w.windows = append(w.windows, nil)
	}
	copy(w.windows[1:], w.windows)
	w.windows[0] = win
}

// PackReads is the number of windows read.
func (w *WindowLoader) PackReads() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.reads
}

//go:build linux

package mount

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// Pushing small files into the page cache. A copy out of the mount reads
// every small file once, and each READ is a round trip through the kernel
// that waits for the mount to wake up and load a blob; on a busy machine
// that wait is most of the copy. So once a file of a directory is read,
// the mount loads the small files the reader will want next (in the order
// of their inode numbers: cp sorts a directory's entries by them) and
// hands their content to the kernel with FUSE's notify-store: the reader
// then finds them in the page cache and sends no READ. The content never
// changes, so the pages stay right for as long as the kernel keeps them;
// when it drops them, the next read asks the mount as before.
//
// A reader of one file (cat, an editor) gets at most pushLead of its
// neighbours pushed; a listing alone (ls, find) pushes nothing.
const (
	pushMaxFile = 1 << 20 // larger files come through the kernel's read-ahead
	// files pushed ahead of the last one a reader touched in a directory;
	// and at most this many bytes of them
	pushLead      = 64
	pushLeadBytes = 8 << 20
	pushWorkers   = 2
)

// pusher loads the queued files and stores them in the kernel's cache.
type pusher struct {
	fsys  *filesystem
	queue chan *fileNode
	off   atomic.Bool // the kernel does not take stores
	// files stored, for tests
	stored atomic.Int64
}

// fileNode.push states
const (
	pushNone   = iota
	pushQueued // waits for a worker
	pushDone   // stored, or read by the kernel itself, or given up
)

func newPusher(fsys *filesystem) *pusher {
	return &pusher{fsys: fsys, queue: make(chan *fileNode, 2*pushLead)}
}

// run serves the queue until ctx ends.
func (p *pusher) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range pushWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			var s Scratch
			for {
				select {
				case <-ctx.Done():
					return
				case f := <-p.queue:
					buf = p.push(ctx, f, buf, &s)
				}
			}
		}()
	}
	wg.Wait()
}

// push loads f's content into buf (grown as needed, returned for reuse)
// and stores it in the kernel's cache. Its blobs come from the cache when
// it holds them, else through the pack windows without being kept: the
// page cache keeps them now. Whatever fails here is left to the READ that
// follows, which reports it.
func (p *pusher) push(ctx context.Context, f *fileNode, buf []byte, s *Scratch) []byte {
	if !f.push.CompareAndSwap(pushQueued, pushDone) || p.off.Load() {
		return buf
	}
	c, err := f.contentMap()
	if err != nil {
		return buf
	}
	size := int(c.Size())
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	err = c.Fill(buf[:size], func(id repo.ID) ([]byte, error) {
		if data, ok := p.fsys.cache.Peek(id); ok {
			return data, nil
		}
		return p.fsys.windows.LoadBlobScratch(ctx, id, s)
	})
	if err != nil {
		return buf
	}
	switch errno := f.WriteCache(0, buf[:size]); errno {
	case 0:
		p.stored.Add(1)
	case syscall.ENOENT: // the kernel has forgotten the file
	default: // a kernel without notify-store, or the mount is ending
		p.off.Store(true)
	}
	return buf
}

// dirPush is what a directory has pushed: its small files in the order a
// copy reads them, and how many of them are queued.
type dirPush struct {
	files []*fileNode
	next  int
}

// touched is called when f, a file of d, is read or its attributes
// listed: the files after it are queued up to pushLead ahead. Nothing is
// pushed for a directory until one of its files is read.
func (d *treeDir) touched(f *fileNode, read bool) {
	p := d.fsys.pusher
	if p == nil || p.off.Load() {
		return
	}
	d.pushMu.Lock()
	defer d.pushMu.Unlock()
	if d.pushes == nil {
		if !read {
			return
		}
		d.pushes = d.planPush()
	}
	dp := d.pushes
	at := int(f.pushAt.Load()) // 1 + f's place in dp.files, 0 for none
	if at == 0 && dp.next == 0 {
		at = 1 // the first file read is not one of them: push from the start
	}
	var bytes int64
	for dp.next < len(dp.files) && dp.next < at+pushLead && bytes < pushLeadBytes {
		g := dp.files[dp.next]
		if g.push.CompareAndSwap(pushNone, pushQueued) {
			select {
			case p.queue <- g:
				bytes += int64(g.node.Size)
			default: // the workers are behind: try again at the next file
				g.push.Store(pushNone)
				return
			}
		}
		dp.next++
	}
}

// planPush lists the small files of d the kernel knows (those looked up),
// sorted by inode number.
func (d *treeDir) planPush() *dirPush {
	dp := &dirPush{}
	d.mu.Lock()
	t := d.loaded
	d.mu.Unlock()
	if t == nil {
		return dp
	}
	for _, n := range t.Nodes {
		if n.Size == 0 || n.Size > pushMaxFile {
			continue
		}
		ch := d.GetChild(n.Name)
		if ch == nil {
			continue
		}
		if f, ok := ch.Operations().(*fileNode); ok {
			dp.files = append(dp.files, f)
		}
	}
	slices.SortFunc(dp.files, func(a, b *fileNode) int {
		ia, ib := a.StableAttr().Ino, b.StableAttr().Ino
		switch {
		case ia < ib:
			return -1
		case ia > ib:
			return 1
		}
		return 0
	})
	for i, f := range dp.files {
		f.pushAt.Store(int32(i + 1))
	}
	return dp
}

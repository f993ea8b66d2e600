package restore

import (
	"cmp"
	"errors"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/stillpoint-backup/stillpoint/internal/bufs"
	"golang.org/x/sys/unix"
)

// A run of a file's content with at least directMin aligned bytes (the
// blobs of a big file that follow each other in a pack) is written past
// the page cache. The kernel would otherwise copy each byte into newly
// allocated cache pages (on a virtual machine that gives free memory back
// to its host, a fault in the host for each: 40% of a 4 GiB restore's CPU
// in perf), and hold gigabytes the machine's applications need until the
// disk has them. Blobs are cut by content, so neither their offsets in
// the file nor their addresses are aligned: the bulk is copied into an
// aligned buffer that stays hot in the CPU's caches, in pieces of
// directStage, and the unaligned edges go through the cache once the
// file is finished (directFile).
const (
	directMin   = 256 << 10
	directAlign = 4096
	directStage = 4 << 20
)

// directBuf is a writer's aligned buffer that the bulk of a run is copied
// into, and whether the target's file system refused direct I/O to it.
type directBuf struct {
	stage   []byte
	refused bool
}

// directFile is what the direct writes of one file share across writers.
//
// A direct write that extends a file, or (on ext4) one into blocks not yet
// allocated, holds the file's inode lock exclusively until the disk has
// it, and a buffered write waits for every direct one in flight: the
// writers of a big file would take turns, one request at the disk. So the
// file gets its size before its first direct write, on ext4 the blocks of
// each run are allocated (fallocate, only where data goes: holes stay
// holes) right before it is written, and the unaligned edges of the runs
// wait in memory until the file is finished (or edgesKept of them are).
type directFile struct {
	once    sync.Once
	sizeErr error
	alloc   atomic.Bool // allocate before each direct write (ext4)

	mu    sync.Mutex
	edges []edge
	kept  int // bytes in edges
}

// edge is an unaligned piece of a run, written when the file is finished.
type edge struct {
	off int64
	b   []byte
}

// writeRun writes the run of n bytes in bs to f, open as o, at off.
func (d *directBuf) writeRun(o *outFile, f *fileState, bs [][]byte, off, n int64) error {
	end := off + n
	from, to := alignUp(off), end&^(directAlign-1)
	if to-from < directMin || d.refused {
		return o.writeAt(bs, off)
	}
	df := &f.direct
	df.once.Do(func() { df.prepare(o, int64(f.node.Size)) })
	if df.sizeErr != nil {
		return df.sizeErr
	}
	err := d.writeDirect(o, df, bs, from-off, from, to)
	if errors.Is(err, unix.EINVAL) {
		// the file system takes no direct I/O, or not at this alignment
		d.refused = true
		err = o.writeAt(byteRange(bs, from-off, to-from), from)
	}
	if err != nil {
		return err
	}
	df.keep(off, byteRange(bs, 0, from-off))
	if df.keep(to, byteRange(bs, to-off, end-to)) {
		// so many that they are written now, not kept for the whole
		// of a file of a terabyte
		return df.writeEdges(o)
	}
	return nil
}

// prepare gives the file its size, and finds whether its blocks are to be
// allocated before each direct write.
func (df *directFile) prepare(o *outFile, size int64) {
	if err := unix.Ftruncate(o.fd, size); err != nil {
		df.sizeErr = err
		return
	}
	var st unix.Statfs_t
	df.alloc.Store(unix.Fstatfs(o.fd, &st) == nil && st.Type == unix.EXT4_SUPER_MAGIC)
}

// edgesKept bounds the bytes of edges a file keeps before they are
// written: about 256 runs, nearly 2 GiB of a big file. Tests lower it.
var edgesKept = 1 << 20

// keep copies the edge bs, to be written at off when the file is finished;
// it says whether the edges kept have reached edgesKept.
func (df *directFile) keep(off int64, bs [][]byte) (full bool) {
	var b []byte
	for _, p := range bs {
		b = append(b, p...)
	}
	if len(b) == 0 {
		return false
	}
	df.mu.Lock()
	defer df.mu.Unlock()
	df.edges = append(df.edges, edge{off, b})
	df.kept += len(b)
	return df.kept >= edgesKept
}

// writeEdges writes the edges kept, those that touch with one write.
func (df *directFile) writeEdges(o *outFile) error {
	df.mu.Lock()
	edges := df.edges
	df.edges, df.kept = nil, 0
	df.mu.Unlock()
	slices.SortFunc(edges, func(a, b edge) int { return cmp.Compare(a.off, b.off) })
	for i := 0; i < len(edges); {
		bs, j := [][]byte{edges[i].b}, i+1
		for next := edges[i].off + int64(len(edges[i].b)); j < len(edges) && edges[j].off == next; j++ {
			bs = append(bs, edges[j].b)
			next += int64(len(edges[j].b))
		}
		if err := o.writeAt(bs, edges[i].off); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// writeDirect writes file offsets [from, to), both aligned, from bs (whose
// byte skip is at from) with O_DIRECT set on o for as long.
func (d *directBuf) writeDirect(o *outFile, df *directFile, bs [][]byte, skip, from, to int64) error {
	if d.stage == nil {
		d.stage, _ = bufs.Placed(nil, 0, directStage, directAlign)
	}
	flags, err := unix.FcntlInt(uintptr(o.fd), unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	if err := setFlags(o.fd, flags|unix.O_DIRECT); err != nil {
		return err
	}
	if df.alloc.Load() {
		err = unix.Fallocate(o.fd, 0, from, to-from)
		if errors.Is(err, unix.EOPNOTSUPP) {
			df.alloc.Store(false)
			err = nil
		}
	}
	for pos := from; pos < to && err == nil; {
		n := min(int64(directStage), to-pos)
		copyRange(d.stage[:n], bs, skip+pos-from)
		err = o.writeAt([][]byte{d.stage[:n]}, pos)
		pos += n
	}
	if cerr := setFlags(o.fd, flags); err == nil {
		err = cerr
	}
	return err
}

// setFlags sets the file status flags of fd; tests replace it to see a
// file system refuse O_DIRECT.
var setFlags = func(fd, flags int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFL, flags)
	return err
}

func alignUp(n int64) int64 { return (n + directAlign - 1) &^ (directAlign - 1) }

// byteRange is the slices of bs that hold bytes [from, from+n) of their
// concatenation.
func byteRange(bs [][]byte, from, n int64) [][]byte {
	var out [][]byte
	for _, b := range bs {
		if n <= 0 {
			break
		}
		if from >= int64(len(b)) {
			from -= int64(len(b))
			continue
		}
		part := b[from:min(int64(len(b)), from+n)]
		out = append(out, part)
		n -= int64(len(part))
		from = 0
	}
	return out
}

// copyRange fills dst with the bytes of bs's concatenation from offset from on.
func copyRange(dst []byte, bs [][]byte, from int64) {
	for _, b := range byteRange(bs, from, int64(len(dst))) {
		dst = dst[copy(dst, b):]
	}
}

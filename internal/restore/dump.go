package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/stillpoint-backup/stillpoint/internal/bufs"
	"github.com/stillpoint-backup/stillpoint/internal/inspect"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// Dump writes one file of a snapshot to a stream, or a directory as an
// archive, without touching the filesystem. Content is read as restore
// reads it, by pack rather than by file: the blobs of many consecutive
// files (or many chunks of one large file) form a batch, the blobs of one
// batch that lie close together in a pack are read with one request, and
// the requests of a batch run in parallel while the previous batch is
// written. Every blob is verified against its id.

// DumpOptions configure a dump.
type DumpOptions struct {
	// Archive is "tar" (the default) or "zip"; it applies to directories.
	Archive string
	// Force dumps a single file whose stored content is not whole
	// (changed while read, or an older version kept): without it such a
	// file is refused with a *NotWholeError.
	Force bool
	// OnEvent is called for warnings and errors about single paths; may be nil.
	OnEvent func(Event)
}

// DumpResult sums up a dump.
type DumpResult struct {
	Files, Dirs, Others, Bytes int64
	// NotWhole: files written whose stored content is not whole.
	NotWhole int64
	// Skipped: entries left out (not stored, or a kind the archive cannot hold).
	Skipped int64
	// Errors: files whose content could not be read (in an archive, the
	// damaged part is written as zeros).
	Errors int64
}

// NotWholeError refuses a single file that was not backed up whole.
type NotWholeError struct {
	Path    string
	Outcome outcome.Outcome
	Reason  string
}

func (e *NotWholeError) Error() string {
	return fmt.Sprintf("%s was not backed up whole (%s): %s; --force dumps the stored content anyway", e.Path, e.Outcome, notWholeText(e.Outcome, e.Reason))
}

// notWholeText says what the stored content of a file that is not whole is.
func notWholeText(o outcome.Outcome, reason string) string {
	switch o {
	case outcome.Changed:
		return "it changed while it was read, so the content may be inconsistent"
	case outcome.Stale, outcome.Failed, outcome.SkippedOpen:
		if reason != "" {
			return fmt.Sprintf("it could not be read in this backup (%s); the stored content is an older version", reason)
		}
		return "it could not be read in this backup; the stored content is an older version"
	}
	return "the stored content is not a state the file had"
}

// ErrNotFile means DumpFile was given something that is not a regular file.
var ErrNotFile = errors.New("not a regular file")

// DumpFile writes the content of the regular file n (at original path p)
// to w. A file that is not whole is refused unless opts.Force.
func DumpFile(ctx context.Context, r Repo, p string, n *repo.Node, w io.Writer, opts DumpOptions) (*DumpResult, error) {
	if n.Type != repo.NodeFile {
		return nil, fmt.Errorf("%s is a %s: %w", p, n.Type, ErrNotFile)
	}
	res := &DumpResult{}
	if notStoredNode(n) {
		return res, fmt.Errorf("%s was not backed up (%s: %s): there is no content to dump", p, n.Outcome, n.Reason)
	}
	if !n.Outcome.Whole() {
		if !opts.Force {
			return res, &NotWholeError{Path: p, Outcome: n.Outcome, Reason: n.Reason}
		}
		res.NotWhole++
		if opts.OnEvent != nil {
			opts.OnEvent(Event{Path: p, Kind: "warning", Message: fmt.Sprintf("dumped, but it was not backed up whole (%s): %s", n.Outcome, notWholeText(n.Outcome, n.Reason))})
		}
	}
	e, err := newDumpEntry(r, p, n)
	if err != nil {
		return res, err
	}
	d := newDumper(ctx, r, &rawSink{w: w}, opts, res)
	d.strict = true
	err = d.run(func(add func(*dumpEntry) error) error { return add(e) })
	if err == nil {
		res.Files++
		res.Bytes += int64(n.Size)
	}
	return res, err
}

// DumpArchive writes the directory n at original path p, and everything
// below it, to w as an archive (opts.Archive). Entries are named by their
// original paths without the leading slash, as a restore lays them out
// below its target.
func DumpArchive(ctx context.Context, r Repo, p string, n *repo.Node, w io.Writer, opts DumpOptions) (*DumpResult, error) {
	res := &DumpResult{}
	var sink archiveSink
	switch opts.Archive {
	case "", "tar":
		sink = newTarSink(w)
	case "zip":
		sink = newZipSink(w)
	default:
		return nil, fmt.Errorf("unknown archive format %q (want tar or zip)", opts.Archive)
	}
	d := newDumper(ctx, r, sink, opts, res)
	links := map[[2]uint64]string{}
	err := d.run(func(add func(*dumpEntry) error) error {
		visit := func(p string, n *repo.Node) error {
			e, err := d.entry(p, n, links, sink)
			if err != nil || e == nil {
				return err
			}
			return add(e)
		}
		if n.Type != repo.NodeDir {
			return visit(p, n)
		}
		if p != "/" {
			if err := visit(p, n); err != nil {
				return err
			}
		}
		if n.Subtree.IsNull() {
			return nil
		}
		return inspect.NewWalker(r).Walk(d.ctx, p, n.Subtree, inspect.Visitor{Node: visit,
			TreeError: func(te *inspect.TreeError) error {
				d.count(func(r *DumpResult) { r.Errors++ })
				d.event(Event{Path: te.Path, Kind: "error", Message: fmt.Sprintf("directory cannot be read, its entries are not dumped: %v", te.Err)})
				return nil
			}})
	})
	if cerr := sink.close(); err == nil {
		err = cerr
	}
	return res, err
}

// entry prepares the archive entry of one node, or returns nil when the
// node is left out.
func (d *dumper) entry(p string, n *repo.Node, links map[[2]uint64]string, sink archiveSink) (*dumpEntry, error) {
	if !sink.holds(n.Type) {
		d.skip(p, fmt.Sprintf("not dumped: a %s archive cannot hold a %s", sink.name(), n.Type))
		return nil, nil
	}
	switch n.Type {
	case repo.NodeDir:
		d.count(func(r *DumpResult) { r.Dirs++ })
		return &dumpEntry{path: p, node: n}, nil
	case repo.NodeFile:
	default:
		d.count(func(r *DumpResult) { r.Others++ })
		return &dumpEntry{path: p, node: n}, nil
	}
	if notStoredNode(n) {
		d.skip(p, fmt.Sprintf("not dumped: it was not backed up (%s: %s)", n.Outcome, n.Reason))
		return nil, nil
	}
	if n.Links > 1 && sink.hardLinks() {
		key := [2]uint64{n.Device, n.Inode}
		if first, ok := links[key]; ok {
			d.count(func(r *DumpResult) { r.Files++ })
			return &dumpEntry{path: p, node: n, linkTo: first}, nil
		}
		links[key] = p
	}
	e, err := newDumpEntry(d.r, p, n)
	if err != nil {
		d.count(func(r *DumpResult) { r.Errors++ })
		d.event(Event{Path: p, Kind: "error", Message: err.Error() + "; not dumped"})
		return nil, nil
	}
	if !n.Outcome.Whole() {
		d.count(func(r *DumpResult) { r.NotWhole++ })
		d.event(Event{Path: p, Kind: "warning", Message: fmt.Sprintf("dumped, but it was not backed up whole (%s): %s", n.Outcome, notWholeText(n.Outcome, n.Reason))})
	}
	d.count(func(r *DumpResult) { r.Files++ })
	d.count(func(r *DumpResult) { r.Bytes += int64(n.Size) })
	return e, nil
}

func (d *dumper) count(fn func(*DumpResult)) {
	d.mu.Lock()
	fn(d.res)
	d.mu.Unlock()
}

func (d *dumper) skip(p, msg string) {
	d.count(func(r *DumpResult) { r.Skipped++ })
	d.event(Event{Path: p, Kind: "warning", Message: msg})
}

func (d *dumper) event(e Event) {
	if d.opts.OnEvent != nil {
		d.opts.OnEvent(e)
	}
}

// notStoredNode tells whether a file has no stored content at all: it
// failed or was skipped before any version was kept. Restore skips it too.
func notStoredNode(n *repo.Node) bool {
	return n.Type == repo.NodeFile && (n.Outcome == outcome.Failed || n.Outcome == outcome.SkippedOpen) && len(n.Content) == 0 && n.Size == 0
}

// dumpEntry is one path to write, with where its content is.
type dumpEntry struct {
	path   string
	node   *repo.Node
	blobs  []repo.BlobInfo
	linkTo string // a hard link to this earlier entry
}

// newDumpEntry looks up the content of a file; a blob the index does not
// know, or sizes that do not add up, mean it cannot be dumped.
func newDumpEntry(r Repo, p string, n *repo.Node) (*dumpEntry, error) {
	e := &dumpEntry{path: p, node: n, blobs: make([]repo.BlobInfo, 0, len(n.Content))}
	var size uint64
	for _, id := range n.Content {
		bi, ok := r.LookupBlob(id)
		if !ok {
			return nil, fmt.Errorf("%s: content damaged: blob %s is not in the index (run `stillpoint check`)", p, id.Short())
		}
		e.blobs = append(e.blobs, bi)
		size += uint64(bi.RawLen)
	}
	if size != n.Size {
		return nil, fmt.Errorf("%s: content is %d bytes, the snapshot says %d", p, size, n.Size)
	}
	return e, nil
}

// Batch bounds: 8 MiB of plaintext (or 8192 blobs) per batch, three
// batches at most (one being filled, one being read, one being written),
// so a dump holds some 50 MiB of buffers whatever it dumps; larger batches
// were not faster.
const (
	dumpBatchBytes = 8 << 20
	dumpBatchBlobs = 8192
	dumpBatches    = 3
	// blobs of one pack this close are read with one request: reading a
	// gap costs less than another request (a backup fills a pack with the
	// blobs of several files at once, so those of one file are rarely
	// adjacent, but close)
	dumpMaxGap = 64 << 10
	// but a request reads at most this much (unless one blob is larger),
	// so the blobs of one large file are read and decrypted by several
	// workers rather than one
	dumpMaxRun = 2 << 20
)

// piece is the part of an entry's content in one batch.
type piece struct {
	e           *dumpEntry
	first, last bool  // the entry begins / ends in this batch
	blobs       []int // into batch.blobs, in file order
}

type batchBlob struct {
	bi    repo.BlobInfo
	plain []byte
	err   error
}

type batch struct {
	pieces []piece
	blobs  []batchBlob
	byID   map[repo.ID]int
	raw    int64
	// reused between batches; spans lies in spansBuf at a block's start
	spans, spansBuf, arena []byte
	order                  []int
}

func (b *batch) reset() {
	b.pieces = b.pieces[:0]
	b.blobs = b.blobs[:0]
	clear(b.byID)
	b.raw = 0
}

// dumpBatchLimit is dumpBatchBytes but for tests.
var dumpBatchLimit int64 = dumpBatchBytes

func (b *batch) full() bool { return b.raw >= dumpBatchLimit || len(b.blobs) >= dumpBatchBlobs }

// dumper runs the pipeline: the producer (a walk) fills batches, the
// loader reads their blobs, the caller's goroutine writes them in order.
type dumper struct {
	ctx     context.Context
	cancel  context.CancelFunc
	r       Repo
	sink    sink
	opts    DumpOptions
	res     *DumpResult
	strict  bool // a damaged blob ends the dump (a single file to a stream)
	workers int
	mu      sync.Mutex // res: the producer and the writer both count

	free chan *batch
}

func newDumper(ctx context.Context, r Repo, s sink, opts DumpOptions, res *DumpResult) *dumper {
	ctx, cancel := context.WithCancel(ctx)
	d := &dumper{ctx: ctx, cancel: cancel, r: r, sink: s, opts: opts, res: res,
		// reads wait on the storage and decrypting wants the cores: two per core
		workers: 2 * runtime.GOMAXPROCS(0), free: make(chan *batch, dumpBatches)}
	for range dumpBatches {
		d.free <- &batch{byID: map[repo.ID]int{}}
	}
	return d
}

// run writes what produce adds.
func (d *dumper) run(produce func(add func(*dumpEntry) error) error) error {
	defer d.cancel()
	toLoad := make(chan *batch, dumpBatches)
	toWrite := make(chan *batch, dumpBatches)
	var prodErr error
	go func() {
		defer close(toLoad)
		cur := <-d.free
		cur.reset()
		flush := func() error {
			toLoad <- cur
			select {
			case cur = <-d.free:
			case <-d.ctx.Done():
				cur = nil
				return d.ctx.Err()
			}
			cur.reset()
			return nil
		}
		add := func(e *dumpEntry) error {
			if err := d.ctx.Err(); err != nil {
				return err
			}
			pc := piece{e: e, first: true}
			for _, bi := range e.blobs {
				if cur.full() {
					cur.pieces = append(cur.pieces, pc)
					if err := flush(); err != nil {
						return err
					}
					pc = piece{e: e}
				}
				i, ok := cur.byID[bi.ID]
				if !ok {
					i = len(cur.blobs)
					cur.byID[bi.ID] = i
					cur.blobs = append(cur.blobs, batchBlob{bi: bi})
					cur.raw += int64(bi.RawLen)
				}
				pc.blobs = append(pc.blobs, i)
			}
			pc.last = true
			cur.pieces = append(cur.pieces, pc)
			if cur.full() {
				return flush()
			}
			return nil
		}
		prodErr = produce(add)
		if cur != nil && len(cur.pieces) > 0 {
			toLoad <- cur
		}
	}()
	go func() {
		defer close(toWrite)
		for b := range toLoad {
			d.load(b)
			toWrite <- b
		}
	}()
	var werr error
	for b := range toWrite {
		if werr == nil {
			if werr = d.write(b); werr != nil {
				d.cancel()
			}
		}
		d.free <- b
	}
	if werr != nil {
		return werr
	}
	if prodErr != nil {
		return prodErr
	}
	return nil
}

// run of blobs of one pack read with one request
type readRun struct {
	pack       repo.ID
	start, end int64
	spanOff    int
	blobs      []int
}

// load reads and decrypts every blob of b.
func (d *dumper) load(b *batch) {
	if len(b.blobs) == 0 || d.ctx.Err() != nil {
		for i := range b.blobs {
			b.blobs[i].err = d.ctx.Err()
		}
		return
	}
	b.order = b.order[:0]
	for i := range b.blobs {
		b.order = append(b.order, i)
	}
	sort.Slice(b.order, func(x, y int) bool {
		bx, by := &b.blobs[b.order[x]].bi, &b.blobs[b.order[y]].bi
		if c := bytes.Compare(bx.Pack[:], by.Pack[:]); c != 0 {
			return c < 0
		}
		return bx.Offset < by.Offset
	})
	var runs []readRun
	spanTotal, arenaTotal := 0, 0
	for _, i := range b.order {
		bi := &b.blobs[i].bi
		off, end := int64(bi.Offset), int64(bi.Offset)+int64(bi.Length)
		if n := len(runs); n > 0 && runs[n-1].pack == bi.Pack && off >= runs[n-1].end && off-runs[n-1].end <= dumpMaxGap && end-runs[n-1].start <= dumpMaxRun {
			spanTotal += int(end - runs[n-1].end)
			runs[n-1].end = end
			runs[n-1].blobs = append(runs[n-1].blobs, i)
		} else {
			// each run lies at its offset's place within a block of the
			// aligned spans, so that a local repository reads it past the
			// page cache (repo.ReadAlign)
			spanTotal += bufs.PadTo(int64(spanTotal), off, repo.ReadAlign)
			runs = append(runs, readRun{pack: bi.Pack, start: off, end: end, spanOff: spanTotal, blobs: []int{i}})
			spanTotal += int(end - off)
		}
		if bi.Compressed() {
			arenaTotal += repo.DecompressBuf(int(bi.RawLen))
		}
	}
	b.spans, b.spansBuf = bufs.Placed(b.spansBuf, 0, spanTotal, repo.ReadAlign)
	b.arena = bufs.Grow(b.arena, arenaTotal)
	// each blob may decompress into its own region of the arena
	arenaOff := make([]int, len(b.blobs))
	off := 0
	for _, i := range b.order {
		arenaOff[i] = off
		if b.blobs[i].bi.Compressed() {
			off += repo.DecompressBuf(int(b.blobs[i].bi.RawLen))
		}
	}
	work := make(chan *readRun)
	var wg sync.WaitGroup
	for range min(d.workers, len(runs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rr := range work {
				d.readRun(b, rr, arenaOff)
			}
		}()
	}
	for i := range runs {
		work <- &runs[i]
	}
	close(work)
	wg.Wait()
}

func (d *dumper) readRun(b *batch, rr *readRun, arenaOff []int) {
	pr := d.r.OpenPack(rr.pack)
	span := b.spans[rr.spanOff : rr.spanOff+int(rr.end-rr.start)]
	spanErr := pr.ReadRangeInto(d.ctx, rr.start, span)
	for _, i := range rr.blobs {
		bb := &b.blobs[i]
		bi := bb.bi
		var dst []byte // an uncompressed blob is decrypted in place
		if bi.Compressed() {
			dst = b.arena[arenaOff[i] : arenaOff[i]+repo.DecompressBuf(int(bi.RawLen))]
		}
		sealed := span[int64(bi.Offset)-rr.start : int64(bi.Offset)-rr.start+int64(bi.Length)]
		if spanErr != nil {
			// what is intact still dumps: read this blob alone
			s, err := pr.ReadRange(d.ctx, int64(bi.Offset), int64(bi.Length))
			if err != nil {
				bb.err = fmt.Errorf("pack %s cannot be read: %w", bi.Pack.Short(), err)
				continue
			}
			sealed = s
		}
		bb.plain, bb.err = pr.BlobInto(bi, sealed, dst)
	}
}

// write writes the pieces of b in order.
func (d *dumper) write(b *batch) error {
	for _, pc := range b.pieces {
		e := pc.e
		if pc.first {
			if err := d.sink.begin(e); err != nil {
				return err
			}
		}
		for _, i := range pc.blobs {
			bb := &b.blobs[i]
			data := bb.plain
			if bb.err != nil {
				if d.strict || d.ctx.Err() != nil {
					if d.ctx.Err() != nil {
						return d.ctx.Err()
					}
					return fmt.Errorf("%s: content damaged: %w", e.path, bb.err)
				}
				d.count(func(r *DumpResult) { r.Errors++ })
				d.event(Event{Path: e.path, Kind: "error", Message: fmt.Sprintf("content damaged, %d bytes written as zeros: %v", bb.bi.RawLen, bb.err)})
				data = make([]byte, bb.bi.RawLen)
			}
			if err := d.sink.write(data); err != nil {
				return err
			}
		}
		if pc.last {
			if err := d.sink.end(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// sink is where entries go.
type sink interface {
	begin(e *dumpEntry) error
	write(p []byte) error
	end(e *dumpEntry) error
}

type archiveSink interface {
	sink
	name() string
	holds(t repo.NodeType) bool
	hardLinks() bool
	close() error
}

// rawSink writes one file's content.
type rawSink struct{ w io.Writer }

func (s *rawSink) begin(*dumpEntry) error { return nil }
func (s *rawSink) end(*dumpEntry) error   { return nil }
func (s *rawSink) write(p []byte) error {
	_, err := s.w.Write(p)
	return err
}

// archiveName is an entry's name: its original path without the leading slash.
func archiveName(p string, dir bool) string {
	name := strings.TrimPrefix(path.Clean(p), "/")
	if dir {
		name += "/"
	}
	return name
}

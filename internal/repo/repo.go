package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/bufs"
	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
)

// Repository is an open repository.
type Repository struct {
	be     backend.Backend
	cfg    *Config
	key    *MasterKey
	hasher *Hasher
	comp   *compressor
	index  *Index

	indexProblems  []*IndexLoadError
	onIndexProblem func(*IndexLoadError)
	marks          []*Mark          // prune marks read with the index
	markProblems   []*MarkLoadError // marks that could not be read
	// viewPending: opened with ViewAtLock, the marks and the index are
	// read by the first Lock
	viewPending bool

	// writing
	writeOnce  sync.Once
	packers    map[BlobType]chan *packWriter
	inflight   sync.Map // ID -> struct{}: blobs added but not yet indexed
	uploads    chan *packWriter
	uploadWG   sync.WaitGroup
	errMu      sync.Mutex
	writeErr   error
	pendingMu  sync.Mutex
	pending    []packIndex // uploaded packs not yet in an index file
	stats      WriteStats
	compBufs   *bufs.Classes // compression output
	packBufs   *bufs.List    // uploaded data packs' buffers
	indexEvery int

	lost atomic.Pointer[error] // set when a lock of ours could not be renewed (lock.go)
}

// WriteStats counts what was added to the repository.
type WriteStats struct {
	Blobs       atomic.Int64
	DataAdded   atomic.Int64 // plaintext bytes of new blobs
	StoredAdded atomic.Int64 // bytes written to packs
	Packs       atomic.Int64
}

// Init creates a new repository in be.
func Init(ctx context.Context, be backend.Backend, cred Credential, cfg Config) (*Repository, error) {
	if _, err := be.Stat(ctx, backend.Handle{Kind: backend.Config, Name: "config"}); err == nil {
		return nil, fmt.Errorf("%s already holds a repository", be.Location())
	}
	if cfg.Immutable != nil {
		if err := checkObjectLock(ctx, be, cfg.Immutable); err != nil {
			return nil, err
		}
		// the key and the config too; and Create's probe is then removed
		// with its versions, not hidden behind a delete marker
		retainWrites(be, &cfg)
	}
	if c, ok := be.(backend.Creator); ok {
		if err := c.Create(ctx); err != nil {
			return nil, fmt.Errorf("create repository at %s: %w", be.Location(), err)
		}
	}
	cfg.ID = NewRandomID().String()
	cfg.Version = formatVersion
	mk := newMasterKey()
	e, err := newKeyEntry(cred, mk)
	if err != nil {
		return nil, err
	}
	if _, err := saveKey(ctx, be, e); err != nil {
		return nil, fmt.Errorf("save key: %w", err)
	}
	data, _ := json.MarshalIndent(cfg, "", "  ")
	// config last: a repository without it is not a repository, so a killed
	// init can simply be run again.
	if err := be.Save(ctx, backend.Handle{Kind: backend.Config, Name: "config"}, data); err != nil {
		return nil, fmt.Errorf("save config: %w", err)
	}
	return newRepository(be, &cfg, mk)
}

// Exists tells whether be holds a repository.
func Exists(ctx context.Context, be backend.Backend) (bool, error) {
	_, err := be.Stat(ctx, backend.Handle{Kind: backend.Config, Name: "config"})
	switch {
	case err == nil:
		return true, nil
	case backend.IsNotFound(err):
		return false, nil
	case isFileInTheWay(err):
		return false, noRepository(be, err)
	}
	return false, err
}

// ReadConfig reads the plaintext config without a key.
func ReadConfig(ctx context.Context, be backend.Backend) (*Config, error) {
	data, err := backend.ReadAll(ctx, be, backend.Handle{Kind: backend.Config, Name: "config"})
	if err != nil {
		if backend.IsNotFound(err) || isFileInTheWay(err) {
			return nil, noRepository(be, err)
		}
		return nil, err
	}
	return parseConfig(data)
}

// isFileInTheWay tells whether err says the location is a file where the
// repository's directory should be.
func isFileInTheWay(err error) bool { return errors.Is(err, syscall.ENOTDIR) }

// ErrNoRepository is what ReadConfig's error wraps when the location
// holds no config file, so a repository may be created there.
var ErrNoRepository = errors.New("no stillpoint repository")

// noRepository says why be holds no repository, and how to make one.
func noRepository(be backend.Backend, err error) error {
	if isFileInTheWay(err) {
		return fmt.Errorf("%s is a file, not a repository: --repo names a repository's directory (`stillpoint init --repo DIR` creates one)", be.Location())
	}
	return fmt.Errorf("%w at %s (there is no config file): `stillpoint init --repo DIR` creates one in a new or empty directory", ErrNoRepository, be.Location())
}

// Open opens an existing repository and loads its index.
func Open(ctx context.Context, be backend.Backend, cred Credential) (*Repository, error) {
	return OpenWith(ctx, be, cred, OpenOptions{})
}

// OpenOptions say what OpenWith may skip.
type OpenOptions struct {
	// Config is the repository's config when the caller has read it
	// (ReadConfig): it is not read again.
	Config *Config
	// ViewAtLock leaves the prune marks and the index unread: the Lock the
	// caller must take before it reads or writes a blob reads them, once
	// the lock is visible (docs/format.md, Prune). It saves listing them
	// twice. Until then the index is empty and IndexProblems says nothing;
	// the index files that Lock cannot read are told as notes (OnNote).
	ViewAtLock bool
}

// OpenWith opens an existing repository as o says.
func OpenWith(ctx context.Context, be backend.Backend, cred Credential, o OpenOptions) (*Repository, error) {
	cfg := o.Config
	if cfg == nil {
		var err error
		if cfg, err = ReadConfig(ctx, be); err != nil {
			return nil, err
		}
	}
	mk, err := openMasterKey(ctx, be, cred)
	if err != nil {
		return nil, err
	}
	r, err := newRepository(be, cfg, mk)
	if err != nil {
		return nil, err
	}
	if o.ViewAtLock {
		r.viewPending = true
		return r, nil
	}
	// marks first, so that blobs are located in unmarked packs (Prune in
	// docs/format.md); Lock reads both again once the lock is visible
	if err := r.loadMarks(ctx); err != nil {
		return nil, err
	}
	bad, err := r.LoadIndex(ctx)
	if err != nil {
		return nil, err
	}
	r.indexProblems = bad
	return r, nil
}

// IndexProblems lists the index files Open could not read. Their blobs
// look missing until `check` has named the damage.
func (r *Repository) IndexProblems() []*IndexLoadError { return r.indexProblems }

// OnIndexProblem sets what is told of a damaged index file found once the
// view is read at the lock (OpenOptions.ViewAtLock), where IndexProblems
// was still empty for the caller; without it the problem is a note.
func (r *Repository) OnIndexProblem(fn func(*IndexLoadError)) { r.onIndexProblem = fn }

// AddKey adds another way to open the repository.
func (r *Repository) AddKey(ctx context.Context, cred Credential) error {
	e, err := newKeyEntry(cred, r.key)
	if err != nil {
		return err
	}
	_, err = saveKey(ctx, r.be, e)
	return err
}

func newRepository(be backend.Backend, cfg *Config, mk *MasterKey) (*Repository, error) {
	comp, err := newCompressor(cfg.Compression)
	if err != nil {
		return nil, err
	}
	retainWrites(be, cfg)
	r := &Repository{be: be, cfg: cfg, key: mk, comp: comp, index: NewIndex(), indexEvery: 32, hasher: newHasher(mk.ID),
		// per core, the output of one chunk of the largest size and of two
		// small files (the callers of SaveBlob that compress at once)
		compBufs: bufs.NewClasses(64<<10, compressBound(cfg.Chunker.Max),
			runtime.GOMAXPROCS(0)*(compressBound(cfg.Chunker.Max)+2*compressBound(cfg.Chunker.Min))),
		packBufs: bufs.NewList(uploadWorkers + 2),
	}
	if _, err := r.NewChunker(); err != nil {
		return nil, fmt.Errorf("repository chunker %s (%d/%d/%d): %w: this stillpoint cannot write to it",
			cfg.Chunker.Algorithm, cfg.Chunker.Min, cfg.Chunker.Avg, cfg.Chunker.Max, err)
	}
	return r, nil
}

// Config returns the repository's config.
func (r *Repository) Config() Config { return *r.cfg }

// Backend returns the storage.
func (r *Repository) Backend() backend.Backend { return r.be }

// Index returns the in-memory index.
func (r *Repository) Index() *Index { return r.index }

// Hash returns the id of a blob's content.
func (r *Repository) Hash(data []byte) ID { return r.hasher.Sum(data) }

// Stats returns the counters of what this process added.
func (r *Repository) Stats() *WriteStats { return &r.stats }

// SetCompression changes the compression used for new blobs in this process.
func (r *Repository) SetCompression(name string) error {
	c, err := newCompressor(name)
	if err != nil {
		return err
	}
	r.comp = c
	return nil
}

// IndexLoadError names an index file that could not be read.
type IndexLoadError struct {
	Name string
	Err  error
}

func (e *IndexLoadError) Error() string { return fmt.Sprintf("index/%s: %v", e.Name, e.Err) }

// LoadIndex reads every index file not loaded yet. Damaged index files
// are skipped and returned, so the blobs of the others stay readable. An
// index file that is gone by the time it is read was replaced by a prune,
// which writes the replacement first: the folder is listed again.
func (r *Repository) LoadIndex(ctx context.Context) ([]*IndexLoadError, error) {
	return r.loadIndex(ctx, nil, false)
}

// listIndex lists index/.
func (r *Repository) listIndex(ctx context.Context) ([]backend.FileInfo, error) {
	var out []backend.FileInfo
	if err := r.be.List(ctx, backend.Indexes, func(fi backend.FileInfo) error {
		out = append(out, fi)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list index files: %w", err)
	}
	return out, nil
}

// loadIndex is LoadIndex; with listed, its first round takes first, a
// listing of index/ the caller has just made, rather than list again.
func (r *Repository) loadIndex(ctx context.Context, first []backend.FileInfo, listed bool) ([]*IndexLoadError, error) {
	var bad []*IndexLoadError
	for round := 0; ; round++ {
		listing := first
		if !listed || round > 0 {
			var err error
			if listing, err = r.listIndex(ctx); err != nil {
				return nil, err
			}
		}
		var (
			names []string
			sizes = map[string]int64{}
			total int64
		)
		for _, fi := range listing {
			if !r.index.hasFile(fi.Name) {
				names = append(names, fi.Name)
				sizes[fi.Name] = fi.Size
				total += fi.Size
			}
		}
		// an index entry takes about 38 bytes of an index file
		r.index.reserve(int(total / 38))
		b, gone := r.loadIndexFiles(ctx, names, sizes)
		bad = append(bad, b...)
		if !gone || round == 10 || ctx.Err() != nil {
			return bad, ctx.Err()
		}
	}
}

// indexLoadBudget bounds the bytes of index files being decoded at once
// (one file may be bigger): memory for the index, not for its files.
const indexLoadBudget = 32 << 20

// loadIndexFiles loads the named index files and tells whether any of them
// was gone.
func (r *Repository) loadIndexFiles(ctx context.Context, names []string, sizes map[string]int64) ([]*IndexLoadError, bool) {
	var (
		mu    sync.Mutex
		bad   []*IndexLoadError
		gone  atomic.Bool
		wg    sync.WaitGroup
		work  = make(chan string)
		inUse int64
		freed = sync.NewCond(&mu)
	)
	acquire := func(n int64) {
		mu.Lock()
		for inUse > 0 && inUse+n > indexLoadBudget {
			freed.Wait()
		}
		inUse += n
		mu.Unlock()
	}
	release := func(n int64) {
		mu.Lock()
		inUse -= n
		mu.Unlock()
		freed.Broadcast()
	}
	for range min(4, len(names)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				size := sizes[name]
				acquire(size)
				var nums []uint32
				err := r.walkIndexFile(ctx, name, func(p packIndex) {
					nums = append(nums, r.index.addPack(p, false))
				})
				release(size)
				if err != nil {
					if backend.IsNotFound(err) {
						gone.Store(true)
						continue
					}
					mu.Lock()
					bad = append(bad, &IndexLoadError{Name: name, Err: err})
					mu.Unlock()
					continue
				}
				r.index.addFile(name, nums)
			}
		}()
	}
	for _, n := range names {
		work <- n
	}
	close(work)
	wg.Wait()
	return bad, gone.Load()
}

// walkIndexFile reads an index file and calls fn for each of its packs,
// once the whole file is known to be intact (see walkIndexFile in index.go
// for what fn may keep).
func (r *Repository) walkIndexFile(ctx context.Context, name string, fn func(packIndex)) error {
	id, err := ParseID(name)
	if err != nil {
		return err
	}
	var plain []byte
	err = r.readSealed(ctx, backend.Handle{Kind: backend.Indexes, Name: name}, func(data []byte) error {
		if plain, err = r.key.openFileInPlace(kindIndex, id, data); err != nil {
			return err
		}
		return walkIndexFile(plain, nil)
	})
	if err != nil {
		return err
	}
	return walkIndexFile(plain, fn)
}

// readSealed loads h and checks it with open. When open fails and the
// backend keeps a copy (the cache), the copy is dropped and the file read
// once more from the store, so a damaged copy is never used twice.
func (r *Repository) readSealed(ctx context.Context, h backend.Handle, open func([]byte) error) error {
	data, err := backend.ReadAll(ctx, r.be, h)
	if err != nil {
		return err
	}
	if err = open(data); err == nil || !backend.Forget(r.be, h) {
		return err
	}
	if data, err = backend.ReadAll(ctx, r.be, h); err != nil {
		return err
	}
	return open(data)
}

// packContext marks ctx for a pack of tree blobs (backend.WithTreePack).
func packContext(ctx context.Context, entries []blobEntry) context.Context {
	if len(entries) > 0 && entries[0].Type == TreeBlob {
		return backend.WithTreePack(ctx)
	}
	return ctx
}

// IndexFiles lists the names of the index files.
func (r *Repository) IndexFiles(ctx context.Context) ([]string, error) {
	var names []string
	err := r.be.List(ctx, backend.Indexes, func(fi backend.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	})
	return names, err
}

// --- writing -------------------------------------------------------------

// Pipeline sizes. One packer per blob type: blobs are sealed into a pack
// outside its lock, so one pack takes the blobs of every core. With two
// uploads being written and one full pack waiting for an uploader, a
// backup holds at most four data packs (8 MiB each), whatever the size of
// the files; tree packs start small and grow.
const uploadWorkers = 2

func (r *Repository) startWriting() {
	r.writeOnce.Do(func() {
		r.packers = map[BlobType]chan *packWriter{}
		for _, t := range []BlobType{DataBlob, TreeBlob} {
			ch := make(chan *packWriter, 1)
			ch <- nil // packs are allocated when first used
			r.packers[t] = ch
		}
		// unbuffered: a full pack waits for a free uploader rather than
		// queueing, which bounds the packs held in memory
		r.uploads = make(chan *packWriter)
		for range uploadWorkers {
			r.uploadWG.Add(1)
			go r.uploader()
		}
	})
}

func (r *Repository) setErr(err error) {
	r.errMu.Lock()
	if r.writeErr == nil {
		r.writeErr = err
	}
	r.errMu.Unlock()
}

func (r *Repository) err() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.writeErr
}

// Known tells whether a blob is stored or being stored. A blob that only
// packs named by a prune mark hold is not known: they may be deleted.
func (r *Repository) Known(id ID) bool {
	if r.index.Stored(id) {
		return true
	}
	_, ok := r.inflight.Load(id)
	return ok
}

// packBuf returns an empty buffer for a new pack of type t, reusing an uploaded
// pack's when there is one.
func (r *Repository) packBuf(t BlobType) []byte {
	if t == TreeBlob {
		// most runs write a few KiB of trees: grow only when needed
		return make([]byte, 0, 64<<10)
	}
	if b := r.packBufs.Get(); b != nil {
		return b
	}
	// room for the blobs, the sealed header (42 bytes a blob at most, for
	// blobs of at least 1 byte: bounded by a 1/16 margin plus a constant) and the trailer
	return make([]byte, 0, r.cfg.PackSize+r.cfg.PackSize/16+4096)
}

// sealOverhead is what sealing adds to a blob's payload (the GCM tag).
const sealOverhead = 16

// SaveBlob stores a blob with its precomputed id unless the repository
// has it already. It compresses and encrypts in the caller's goroutine, so
// callers on several cores run in parallel; uploads happen in the
// background. data may be reused by the caller when SaveBlob returns.
func (r *Repository) SaveBlob(ctx context.Context, t BlobType, id ID, data []byte) (added bool, err error) {
	if err := r.err(); err != nil {
		return false, err
	}
	if r.index.Stored(id) {
		return false, nil
	}
	if _, loaded := r.inflight.LoadOrStore(id, struct{}{}); loaded {
		return false, nil
	}
	r.startWriting()
	payload, flags := data, uint8(0)
	// a large chunk's samples first: an incompressible one (media, archives,
	// encrypted data) then takes no buffer of its own size
	var scratch []byte
	if len(data) >= sampleMin {
		scratch = r.compBufs.Get(compressBound(sampleLen))
	}
	worth := r.comp.worthTrying(scratch, data)
	if scratch != nil {
		r.compBufs.Put(scratch)
	}
	if worth {
		// the destination holds zstd's worst case, so EncodeAll never
		// allocates one of its own
		buf := r.compBufs.Get(compressBound(len(data)))
		defer r.compBufs.Put(buf)
		if out := r.comp.compressAll(buf[:0], data); out != nil {
			payload, flags = out, flagCompressed
		}
	}
	ch := r.packers[t]
	var pw *packWriter
	select {
	case pw = <-ch:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	// close the pack before this blob would overflow it, so pack buffers are
	// allocated once at their final size and reused
	var full *packWriter
	if pw != nil && pw.size()+len(payload)+sealOverhead > r.cfg.PackSize {
		full, pw = pw, nil
	}
	if pw == nil {
		pw = newPackWriter(r.key, r.packBuf(t))
	}
	dst, off := pw.reserve(t, id, flags, len(payload), len(data))
	ch <- pw
	pw.sealInto(dst, off, t, payload)
	r.stats.Blobs.Add(1)
	r.stats.DataAdded.Add(int64(len(data)))
	if full != nil {
		select {
		case r.uploads <- full:
		case <-ctx.Done():
			return true, ctx.Err()
		}
	}
	return true, r.err()
}

func (r *Repository) uploader() {
	defer r.uploadWG.Done()
	for pw := range r.uploads {
		if r.err() != nil {
			continue // drain; the run is failing
		}
		data := pw.finish()
		h := backend.Handle{Kind: backend.Packs, Name: pw.id.String()}
		if err := r.be.Save(packContext(context.Background(), pw.entries), h, data); err != nil {
			r.setErr(fmt.Errorf("write pack to %s: %w", r.be.Location(), err))
			continue
		}
		pi := packIndex{ID: pw.id, Size: int64(len(data)), Entries: pw.entries}
		r.index.addPack(pi, true)
		for _, e := range pw.entries {
			r.inflight.Delete(e.ID)
		}
		r.stats.StoredAdded.Add(int64(len(data)))
		r.stats.Packs.Add(1)
		if cap(data) >= r.cfg.PackSize+r.cfg.PackSize/16 {
			r.packBufs.Put(data)
		}
		r.pendingMu.Lock()
		r.pending = append(r.pending, pi)
		flushNow := len(r.pending) >= r.indexEvery
		var batch []packIndex
		if flushNow {
			batch, r.pending = r.pending, nil
		}
		r.pendingMu.Unlock()
		if flushNow {
			// An index every few packs lets the next run reuse the data of a
			// run that is killed before it ends.
			if err := r.saveIndexFile(context.Background(), batch); err != nil {
				r.setErr(err)
			}
		}
	}
}

// Flush writes every partly filled pack and an index file for all packs
// not yet indexed. After Flush returns nil, every blob saved so far is
// durable and indexed. The writing pipeline stops; SaveBlob may start it again.
func (r *Repository) Flush(ctx context.Context) error {
	if r.packers == nil {
		return r.err()
	}
	for _, ch := range r.packers {
		if pw := <-ch; pw != nil && len(pw.entries) > 0 {
			r.uploads <- pw
		}
	}
	close(r.uploads)
	r.uploadWG.Wait()
	r.writeOnce = sync.Once{}
	r.packers = nil
	if err := r.err(); err != nil {
		return err
	}
	r.pendingMu.Lock()
	batch := r.pending
	r.pending = nil
	r.pendingMu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	return r.saveIndexFile(ctx, batch)
}

func (r *Repository) saveIndexFile(ctx context.Context, packs []packIndex) error {
	if err := r.lockErr(); err != nil {
		return fmt.Errorf("write index: %w", err)
	}
	name := NewRandomID()
	data := r.key.sealFile(kindIndex, name, encodeIndexFile(packs))
	if err := r.be.Save(ctx, backend.Handle{Kind: backend.Indexes, Name: name.String()}, data); err != nil {
		return fmt.Errorf("write index to %s: %w", r.be.Location(), err)
	}
	return nil
}

// --- reading -------------------------------------------------------------

// ErrBlobNotFound means the index does not know a blob.
var ErrBlobNotFound = errors.New("blob not in index")

// BlobError explains why a blob could not be read.
type BlobError struct {
	ID   ID
	Pack ID
	Err  error
}

func (e *BlobError) Error() string {
	if e.Pack.IsNull() {
		return fmt.Sprintf("blob %s: %v", e.ID.Short(), e.Err)
	}
	return fmt.Sprintf("blob %s in pack %s: %v", e.ID.Short(), e.Pack.Short(), e.Err)
}

func (e *BlobError) Unwrap() error { return e.Err }

// LoadBlob reads, decrypts, decompresses and verifies a blob.
func (r *Repository) LoadBlob(ctx context.Context, id ID) ([]byte, error) {
	bi, ok := r.index.Lookup(id)
	if !ok {
		return nil, &BlobError{ID: id, Err: ErrBlobNotFound}
	}
	h := backend.Handle{Kind: backend.Packs, Name: bi.Pack.String()}
	if bi.Type == TreeBlob {
		ctx = backend.WithTreePack(ctx)
	}
	for try := 0; ; try++ {
		sealed, err := r.be.Load(ctx, h, int64(bi.Offset), int64(bi.Length))
		if err != nil {
			return nil, &BlobError{ID: id, Pack: bi.Pack, Err: err}
		}
		plain, err := r.openBlob(bi, sealed)
		if err == nil {
			return plain, nil
		}
		// a bad copy of a tree pack is dropped and the store asked once more
		if try > 0 || bi.Type != TreeBlob || !backend.Forget(r.be, h) {
			return nil, &BlobError{ID: id, Pack: bi.Pack, Err: err}
		}
	}
}

// openBlob decrypts and checks one sealed blob.
func (r *Repository) openBlob(bi BlobInfo, sealed []byte) ([]byte, error) {
	plain, err := r.OpenPack(bi.Pack).Blob(bi, sealed)
	var be *BlobError
	if errors.As(err, &be) {
		return nil, be.Err
	}
	return plain, err
}

// SaveTree stores a tree and returns its id.
func (r *Repository) SaveTree(ctx context.Context, t *Tree) (ID, error) {
	data := EncodeTree(t)
	id := r.Hash(data)
	_, err := r.SaveBlob(ctx, TreeBlob, id, data)
	return id, err
}

// LoadTree reads a tree.
func (r *Repository) LoadTree(ctx context.Context, id ID) (*Tree, error) {
	data, err := r.LoadBlob(ctx, id)
	if err != nil {
		return nil, err
	}
	t, err := DecodeTree(data)
	if err != nil {
		return nil, &BlobError{ID: id, Err: err}
	}
	return t, nil
}

// --- snapshots -----------------------------------------------------------

// SaveSnapshot writes a manifest. Call it only after Flush succeeded.
func (r *Repository) SaveSnapshot(ctx context.Context, s *Snapshot) (ID, error) {
	if err := r.lockErr(); err != nil {
		return ID{}, fmt.Errorf("write snapshot: %w", err)
	}
	data, err := json.Marshal(s)
	if err != nil {
		return ID{}, err
	}
	id := NewRandomID()
	sealed := r.key.sealFile(kindSnapshot, id, data)
	if err := r.be.Save(ctx, backend.Handle{Kind: backend.Snapshots, Name: id.String()}, sealed); err != nil {
		return ID{}, fmt.Errorf("write snapshot: %w", err)
	}
	s.ID = id
	return id, nil
}

// LoadSnapshot reads one manifest.
func (r *Repository) LoadSnapshot(ctx context.Context, id ID) (*Snapshot, error) {
	var s Snapshot
	err := r.readSealed(ctx, backend.Handle{Kind: backend.Snapshots, Name: id.String()}, func(data []byte) error {
		plain, err := r.key.openFile(kindSnapshot, id, data)
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", id.Short(), err)
		}
		s = Snapshot{}
		if err := json.Unmarshal(plain, &s); err != nil {
			return fmt.Errorf("snapshot %s is damaged: %w", id.Short(), err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.ID = id
	return &s, nil
}

// SnapshotLoadError names a manifest that could not be read.
type SnapshotLoadError struct {
	Name string
	Err  error
}

func (e *SnapshotLoadError) Error() string { return fmt.Sprintf("snapshots/%s: %v", e.Name, e.Err) }

// Snapshots returns every readable manifest, oldest first, and the names of
// those that could not be read.
func (r *Repository) Snapshots(ctx context.Context) ([]*Snapshot, []*SnapshotLoadError, error) {
	var names []string
	if err := r.be.List(ctx, backend.Snapshots, func(fi backend.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		return nil, nil, err
	}
	var out []*Snapshot
	var bad []*SnapshotLoadError
	for _, n := range names {
		id, err := ParseID(n)
		if err != nil {
			bad = append(bad, &SnapshotLoadError{Name: n, Err: err})
			continue
		}
		s, err := r.LoadSnapshot(ctx, id)
		if err != nil {
			bad = append(bad, &SnapshotLoadError{Name: n, Err: err})
			continue
		}
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Time.Equal(out[j].Time) {
			return out[i].ID.String() < out[j].ID.String()
		}
		return out[i].Time.Before(out[j].Time)
	})
	return out, bad, nil
}

// FindSnapshot resolves an id, a unique id prefix, "latest", or
// "latest:PATH" / "latest@TAG" (the newest snapshot that has that path or tag).
func FindSnapshot(snaps []*Snapshot, ref string) (*Snapshot, error) {
	if len(snaps) == 0 {
		return nil, errors.New("the repository has no snapshots")
	}
	if ref == "latest" || strings.HasPrefix(ref, "latest:") || strings.HasPrefix(ref, "latest@") {
		for i := len(snaps) - 1; i >= 0; i-- {
			s := snaps[i]
			switch {
			case ref == "latest":
				return s, nil
			case strings.HasPrefix(ref, "latest:") && pathmap.HasPath(s.Paths, strings.TrimPrefix(ref, "latest:")):
				return s, nil
			case strings.HasPrefix(ref, "latest@") && contains(s.Tags, strings.TrimPrefix(ref, "latest@")):
				return s, nil
			}
		}
		return nil, fmt.Errorf("no snapshot matches %q", ref)
	}
	var found *Snapshot
	for _, s := range snaps {
		if strings.HasPrefix(s.ID.String(), strings.ToLower(ref)) {
			if found != nil {
				return nil, fmt.Errorf("snapshot prefix %q is ambiguous: use more digits", ref)
			}
			found = s
		}
	}
	if found == nil || ref == "" {
		return nil, fmt.Errorf("no snapshot %q (see `stillpoint snapshots`)", ref)
	}
	return found, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Close releases resources (not the backend).
func (r *Repository) Close() {}

// PackReader decrypts the blobs of one pack; it derives the pack's key once.
type PackReader struct {
	r    *Repository
	id   ID
	aead cipherAEAD
}

type cipherAEAD interface {
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
}

// OpenPack prepares to read blobs of pack id.
func (r *Repository) OpenPack(id ID) *PackReader {
	return &PackReader{r: r, id: id, aead: r.key.fileCipher(kindPack, id)}
}

// ReadRange reads length bytes of the pack at offset.
func (p *PackReader) ReadRange(ctx context.Context, offset, length int64) ([]byte, error) {
	return p.r.be.Load(ctx, backend.Handle{Kind: backend.Packs, Name: p.id.String()}, offset, length)
}

// ReadAlign is the block ReadRangeInto's buffer is best placed by: a
// buffer whose address and offset agree modulo ReadAlign is read from a
// local repository past the page cache.
const ReadAlign = backend.ReadAlign

// ReadRangeInto reads len(buf) bytes of the pack at offset into buf.
func (p *PackReader) ReadRangeInto(ctx context.Context, offset int64, buf []byte) error {
	return p.r.be.LoadInto(ctx, backend.Handle{Kind: backend.Packs, Name: p.id.String()}, offset, buf)
}

// Blob decrypts, decompresses and verifies one blob from its sealed bytes.
// It decrypts in place: sealed is overwritten, and an uncompressed blob's
// plaintext is a prefix of it.
func (p *PackReader) Blob(bi BlobInfo, sealed []byte) ([]byte, error) {
	return p.BlobInto(bi, sealed, nil)
}

// BlobInto is Blob for a reader of many blobs: a compressed blob is
// decompressed into buf when it fits (DecompressBuf tells how large buf
// must be), and the plaintext then aliases buf.
func (p *PackReader) BlobInto(bi BlobInfo, sealed, buf []byte) ([]byte, error) {
	plain, err := p.aead.Open(sealed[:0], nonceAt(uint64(bi.Offset)), sealed, []byte{byte(bi.Type)})
	if err != nil {
		return nil, &BlobError{ID: bi.ID, Pack: p.id, Err: ErrDecrypt}
	}
	if bi.Compressed() {
		if plain, err = p.r.comp.decompress(plain, int(bi.RawLen), buf); err != nil {
			return nil, &BlobError{ID: bi.ID, Pack: p.id, Err: err}
		}
	}
	if len(plain) != int(bi.RawLen) {
		return nil, &BlobError{ID: bi.ID, Pack: p.id, Err: fmt.Errorf("length %d, index says %d", len(plain), bi.RawLen)}
	}
	if p.r.Hash(plain) != bi.ID {
		return nil, &BlobError{ID: bi.ID, Pack: p.id, Err: errors.New("content does not match its id (damaged)")}
	}
	return plain, nil
}

// DecompressBuf is the size of a buffer BlobInto can decompress a blob of
// rawLen bytes into.
func DecompressBuf(rawLen int) int { return rawLen + decompressSlack }

// PlainBuf is the buffer to give BlobInto for bi: none for a blob stored
// uncompressed (it is decrypted in place), else *buf, grown when too short.
func PlainBuf(buf *[]byte, bi BlobInfo) []byte {
	if !bi.Compressed() {
		return nil
	}
	*buf = bufs.Grow(*buf, DecompressBuf(int(bi.RawLen)))
	return *buf
}

// LookupBlob tells where a blob is stored.
func (r *Repository) LookupBlob(id ID) (BlobInfo, bool) { return r.index.Lookup(id) }

// Package cache keeps local copies of the repository files that are small
// and read by every command — keys, index files, snapshot manifests and the
// packs of tree blobs — so that a command on a remote repository reads them
// from the store once, not every run.
//
// The repository's files are written once under random names and never
// changed, so a copy stays valid until its file is removed: a listing of a
// kind tells which files are gone, and their copies are dropped. Every copy
// carries the BLAKE3 checksum and the length of its content, recorded when
// it was written; a copy that does not match them (damaged, truncated) is
// dropped and the file read from the store again. What the repository
// cannot decrypt or decode it reports with Forget (backend.Forgetter), so a
// copy of a file damaged in the store is not used twice.
//
// The copies live in DIR/<repository id>/cache/<kind>/<name>, where the
// repository id comes from the config file, which is read from the store
// once per Cache (it tells which repository the location holds). Files are
// written to a temporary name and renamed, so two processes may share the
// directory. Tree packs are evicted, least recently used first, beyond
// Options.MaxTreeBytes; the other copies are needed by every command and
// are only dropped with their files.
//
// The cache is docs/format.md's "Cache".
package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/zeebo/blake3"
)

// DefaultMaxTreeBytes bounds the copies of tree packs: the trees of a few
// million directories, far more than most repositories hold, and little
// beside the disk space a backup's own staging may take.
const DefaultMaxTreeBytes = 1 << 30

// staleTemp is the age after which a temporary file is a crashed writer's
// leftover (a copy is written in well under a second).
const staleTemp = time.Hour

// Options configure a Cache.
type Options struct {
	// Dir is the cache directory; copies go below Dir/<repository id>/cache.
	Dir string
	// MaxTreeBytes bounds the copies of tree packs (0: DefaultMaxTreeBytes;
	// below 0: no bound).
	MaxTreeBytes int64
	// RepositoryID, when known beforehand, names the copies' directory
	// until a config is read or written; "" waits for the config.
	RepositoryID string
}

// Stats count how loads of cached kinds were served.
type Stats struct {
	Hits    int64 // served from a copy
	Misses  int64 // read from the store (and copied)
	Dropped int64 // copies found damaged, forgotten, or of removed files
	Evicted int64 // tree packs evicted for the size bound
}

// Cache is a backend.Backend that keeps copies. It is safe for concurrent
// use.
type Cache struct {
	be      backend.Backend
	base    string
	maxTree int64

	mu        sync.Mutex
	dir       string // "" until the config named the repository
	config    []byte
	verified  map[backend.Handle]stamp // copies checked whole by this process
	distrust  map[backend.Handle]bool  // copies dropped but maybe not removed (open elsewhere, on Windows)
	flights   map[backend.Handle]*flight
	treeBytes int64

	hits, misses, dropped, evicted atomic.Int64
}

// stamp identifies a copy on disk, so that a copy checked once is read
// in ranges without being hashed again until another process replaces it.
type stamp struct {
	size  int64
	mtime time.Time
}

type flight struct {
	done chan struct{}
	data []byte
	err  error
}

// New wraps be.
func New(be backend.Backend, o Options) (*Cache, error) {
	if o.Dir == "" {
		return nil, errors.New("cache: no directory")
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("cache directory %s: %w", o.Dir, err)
	}
	max := o.MaxTreeBytes
	if max == 0 {
		max = DefaultMaxTreeBytes
	}
	c := &Cache{be: be, base: abs, maxTree: max, verified: map[backend.Handle]stamp{}, distrust: map[backend.Handle]bool{}, flights: map[backend.Handle]*flight{}}
	if o.RepositoryID != "" {
		if !validName(o.RepositoryID) {
			return nil, fmt.Errorf("cache: repository id %q is not one", o.RepositoryID)
		}
		c.setDir(o.RepositoryID)
	}
	return c, nil
}

// Stats returns the counts so far.
func (c *Cache) Stats() Stats {
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Dropped: c.dropped.Load(), Evicted: c.evicted.Load()}
}

// Dir is the directory of this repository's copies, "" until the config
// was read or written.
func (c *Cache) Dir() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dir
}

// Location implements backend.Backend.
func (c *Cache) Location() string { return c.be.Location() }

// cached tells whether h is a file the cache keeps a copy of.
func cached(ctx context.Context, h backend.Handle) bool {
	switch h.Kind {
	case backend.Keys, backend.Indexes, backend.Snapshots:
	case backend.Packs:
		if !backend.IsTreePack(ctx) {
			return false
		}
	default:
		return false
	}
	return validName(h.Name)
}

// validName accepts the repository's names (hex ids), so that a name from
// the store never leaves the cache directory.
func validName(s string) bool {
	if len(s) < 16 || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'f') {
			return false
		}
	}
	return true
}

// learnConfig takes the repository id from the config's content.
func (c *Cache) learnConfig(data []byte) {
	var cfg struct {
		ID string `json:"id"`
	}
	if json.Unmarshal(data, &cfg) != nil || !validName(cfg.ID) {
		return // not ours to judge: the repository says what is wrong
	}
	c.mu.Lock()
	c.config = bytes.Clone(data)
	c.mu.Unlock()
	c.setDir(cfg.ID)
}

// setDir makes the copies those of repository id.
func (c *Cache) setDir(id string) {
	dir := filepath.Join(c.base, id, "cache")
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir == dir {
		return
	}
	c.dir = dir
	c.treeBytes = 0
	c.verified = map[backend.Handle]stamp{}
	c.scanLocked()
}

// scanLocked sums the tree packs' copies and removes crashed writers'
// temporary files.
func (c *Cache) scanLocked() {
	for _, k := range []backend.Kind{backend.Keys, backend.Indexes, backend.Snapshots, backend.Packs} {
		entries, _ := os.ReadDir(filepath.Join(c.dir, string(k)))
		for _, e := range entries {
			info, err := e.Info()
			if err != nil {
				continue
			}
			if strings.HasPrefix(e.Name(), ".tmp-") {
				if time.Since(info.ModTime()) > staleTemp {
					os.Remove(filepath.Join(c.dir, string(k), e.Name()))
				}
				continue
			}
			if k == backend.Packs {
				c.treeBytes += info.Size()
			}
		}
	}
}

func (c *Cache) path(h backend.Handle) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dir == "" {
		return ""
	}
	return filepath.Join(c.dir, string(h.Kind), h.Name)
}

// Save implements backend.Backend: the file goes to the store, then (for a
// cached kind) into a copy.
func (c *Cache) Save(ctx context.Context, h backend.Handle, data []byte) error {
	if err := c.be.Save(ctx, h, data); err != nil {
		return err
	}
	switch {
	case h.Kind == backend.Config:
		c.learnConfig(data)
	case cached(ctx, h):
		c.store(h, data)
	}
	return nil
}

// Load implements backend.Backend.
func (c *Cache) Load(ctx context.Context, h backend.Handle, offset, length int64) ([]byte, error) {
	if h.Kind == backend.Config {
		return c.loadConfig(ctx, offset, length)
	}
	if !cached(ctx, h) || c.path(h) == "" {
		return c.be.Load(ctx, h, offset, length)
	}
	if offset < 0 || length < 0 {
		return nil, fmt.Errorf("load %s: offset %d, length %d", h, offset, length)
	}
	if data, ok, err := c.fromCopy(h, offset, length); ok {
		c.hits.Add(1)
		return data, err
	}
	whole, err := c.fetch(ctx, h)
	if err != nil {
		return nil, err
	}
	part, err := cut(whole, offset, length)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(part), nil
}

// LoadInto implements backend.Backend.
func (c *Cache) LoadInto(ctx context.Context, h backend.Handle, offset int64, buf []byte) error {
	if h.Kind != backend.Config && (!cached(ctx, h) || c.path(h) == "") {
		return c.be.LoadInto(ctx, h, offset, buf)
	}
	if len(buf) == 0 {
		return nil
	}
	data, err := c.Load(ctx, h, offset, int64(len(buf)))
	if err != nil {
		return err
	}
	copy(buf, data)
	return nil
}

// loadConfig reads the config from the store the first time, and keeps it:
// it tells which repository the location holds, and so which copies are
// its own.
func (c *Cache) loadConfig(ctx context.Context, offset, length int64) ([]byte, error) {
	c.mu.Lock()
	cfg := c.config
	c.mu.Unlock()
	if cfg == nil {
		data, err := c.be.Load(ctx, backend.Handle{Kind: backend.Config, Name: "config"}, 0, 0)
		if err != nil {
			return nil, err
		}
		c.learnConfig(data)
		cfg = data
	}
	part, err := cut(cfg, offset, length)
	if err != nil {
		return nil, err
	}
	return bytes.Clone(part), nil
}

// cut is data[offset:offset+length] by Load's rules.
func cut(data []byte, offset, length int64) ([]byte, error) {
	n := int64(len(data))
	if offset > n || length > 0 && offset+length > n {
		return nil, io.ErrUnexpectedEOF
	}
	if length == 0 {
		return data[offset:], nil
	}
	return data[offset : offset+length], nil
}

// fetch reads the whole file from the store (one request for every caller
// that asks at the same time) and keeps a copy.
func (c *Cache) fetch(ctx context.Context, h backend.Handle) ([]byte, error) {
	for {
		c.mu.Lock()
		f, waiting := c.flights[h]
		if !waiting {
			f = &flight{done: make(chan struct{})}
			c.flights[h] = f
		}
		c.mu.Unlock()
		if !waiting {
			// a caller that found no copy may come here just after another
			// caller's flight stored one and ended: look once more
			if data, ok, err := c.fromCopy(h, 0, 0); ok && err == nil {
				f.data = data
				c.hits.Add(1)
			} else {
				c.misses.Add(1)
				f.data, f.err = c.be.Load(ctx, h, 0, 0)
				if f.err == nil {
					c.store(h, f.data)
				}
			}
			c.mu.Lock()
			delete(c.flights, h)
			c.mu.Unlock()
			close(f.done)
			return f.data, f.err
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if f.err != nil && (errors.Is(f.err, context.Canceled) || errors.Is(f.err, context.DeadlineExceeded)) && ctx.Err() == nil {
			continue // the first caller gave up, not the store: ask again
		}
		c.hits.Add(1)
		return f.data, f.err
	}
}

// The trailer of a copy: BLAKE3-256 of the content, its length (uint64 LE)
// and a magic.
const (
	trailerLen = 32 + 8 + 4
	magic      = "SPC1"
)

// store writes a copy of data for h: to a temporary name, then renamed, so
// that a reader never sees half a copy. A copy is an optimisation: when it
// cannot be written, the file is simply read from the store next time.
func (c *Cache) store(h backend.Handle, data []byte) {
	p := c.path(h)
	if p == "" {
		return
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return
	}
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return
	}
	sum := blake3.Sum256(data)
	var tr [trailerLen]byte
	copy(tr[:32], sum[:])
	binary.LittleEndian.PutUint64(tr[32:40], uint64(len(data)))
	copy(tr[40:], magic)
	_, err = f.Write(data)
	if err == nil {
		_, err = f.Write(tr[:])
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), p)
	}
	if err != nil {
		os.Remove(f.Name())
		return
	}
	c.mu.Lock()
	delete(c.distrust, h)
	c.mu.Unlock()
	if h.Kind == backend.Packs {
		c.mu.Lock()
		c.treeBytes += int64(len(data)) + trailerLen
		over := c.maxTree >= 0 && c.treeBytes > c.maxTree
		c.mu.Unlock()
		if over {
			c.evict()
		}
	}
}

// fromCopy serves a load from the copy of h. A copy this process has not
// checked yet is read whole and checked first; a damaged one is dropped.
func (c *Cache) fromCopy(h backend.Handle, offset, length int64) (data []byte, ok bool, err error) {
	p := c.path(h)
	c.mu.Lock()
	bad := c.distrust[h]
	c.mu.Unlock()
	if bad {
		return nil, false, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, false, nil
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, false, nil
	}
	size := info.Size() - trailerLen
	c.mu.Lock()
	st, checked := c.verified[h]
	c.mu.Unlock()
	if checked && st == (stamp{info.Size(), info.ModTime()}) {
		if offset > size || length > 0 && offset+length > size {
			return nil, true, io.ErrUnexpectedEOF
		}
		if length == 0 {
			length = size - offset
		}
		buf := make([]byte, length)
		if _, err := f.ReadAt(buf, offset); err == nil {
			return buf, true, nil
		}
		f.Close() // Windows removes no open file
		c.drop(h, p)
		return nil, false, nil
	}
	whole, err := io.ReadAll(f)
	if err != nil || !intact(whole) {
		f.Close() // Windows removes no open file
		c.drop(h, p)
		return nil, false, nil
	}
	content := whole[:len(whole)-trailerLen]
	if h.Kind == backend.Packs {
		// recently used: the last to be evicted
		now := time.Now()
		if os.Chtimes(p, now, now) == nil {
			if i, err := os.Stat(p); err == nil {
				info = i
			}
		}
	}
	c.mu.Lock()
	c.verified[h] = stamp{info.Size(), info.ModTime()}
	c.mu.Unlock()
	part, err := cut(content, offset, length)
	if err != nil {
		return nil, true, err
	}
	if len(part) == len(content) {
		return content, true, nil
	}
	return bytes.Clone(part), true, nil
}

// intact checks a copy against its trailer.
func intact(b []byte) bool {
	if len(b) < trailerLen {
		return false
	}
	content, tr := b[:len(b)-trailerLen], b[len(b)-trailerLen:]
	if string(tr[40:]) != magic || binary.LittleEndian.Uint64(tr[32:40]) != uint64(len(content)) {
		return false
	}
	sum := blake3.Sum256(content)
	return bytes.Equal(sum[:], tr[:32])
}

// drop removes the copy of h. Where the removal fails (on Windows, while
// another process reads the copy), this process does not use it again
// until it has written a new one.
func (c *Cache) drop(h backend.Handle, p string) {
	c.mu.Lock()
	delete(c.verified, h)
	c.distrust[h] = true
	c.mu.Unlock()
	if err := os.Remove(p); err == nil {
		c.dropped.Add(1)
	}
}

// Forget implements backend.Forgetter.
func (c *Cache) Forget(h backend.Handle) {
	if h.Kind == backend.Config {
		c.mu.Lock()
		c.config = nil
		c.mu.Unlock()
		return
	}
	if !validName(h.Name) {
		return
	}
	if p := c.path(h); p != "" {
		c.drop(h, p)
	}
}

// evict removes the least recently used tree packs' copies until they take
// at most 90% of the bound.
func (c *Cache) evict() {
	c.mu.Lock()
	dir := filepath.Join(c.dir, string(backend.Packs))
	c.mu.Unlock()
	type entry struct {
		name  string
		size  int64
		mtime time.Time
	}
	var all []entry
	var total int64
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		info, err := de.Info()
		if err != nil || strings.HasPrefix(de.Name(), ".tmp-") {
			continue
		}
		all = append(all, entry{de.Name(), info.Size(), info.ModTime()})
		total += info.Size()
	}
	sort.Slice(all, func(i, j int) bool { return all[i].mtime.Before(all[j].mtime) })
	limit := c.maxTree / 10 * 9
	for _, e := range all {
		if total <= limit {
			break
		}
		if os.Remove(filepath.Join(dir, e.name)) == nil {
			c.evicted.Add(1)
			c.mu.Lock()
			delete(c.verified, backend.Handle{Kind: backend.Packs, Name: e.name})
			c.mu.Unlock()
		}
		total -= e.size
	}
	c.mu.Lock()
	c.treeBytes = total
	c.mu.Unlock()
}

// Stat implements backend.Backend; it asks the store, which alone knows
// whether a file exists.
func (c *Cache) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	return c.be.Stat(ctx, h)
}

// List implements backend.Backend. A complete listing of a cached kind
// drops the copies of files it does not name, except those written since
// the listing began (another process may have just saved them).
func (c *Cache) List(ctx context.Context, k backend.Kind, fn func(backend.FileInfo) error) error {
	switch k {
	case backend.Keys, backend.Indexes, backend.Snapshots, backend.Packs:
	default:
		return c.be.List(ctx, k, fn)
	}
	dir := c.path(backend.Handle{Kind: k})
	if dir == "" {
		return c.be.List(ctx, k, fn)
	}
	start := time.Now()
	names := map[string]bool{}
	if err := c.be.List(ctx, k, func(fi backend.FileInfo) error {
		names[fi.Name] = true
		return fn(fi)
	}); err != nil {
		return err
	}
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		n := de.Name()
		if names[n] || strings.HasPrefix(n, ".tmp-") {
			continue
		}
		info, err := de.Info()
		if err != nil || !info.ModTime().Before(start.Add(-time.Second)) {
			continue
		}
		c.drop(backend.Handle{Kind: k, Name: n}, filepath.Join(dir, n))
		if k == backend.Packs {
			c.mu.Lock()
			c.treeBytes -= info.Size()
			c.mu.Unlock()
		}
	}
	return nil
}

// Remove implements backend.Backend; the copy goes too.
func (c *Cache) Remove(ctx context.Context, h backend.Handle) error {
	err := c.be.Remove(ctx, h)
	switch h.Kind {
	case backend.Keys, backend.Indexes, backend.Snapshots, backend.Packs:
		if validName(h.Name) {
			if p := c.path(h); p != "" {
				c.drop(h, p)
			}
		}
	}
	return err
}

// Close implements backend.Backend.
func (c *Cache) Close() error { return c.be.Close() }

// Create implements backend.Creator where the store does.
func (c *Cache) Create(ctx context.Context) error {
	if cr, ok := c.be.(backend.Creator); ok {
		return cr.Create(ctx)
	}
	return nil
}

// SyncRemovals implements backend.RemovalSyncer.
func (c *Cache) SyncRemovals(ctx context.Context, k backend.Kind) error {
	return backend.SyncRemovals(ctx, c.be, k)
}

// Retainer implements backend.RetainerWrapper: object lock calls go to the
// store. A retention changes no content, so no copy is affected.
func (c *Cache) Retainer() (backend.Retainer, bool) { return backend.AsRetainer(c.be) }

package mount

import (
	"container/list"
	"context"
	"sync"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// DefaultCacheSize bounds the plaintext of blobs kept for reads. The
// kernel keeps the pages of the files read (their content never changes),
// so the cache only bridges the reads of one blob in pieces (the kernel
// asks for at most 1 MiB at a time, a blob has up to 4) and the blob read
// ahead for each reader: two blobs of the largest size, eight of the
// average. 16 MiB bought no copy time told apart from the noise in the
// benchmark (bench/mount.sh), for about 15 MiB more peak memory.
const DefaultCacheSize = 8 << 20

// BlobLoader reads one blob's plaintext.
type BlobLoader interface {
	LoadBlob(ctx context.Context, id repo.ID) ([]byte, error)
}

// Cache keeps the most recently used blobs up to a number of bytes, and
// loads a blob once however many readers ask for it at the same time.
// It is safe for concurrent use.
type Cache struct {
	load  BlobLoader
	limit int64

	mu      sync.Mutex
	size    int64
	lru     *list.List // of *cached, most recent first
	entries map[repo.ID]*list.Element
	loading map[repo.ID]*pending
}

type cached struct {
	id   repo.ID
	data []byte
}

type pending struct {
	done chan struct{}
	data []byte
	err  error
}

// NewCache returns a cache of at most limit bytes of blobs read through load.
func NewCache(load BlobLoader, limit int64) *Cache {
	return &Cache{load: load, limit: limit, lru: list.New(), entries: map[repo.ID]*list.Element{}, loading: map[repo.ID]*pending{}}
}

// Get returns blob id's plaintext, which the caller must not change.
func (c *Cache) Get(ctx context.Context, id repo.ID) ([]byte, error) {
	c.mu.Lock()
	if e, ok := c.entries[id]; ok {
		c.lru.MoveToFront(e)
		data := e.Value.(*cached).data
		c.mu.Unlock()
		return data, nil
	}
	if p, ok := c.loading[id]; ok {
		c.mu.Unlock()
		select {
		case <-p.done:
			return p.data, p.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	p := &pending{done: make(chan struct{})}
	c.loading[id] = p
	c.mu.Unlock()

	// the load is not cancelled with this reader: others may wait for it
	p.data, p.err = c.load.LoadBlob(context.WithoutCancel(ctx), id)
	c.mu.Lock()
	delete(c.loading, id)
	if p.err == nil {
		c.add(id, p.data)
	}
	c.mu.Unlock()
	close(p.done)
	return p.data, p.err
}

// Peek returns blob id's plaintext when the cache holds it, without
// loading it or making it more recent.
func (c *Cache) Peek(id repo.ID) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.entries[id]; ok {
		return e.Value.(*cached).data, true
	}
	return nil, false
}

// Prefetch loads blob id in the background unless it is cached or loading.
func (c *Cache) Prefetch(id repo.ID) {
	c.mu.Lock()
	_, have := c.entries[id]
	_, busy := c.loading[id]
	c.mu.Unlock()
	if !have && !busy {
		go func() { _, _ = c.Get(context.Background(), id) }()
	}
}

// add stores a loaded blob and evicts the least recently used beyond the
// limit; a blob larger than the whole cache is not kept.
func (c *Cache) add(id repo.ID, data []byte) {
	n := int64(len(data))
	if n > c.limit {
		return
	}
	for c.size+n > c.limit {
		last := c.lru.Back()
		old := last.Value.(*cached)
		c.lru.Remove(last)
		delete(c.entries, old.id)
		c.size -= int64(len(old.data))
	}
	c.entries[id] = c.lru.PushFront(&cached{id: id, data: data})
	c.size += n
}

// Size is the bytes of blobs held.
func (c *Cache) Size() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.size
}

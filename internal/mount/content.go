package mount

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
)

// Repo is what a mount reads of a repository.
type Repo interface {
	Packs
	Hash(data []byte) repo.ID
	LoadTree(ctx context.Context, id repo.ID) (*repo.Tree, error)
	Snapshots(ctx context.Context) ([]*repo.Snapshot, []*repo.SnapshotLoadError, error)
	LoadIndex(ctx context.Context) ([]*repo.IndexLoadError, error)
}

var _ Repo = (*repo.Repository)(nil)

// Content is where a file's bytes are: its blobs and the offset each ends at.
type Content struct {
	ids  []repo.ID
	ends []int64
	hole []bool // the blob is all zeros: a hole, read without loading it
}

// Holes tells which blobs are all zeros. The archiver stores a hole of a
// sparse file as zero blobs, which compress to almost nothing: only a blob
// that small for its length is compared with the id of zeros.
type Holes struct {
	hash func([]byte) repo.ID
	mu   sync.Mutex
	ids  map[uint32]repo.ID // plaintext length -> id of that many zeros
}

// NewHoles recognises zero blobs of a repository by their ids.
func NewHoles(hash func([]byte) repo.ID) *Holes {
	return &Holes{hash: hash, ids: map[uint32]repo.ID{}}
}

// IsHole tells whether a blob is all zeros.
func (h *Holes) IsHole(bi repo.BlobInfo) bool {
	// zstd packs a MiB of zeros into some tens of bytes; any real data
	// of that length takes more than a sixty-fourth of it
	if bi.RawLen == 0 || uint64(bi.Length)*64 >= uint64(bi.RawLen) {
		return false
	}
	h.mu.Lock()
	id, ok := h.ids[bi.RawLen]
	h.mu.Unlock()
	if !ok {
		id = h.hash(make([]byte, bi.RawLen))
		h.mu.Lock()
		h.ids[bi.RawLen] = id
		h.mu.Unlock()
	}
	return id == bi.ID
}

// NewContent maps node n's content to offsets. It fails when a blob is not
// in the index or the blobs do not add up to the node's size.
func NewContent(r Repo, holes *Holes, n *repo.Node) (*Content, error) {
	c := &Content{ids: n.Content, ends: make([]int64, len(n.Content)), hole: make([]bool, len(n.Content))}
	var off int64
	for i, id := range n.Content {
		bi, ok := r.LookupBlob(id)
		if !ok {
			return nil, fmt.Errorf("content damaged: blob %s is not in the index (run `stillpoint check`)", id.Short())
		}
		off += int64(bi.RawLen)
		c.ends[i] = off
		c.hole[i] = holes.IsHole(bi)
	}
	if off != int64(n.Size) {
		return nil, fmt.Errorf("content is %d bytes, the snapshot says %d", off, n.Size)
	}
	return c, nil
}

// Size is the file's length.
func (c *Content) Size() int64 {
	if len(c.ends) == 0 {
		return 0
	}
	return c.ends[len(c.ends)-1]
}

func (c *Content) start(i int) int64 {
	if i == 0 {
		return 0
	}
	return c.ends[i-1]
}

// blobAt is the index of the blob that holds byte off (off < Size).
func (c *Content) blobAt(off int64) int {
	return sort.Search(len(c.ends), func(i int) bool { return c.ends[i] > off })
}

// Allocated is the bytes that are not in holes.
func (c *Content) Allocated() int64 {
	var n int64
	for i := range c.ids {
		if !c.hole[i] {
			n += c.ends[i] - c.start(i)
		}
	}
	return n
}

// ReadAt fills dst from offset off through cache, loading only the blobs
// that hold those bytes. It returns io.EOF with fewer bytes at the end.
// With ahead, the blob after the last one read is loaded in the
// background, for a reader going through the file in order.
func (c *Content) ReadAt(ctx context.Context, cache *Cache, dst []byte, off int64, ahead bool) (int, error) {
	size := c.Size()
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= size {
		return 0, io.EOF
	}
	want := min(int64(len(dst)), size-off)
	done := int64(0)
	i := c.blobAt(off)
	for done < want {
		start := c.start(i)
		from := off + done - start
		n := min(c.ends[i]-start-from, want-done)
		if c.hole[i] {
			clear(dst[done : done+n])
		} else {
			data, err := cache.Get(ctx, c.ids[i])
			if err != nil {
				return int(done), err
			}
			copy(dst[done:done+n], data[from:from+n])
		}
		done += n
		if done < want {
			i++
		}
	}
	if ahead && i+1 < len(c.ids) && !c.hole[i+1] {
		cache.Prefetch(c.ids[i+1])
	}
	if done < int64(len(dst)) {
		return int(done), io.EOF
	}
	return int(done), nil
}

// Fill copies the whole content into dst (Size bytes), each blob that is
// not a hole from load, which may reuse its buffers from one call to the
// next: each blob is copied before the next is asked for.
func (c *Content) Fill(dst []byte, load func(id repo.ID) ([]byte, error)) error {
	if int64(len(dst)) != c.Size() {
		return fmt.Errorf("fill %d bytes of a file of %d", len(dst), c.Size())
	}
	for i, id := range c.ids {
		part := dst[c.start(i):c.ends[i]]
		if c.hole[i] {
			clear(part)
			continue
		}
		data, err := load(id)
		if err != nil {
			return err
		}
		if len(data) != len(part) {
			return fmt.Errorf("blob %s has %d bytes, the index says %d", id.Short(), len(data), len(part))
		}
		copy(part, data)
	}
	return nil
}

// errNoData is lseek's ENXIO: no data (or hole) at or after the offset.
var errNoData = errors.New("no data at or after the offset")

// SeekData is the first offset at or after off that is not in a hole.
func (c *Content) SeekData(off int64) (int64, error) {
	if off < 0 || off >= c.Size() {
		return 0, errNoData
	}
	for i := c.blobAt(off); i < len(c.ids); i++ {
		if !c.hole[i] {
			return max(off, c.start(i)), nil
		}
	}
	return 0, errNoData
}

// SeekHole is the first offset at or after off in a hole; the end of the
// file counts as one.
func (c *Content) SeekHole(off int64) (int64, error) {
	size := c.Size()
	if off < 0 || off >= size {
		return 0, errNoData
	}
	for i := c.blobAt(off); i < len(c.ids); i++ {
		if c.hole[i] {
			return max(off, c.start(i)), nil
		}
	}
	return size, nil
}

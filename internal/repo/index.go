package repo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
)

// location is where a blob is stored.
type location struct {
	pack   uint32 // index into Index.packs
	offset uint32
	length uint32
	rawLen uint32
	typ    BlobType
	flags  uint8
	used   bool // prune: a snapshot needs it (fits in the padding)
}

// Index maps blob ids to their place in packs. It is safe for concurrent use.
//
// A blob stored in several packs has one location: one in a pack no prune
// mark names when there is one (docs/format.md, Prune), else the first seen.
type Index struct {
	mu        sync.RWMutex
	blobs     map[ID]location
	packs     []ID
	packSize  []int64
	packBytes []int64 // sum of the stored lengths of every blob the pack holds, copies included
	packNum   map[ID]uint32
	// packMarked: the pack is named by a prune mark, so its blobs do not
	// count as stored for deduplication.
	packMarked []bool
	marked     map[ID]struct{}
	// distrust: a mark could not be read, so no pack from an index file
	// counts as stored (only the packs this process wrote do)
	distrust bool
	// files: the index files loaded, with the packs each lists
	files map[string][]uint32
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{blobs: map[ID]location{}, packNum: map[ID]uint32{}, marked: map[ID]struct{}{}, files: map[string][]uint32{}}
}

// BlobInfo is what the index knows of a blob.
type BlobInfo struct {
	ID     ID
	Type   BlobType
	Pack   ID
	Offset uint32
	Length uint32
	RawLen uint32
	Flags  uint8
}

// Compressed tells whether the blob is stored zstd-compressed: only such a
// blob needs a buffer to be decompressed into (DecompressBuf); the others
// are decrypted in place.
func (bi BlobInfo) Compressed() bool { return bi.Flags&flagCompressed != 0 }

// packIndex records a pack's blobs; it is the unit of index files.
type packIndex struct {
	ID      ID
	Size    int64
	Entries []blobEntry
}

// addPack adds a pack read from an index file, or written by this
// process (own), and returns its number. A pack listed twice (two index
// files) is added once.
func (x *Index) addPack(p packIndex, own bool) uint32 {
	x.mu.Lock()
	defer x.mu.Unlock()
	num, ok := x.packNum[p.ID]
	if ok {
		return num
	}
	num = uint32(len(x.packs))
	x.packs = append(x.packs, p.ID)
	x.packSize = append(x.packSize, p.Size)
	_, marked := x.marked[p.ID]
	marked = !own && (marked || x.distrust)
	x.packMarked = append(x.packMarked, marked)
	x.packNum[p.ID] = num
	var bytes int64
	for _, e := range p.Entries {
		bytes += int64(e.Length)
		old, dup := x.blobs[e.ID]
		// a copy in an unmarked pack is preferred to one in a marked pack
		if dup && (marked || !x.packMarked[old.pack]) {
			continue
		}
		x.blobs[e.ID] = location{pack: num, offset: e.Offset, length: e.Length, rawLen: e.RawLen, typ: e.Type, flags: e.Flags, used: old.used}
	}
	x.packBytes = append(x.packBytes, bytes)
	return num
}

// setMarked records packs named by a mark. Blobs already located in them
// keep their location: call it before adding packs that hold copies.
func (x *Index) setMarked(ids []ID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, id := range ids {
		x.marked[id] = struct{}{}
		if num, ok := x.packNum[id]; ok {
			x.packMarked[num] = true
		}
	}
}

// IsMarked tells whether a prune mark names pack id.
func (x *Index) IsMarked(id ID) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.marked[id]
	return ok
}

// Stored tells whether a blob is in a pack that no prune mark names: only
// such a blob may be deduplicated against.
func (x *Index) Stored(id ID) bool {
	x.mu.RLock()
	l, ok := x.blobs[id]
	ok = ok && !x.packMarked[l.pack]
	x.mu.RUnlock()
	return ok
}

// Has tells whether a blob is indexed.
func (x *Index) Has(id ID) bool {
	x.mu.RLock()
	_, ok := x.blobs[id]
	x.mu.RUnlock()
	return ok
}

// Lookup returns where a blob is.
func (x *Index) Lookup(id ID) (BlobInfo, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	l, ok := x.blobs[id]
	if !ok {
		return BlobInfo{}, false
	}
	return BlobInfo{ID: id, Type: l.typ, Pack: x.packs[l.pack], Offset: l.offset, Length: l.length, RawLen: l.rawLen, Flags: l.flags}, true
}

// Len is the number of blobs.
func (x *Index) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.blobs)
}

// PackSize returns the size of an indexed pack.
func (x *Index) PackSize(id ID) (int64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	num, ok := x.packNum[id]
	if !ok {
		return 0, false
	}
	return x.packSize[num], true
}

// Packs returns every indexed pack with its expected size.
func (x *Index) Packs() map[ID]int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make(map[ID]int64, len(x.packs))
	for i, p := range x.packs {
		out[p] = x.packSize[i]
	}
	return out
}

// Each calls fn for every blob.
func (x *Index) Each(fn func(BlobInfo)) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	for id, l := range x.blobs {
		fn(BlobInfo{ID: id, Type: l.typ, Pack: x.packs[l.pack], Offset: l.offset, Length: l.length, RawLen: l.rawLen, Flags: l.flags})
	}
}

// Index file plaintext: a version byte, the number of packs, then per pack
// its id, size and header entries (as in the pack header, offsets implied).
const indexVersion = 1

func encodeIndexFile(packs []packIndex) []byte {
	out := []byte{indexVersion}
	out = binary.AppendUvarint(out, uint64(len(packs)))
	for _, p := range packs {
		out = append(out, p.ID[:]...)
		out = binary.AppendUvarint(out, uint64(p.Size))
		out = append(out, encodePackHeader(p.Entries)...)
	}
	return out
}

var errBadIndex = errors.New("index file is damaged")

// uvarint decodes a varint as binary.Uvarint does but refuses non-minimal
// encodings, which the encoders never write: each value has one encoding,
// so decoding then encoding gives back the input.
func uvarint(b []byte) (uint64, int) {
	v, k := binary.Uvarint(b)
	if k > 0 && k != varintLen(v) {
		return 0, -1
	}
	return v, k
}

// varint is uvarint for signed values.
func varint(b []byte) (int64, int) {
	v, k := binary.Varint(b)
	ux := uint64(v) << 1
	if v < 0 {
		ux = ^ux
	}
	if k > 0 && k != varintLen(ux) {
		return 0, -1
	}
	return v, k
}

func varintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

func decodeIndexFile(data []byte) ([]packIndex, error) {
	var packs []packIndex
	if err := walkIndexFile(data, func(p packIndex) {
		p.Entries = slices.Clone(p.Entries)
		packs = append(packs, p)
	}); err != nil {
		return nil, err
	}
	if packs == nil {
		packs = []packIndex{}
	}
	return packs, nil
}

// walkIndexFile decodes an index file pack by pack. fn (nil: only check
// the encoding) must not keep p.Entries, which is reused for the next
// pack: a big index file is never held decoded whole.
func walkIndexFile(data []byte, fn func(p packIndex)) error {
	if len(data) < 1 || data[0] != indexVersion {
		return fmt.Errorf("%w: unknown version", errBadIndex)
	}
	pos := 1
	n, k := uvarint(data[pos:])
	if k <= 0 || n > uint64(len(data)) {
		return errBadIndex
	}
	pos += k
	var buf []blobEntry
	for i := uint64(0); i < n; i++ {
		var p packIndex
		if pos+32 > len(data) {
			return errBadIndex
		}
		copy(p.ID[:], data[pos:pos+32])
		pos += 32
		size, k := uvarint(data[pos:])
		if k <= 0 || size > math.MaxInt64 {
			return errBadIndex
		}
		pos += k
		p.Size = int64(size)
		entries, used, err := decodeEntriesInto(data[pos:], buf[:0])
		if err != nil {
			return errBadIndex
		}
		buf = entries
		pos += used
		p.Entries = entries
		if fn != nil {
			fn(p)
		}
	}
	if pos != len(data) {
		return errBadIndex
	}
	return nil
}

// decodeEntries decodes a pack header at the start of b and returns
// how many bytes it used.
func decodeEntries(b []byte) ([]blobEntry, int, error) {
	return decodeEntriesInto(b, nil)
}

// decodeEntriesInto is decodeEntries appending to entries.
func decodeEntriesInto(b []byte, entries []blobEntry) ([]blobEntry, int, error) {
	n, k := uvarint(b)
	if k <= 0 || n > uint64(len(b)) {
		return nil, 0, errBadIndex
	}
	pos := k
	if entries == nil {
		entries = make([]blobEntry, 0, n)
	} else {
		entries = slices.Grow(entries, int(n))
	}
	var off uint64
	for i := uint64(0); i < n; i++ {
		if pos+34 > len(b) {
			return nil, 0, errBadIndex
		}
		var e blobEntry
		e.Type, e.Flags = BlobType(b[pos]), b[pos+1]
		copy(e.ID[:], b[pos+2:pos+34])
		pos += 34
		l, k1 := uvarint(b[pos:])
		if k1 <= 0 {
			return nil, 0, errBadIndex
		}
		pos += k1
		raw, k2 := uvarint(b[pos:])
		if k2 <= 0 || l > 1<<31 || raw > 1<<31 || off+l > math.MaxUint32 {
			return nil, 0, errBadIndex
		}
		pos += k2
		e.Offset, e.Length, e.RawLen = uint32(off), uint32(l), uint32(raw)
		off += l
		entries = append(entries, e)
	}
	return entries, pos, nil
}

// reserve sizes an empty index for about n blobs, so that loading a big
// index does not copy the map as it grows.
func (x *Index) reserve(n int) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if len(x.blobs) == 0 && n > 0 {
		x.blobs = make(map[ID]location, n)
	}
}

func (x *Index) hasFile(name string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	_, ok := x.files[name]
	return ok
}

func (x *Index) addFile(name string, packs []uint32) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.files[name] = packs
}

// fileNames returns the names of the loaded index files.
func (x *Index) fileNames() []string {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]string, 0, len(x.files))
	for n := range x.files {
		out = append(out, n)
	}
	return out
}

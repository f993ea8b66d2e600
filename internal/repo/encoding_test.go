package repo

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
)

func randID(r *rand.Rand) ID {
	var id ID
	for i := range id {
		id[i] = byte(r.Uint32())
	}
	return id
}

func sampleTree() *Tree {
	r := rand.New(rand.NewPCG(1, 2))
	t := &Tree{Nodes: []*Node{
		{Name: "", Type: NodeDir, Mode: 0o755, Subtree: randID(r)},
		{Name: "a file", Type: NodeFile, Mode: 0o4644, Size: 1 << 40, Mtime: -5, Ctime: math.MaxInt64,
			UID: math.MaxUint32, GID: 7, Inode: math.MaxUint64, Device: 3, Links: 2,
			Content: []ID{randID(r), randID(r)},
			Xattrs:  []Xattr{{Name: "user.x", Value: []byte{0, 1, 2}}, {Name: "user.empty", Value: []byte{}}}},
		{Name: "bad\xffutf8", Type: NodeSymlink, LinkTarget: "../x"},
		{Name: "dev", Type: NodeCharDevice, Rdev: 0x0501},
		{Name: "locked", Type: NodeFile, Outcome: outcome.Stale, Reason: "locked", Holder: "postgres[12]", Content: []ID{randID(r)}},
		{Name: "failed-empty", Type: NodeFile, Outcome: outcome.Failed, Reason: "permission"},
		{Name: "reason-only", Type: NodeFile, Reason: "odd"},
	}}
	t.Sort()
	return t
}

func normalize(t *Tree) {
	for _, n := range t.Nodes {
		for i := range n.Xattrs {
			if len(n.Xattrs[i].Value) == 0 {
				n.Xattrs[i].Value = nil
			}
		}
		if len(n.Xattrs) == 0 {
			n.Xattrs = nil
		}
		if len(n.Content) == 0 {
			n.Content = nil
		}
		for i := range n.Streams {
			if len(n.Streams[i].Content) == 0 {
				n.Streams[i].Content = nil
			}
		}
		if len(n.Streams) == 0 {
			n.Streams = nil
		}
		if len(n.SD) == 0 {
			n.SD = nil
		}
	}
}

func TestTreeRoundTrip(t *testing.T) {
	for _, tr := range []*Tree{{}, sampleTree()} {
		enc := EncodeTree(tr)
		dec, err := DecodeTree(enc)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		normalize(tr)
		normalize(dec)
		if len(tr.Nodes) != 0 && !reflect.DeepEqual(dec, tr) {
			t.Fatalf("round trip changed the tree:\n got  %+v\n want %+v", dec.Nodes, tr.Nodes)
		}
		if !bytes.Equal(EncodeTree(dec), enc) {
			t.Fatal("re-encoding gives other bytes")
		}
	}
	// every strict prefix is rejected, never decoded as a smaller tree
	enc := EncodeTree(sampleTree())
	for i := range len(enc) {
		if _, err := DecodeTree(enc[:i]); err == nil {
			t.Fatalf("prefix of %d/%d bytes decoded", i, len(enc))
		}
	}
	if _, err := DecodeTree(append(enc, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func samplePacks() []packIndex {
	r := rand.New(rand.NewPCG(3, 4))
	var packs []packIndex
	for p := range 3 {
		pi := packIndex{ID: randID(r), Size: int64(r.Uint32())}
		var off uint32
		for i := range p * 5 {
			e := blobEntry{Type: DataBlob, Flags: uint8(i % 2), ID: randID(r), Offset: off, Length: uint32(r.IntN(1 << 24)), RawLen: uint32(r.IntN(1 << 24))}
			if i%3 == 0 {
				e.Type = TreeBlob
			}
			off += e.Length
			pi.Entries = append(pi.Entries, e)
		}
		packs = append(packs, pi)
	}
	return packs
}

func TestPackHeaderRoundTrip(t *testing.T) {
	for _, p := range samplePacks() {
		enc := encodePackHeader(p.Entries)
		dec, err := decodePackHeader(enc)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Entries) == 0 {
			p.Entries = []blobEntry{}
		}
		if !reflect.DeepEqual(dec, p.Entries) {
			t.Fatalf("entries differ:\n got  %+v\n want %+v", dec, p.Entries)
		}
		for i := range len(enc) {
			if _, err := decodePackHeader(enc[:i]); err == nil {
				t.Fatalf("prefix %d/%d decoded", i, len(enc))
			}
		}
	}
}

func TestIndexFileRoundTrip(t *testing.T) {
	packs := samplePacks()
	enc := encodeIndexFile(packs)
	dec, err := decodeIndexFile(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range packs {
		if len(packs[i].Entries) == 0 {
			packs[i].Entries = []blobEntry{}
		}
	}
	if !reflect.DeepEqual(dec, packs) {
		t.Fatalf("index differs:\n got  %+v\n want %+v", dec, packs)
	}
	for i := range len(enc) {
		if _, err := decodeIndexFile(enc[:i]); err == nil {
			t.Fatalf("prefix %d/%d decoded", i, len(enc))
		}
	}
}

// A sealed pack written by packWriter reads back through the same code
// check uses: header, trailer, and every blob.
func TestPackWriterRoundTrip(t *testing.T) {
	mk := newMasterKey()
	cfg := DefaultConfig
	r, err := newRepository(backend.NewMem(), &cfg, mk)
	if err != nil {
		t.Fatal(err)
	}
	comp := r.comp
	pw := newPackWriter(mk, make([]byte, 0, 1<<16))
	blobs := map[ID][]byte{}
	for i := range 20 {
		data := bytes.Repeat([]byte{byte(i)}, 100*i+1)
		id := r.Hash(data)
		blobs[id] = data
		if c := comp.compress(nil, data); c != nil && i%2 == 0 {
			pw.add(DataBlob, id, flagCompressed, c, len(data))
		} else {
			pw.add(TreeBlob, id, 0, data, len(data))
		}
	}
	data := pw.finish()
	entries, err := r.packHeader(pw.id, data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(entries, pw.entries) {
		t.Fatal("header entries differ from what was written")
	}
	for _, e := range entries {
		bi := BlobInfo{ID: e.ID, Type: e.Type, Pack: pw.id, Offset: e.Offset, Length: e.Length, RawLen: e.RawLen, Flags: e.Flags}
		plain, err := r.openBlob(bi, data[e.Offset:e.Offset+e.Length])
		if err != nil || !bytes.Equal(plain, blobs[e.ID]) {
			t.Fatalf("blob %s: %v", e.ID.Short(), err)
		}
	}
	// any flipped bit in the header or trailer is detected
	for _, pos := range []int{len(data) - 1, len(data) - 6, len(data) - 20} {
		bad := append([]byte(nil), data...)
		bad[pos] ^= 0x10
		if _, err := r.packHeader(pw.id, bad); err == nil {
			t.Fatalf("flipped bit at %d of %d not detected", pos, len(data))
		}
	}
	if _, err := r.packHeader(pw.id, data[:len(data)-1]); err == nil {
		t.Fatal("truncated pack accepted")
	}
}

// --- fuzz ----------------------------------------------------------------

var fuzzTreeSeeds = func() map[string][]byte { return nil }

func FuzzDecodeTree(f *testing.F) {
	f.Add(EncodeTree(sampleTree()))
	f.Add(EncodeTree(&Tree{}))
	f.Add(EncodeTree(windowsTree()))
	f.Add([]byte{treeVersion, 1, 0, 1, 0x3f})
	for _, b := range fuzzTreeSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := DecodeTree(b)
		if err != nil {
			return
		}
		if re := EncodeTree(tr); !bytes.Equal(re, b) {
			t.Fatalf("decode then encode is not the input:\n in  %x\n out %x", b, re)
		}
	})
}

func FuzzTreeRoundTrip(f *testing.F) {
	f.Add("name", uint8(1), uint32(0o644), uint64(10), int64(-1), uint64(0), "", []byte("xv"), uint8(2), uint8(0), "", true)
	f.Add("", uint8(2), uint32(0), uint64(0), int64(0), uint64(9), "target", []byte{}, uint8(0), uint8(4), "locked", false)
	f.Add("w.exe", uint8(1), uint32(0x21<<1), uint64(26), int64(9e17), uint64(0), "Zone.Identifier", []byte{1, 0, 4, 0x80}, uint8(10), uint8(7), "", false)
	f.Fuzz(func(t *testing.T, name string, typ uint8, mode uint32, size uint64, mtime int64, rdev uint64,
		link string, xval []byte, nContent uint8, out uint8, reason string, subtree bool) {
		r := rand.New(rand.NewPCG(size, uint64(mtime)))
		n := &Node{Name: name, Type: NodeType(typ), Mode: mode, Size: size, Mtime: mtime, Ctime: -mtime,
			UID: mode ^ 5, GID: mode >> 3, Inode: size ^ rdev, Device: rdev >> 1, Links: size >> 7, Rdev: rdev,
			LinkTarget: link, Outcome: outcome.Outcome(out), Reason: reason, Holder: reason + "[1]"}
		if len(xval) > 0 {
			n.Xattrs = []Xattr{{Name: "user." + name, Value: xval}, {Name: "", Value: nil}}
		}
		for range nContent % 8 {
			n.Content = append(n.Content, randID(r))
		}
		if subtree {
			n.Subtree = randID(r)
		}
		if nContent&8 != 0 { // Windows metadata, from the same inputs
			n.Attrs, n.Created, n.SD, n.SDParts = mode>>1, mtime>>1, xval, out
			for i := range int(nContent % 3) {
				n.Streams = append(n.Streams, Stream{Name: link + string(rune('a'+i)), Size: size >> i, Content: n.Content[:min(i, len(n.Content))]})
			}
		}
		tr := &Tree{Nodes: []*Node{n, {Name: name + "\x00second", Type: NodeFile}}}
		enc := EncodeTree(tr)
		dec, err := DecodeTree(enc)
		if err != nil {
			t.Fatalf("encoded tree does not decode: %v", err)
		}
		normalize(tr)
		normalize(dec)
		if !reflect.DeepEqual(dec, tr) {
			t.Fatalf("round trip changed the tree:\n got  %+v\n want %+v", *dec.Nodes[0], *tr.Nodes[0])
		}
		if !bytes.Equal(EncodeTree(dec), enc) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzIndexFile(f *testing.F) {
	f.Add(encodeIndexFile(samplePacks()))
	f.Add(encodeIndexFile(nil))
	f.Add([]byte{indexVersion, 0x80, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		packs, err := decodeIndexFile(b)
		if err != nil {
			return
		}
		for _, p := range packs {
			if p.Size < 0 {
				t.Fatalf("negative pack size %d", p.Size)
			}
			var end uint64
			for _, e := range p.Entries {
				if uint64(e.Offset) != end {
					t.Fatalf("offset %d, want %d", e.Offset, end)
				}
				end += uint64(e.Length)
			}
		}
		if re := encodeIndexFile(packs); !bytes.Equal(re, b) {
			t.Fatalf("decode then encode is not the input:\n in  %x\n out %x", b, re)
		}
	})
}

func FuzzPackHeader(f *testing.F) {
	for _, p := range samplePacks() {
		f.Add(encodePackHeader(p.Entries))
	}
	f.Add(binary.AppendUvarint(nil, 1))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := decodePackHeader(b)
		if err != nil {
			return
		}
		if re := encodePackHeader(entries); !bytes.Equal(re, b) {
			t.Fatalf("decode then encode is not the input:\n in  %x\n out %x", b, re)
		}
	})
}

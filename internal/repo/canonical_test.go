package repo

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"
)

// nonCanonicalTrees are byte strings a tree decoder must refuse because
// EncodeTree never writes them: accepting them would give one tree two
// encodings (two ids), and decode-then-encode would not be the identity.
func nonCanonicalTrees() map[string][]byte {
	node := func(bits byte, rest ...byte) []byte {
		b := []byte{treeVersion, 1, 0, byte(NodeFile), bits, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		return append(b, rest...)
	}
	zero32 := make([]byte, 32)
	mode := []byte{treeVersion, 1, 0, byte(NodeFile), 0}
	mode = append(mode, binary.AppendUvarint(nil, math.MaxUint32+1)...)
	mode = append(mode, 0, 0, 0, 0, 0, 0, 0, 0)
	return map[string][]byte{
		"empty link target flagged": node(hasLinkTarget, 0),
		"zero xattrs flagged":       node(hasXattrs, 0),
		"zero content flagged":      node(hasContent, 0),
		"null subtree flagged":      node(hasSubtree, zero32...),
		"ok outcome flagged":        node(hasOutcome, 0, 0, 0),
		"zero rdev flagged":         node(hasRdev, 0),
		"mode beyond 32 bits":       mode,
		"non-minimal mode":          {treeVersion, 1, 0, 1, 0, 0x80, 0x00, 0, 0, 0, 0, 0, 0, 0, 0},
		"non-minimal mtime":         {treeVersion, 1, 0, 1, 0, 0, 0, 0x80, 0x00, 0, 0, 0, 0, 0, 0},
		"non-minimal node count":    {treeVersion, 0x81, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
	}
}

func TestDecodeTreeRejectsNonCanonical(t *testing.T) {
	for name, b := range nonCanonicalTrees() {
		if tr, err := DecodeTree(b); err == nil {
			t.Errorf("%s: decoded (re-encodes as %x, input %x)", name, EncodeTree(tr), b)
		}
	}
	// the canonical twin of the inputs above does decode
	if _, err := DecodeTree([]byte{treeVersion, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}); err != nil {
		t.Fatalf("canonical node refused: %v", err)
	}
}

func TestDecodeIndexRejectsNonCanonical(t *testing.T) {
	var id [32]byte
	pack := func(size []byte, hdr ...byte) []byte {
		b := []byte{indexVersion, 1}
		b = append(b, id[:]...)
		b = append(b, size...)
		return append(b, hdr...)
	}
	entry := func(l, raw []byte) []byte {
		b := []byte{1, byte(DataBlob), 0}
		b = append(b, id[:]...)
		b = append(b, l...)
		return append(b, raw...)
	}
	cases := map[string][]byte{
		"non-minimal pack count":   {indexVersion, 0x80, 0x00},
		"non-minimal pack size":    pack([]byte{0x85, 0x00}, 0),
		"pack size beyond int64":   pack(binary.AppendUvarint(nil, math.MaxInt64+1), 0),
		"non-minimal entry count":  pack([]byte{5}, 0x80, 0x00),
		"non-minimal blob length":  pack([]byte{5}, entry([]byte{0x81, 0x00}, []byte{1})...),
		"non-minimal raw length":   pack([]byte{5}, entry([]byte{1}, []byte{0x81, 0x00})...),
		"blob length beyond 2 GiB": pack([]byte{5}, entry(binary.AppendUvarint(nil, 1<<31+1), []byte{1})...),
	}
	for name, b := range cases {
		if packs, err := decodeIndexFile(b); err == nil {
			t.Errorf("%s: decoded (re-encodes as %x, input %x)", name, encodeIndexFile(packs), b)
		}
	}
	if _, err := decodeIndexFile(pack([]byte{5}, entry([]byte{1}, []byte{1})...)); err != nil {
		t.Fatalf("canonical index refused: %v", err)
	}
	if _, err := decodePackHeader(append([]byte{0x81, 0x00}, entry([]byte{1}, []byte{1})[1:]...)); err == nil {
		t.Error("pack header with a non-minimal entry count decoded")
	}
	if got := encodeIndexFile(nil); !bytes.Equal(got, []byte{indexVersion, 0}) {
		t.Fatalf("empty index encodes as %x", got)
	}
}

func init() {
	// the non-canonical inputs also seed the fuzzers
	fuzzTreeSeeds = nonCanonicalTrees
}

package repo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// The encoding of sampleTree before nodes had Windows fields: a tree
// without them must still encode to exactly these bytes.
const sampleTreeSHA256 = "6e7588cab47efb58016ec7f64b0288ae7330eff7131bc9768d820b818d057482"

func TestTreeWithoutWindowsFieldsIsUnchanged(t *testing.T) {
	enc := EncodeTree(sampleTree())
	if sum := sha256.Sum256(enc); hex.EncodeToString(sum[:]) != sampleTreeSHA256 || len(enc) != 362 {
		t.Fatalf("a tree without Windows fields encodes to other bytes (%d, sha256 %x): old trees would not dedup, or not decode", len(enc), sum)
	}
}

func windowsTree() *Tree {
	r := rand.New(rand.NewPCG(5, 6))
	tr := &Tree{Nodes: []*Node{
		{Name: "doc.txt", Type: NodeFile, Mode: 0o444, Size: 12, Content: []ID{randID(r)},
			Attrs: 0x21, Created: 1_600_000_000_123_456_700,
			SD: []byte{1, 0, 4, 0x80, 20, 0, 0, 0}, SDParts: SDOwner | SDGroup | SDDACL,
			Streams: []Stream{
				{Name: "Zone.Identifier", Size: 26, Content: []ID{randID(r)}},
				{Name: "empty", Size: 0},
				{Name: "big", Size: 1 << 33, Content: []ID{randID(r), randID(r)}},
			}},
		{Name: "attrs-only", Type: NodeDir, Attrs: math.MaxUint32, Subtree: randID(r)},
		{Name: "before-1970", Type: NodeFile, Created: -1_000_000_007},
		{Name: "parts-without-sd", Type: NodeFile, SDParts: SDSACL},
		{Name: "plain", Type: NodeFile},
	}}
	tr.Sort()
	return tr
}

func TestTreeWindowsFieldsRoundTrip(t *testing.T) {
	tr := windowsTree()
	enc := EncodeTree(tr)
	dec, err := DecodeTree(enc)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	normalize(tr)
	normalize(dec)
	if !reflect.DeepEqual(dec, tr) {
		t.Fatalf("round trip changed the tree:\n got  %+v\n want %+v", dec.Nodes, tr.Nodes)
	}
	if !bytes.Equal(EncodeTree(dec), enc) {
		t.Fatal("re-encoding gives other bytes")
	}
	for i := range len(enc) {
		if _, err := DecodeTree(enc[:i]); err == nil {
			t.Fatalf("prefix of %d/%d bytes decoded", i, len(enc))
		}
	}
	// the plain node costs what it did before
	plain := &Tree{Nodes: []*Node{{Name: "plain", Type: NodeFile}}}
	withEmpty := &Tree{Nodes: []*Node{{Name: "plain", Type: NodeFile, Streams: []Stream{}, SD: []byte{}}}}
	if !bytes.Equal(EncodeTree(plain), EncodeTree(withEmpty)) {
		t.Error("empty Windows fields cost bytes")
	}
}

func TestTreeWindowsFieldsNotCanonicalRejected(t *testing.T) {
	// one node "f", type file, the hasWindows bit, zero fields, then the
	// Windows part
	head := []byte{treeVersion, 1, 1, 'f', byte(NodeFile), hasWindows, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for name, tail := range map[string][]byte{
		"no Windows field":       {0},
		"attrs bit, attrs 0":     {winAttrs, 0},
		"created bit, created 0": {winCreated, 0},
		"sd bit, nothing":        {winSD, 0, 0},
		"streams bit, 0 streams": {winStreams, 0},
		"unknown bit":            {winAttrs | 0x80, 1},
		"stream content too big": {winStreams, 1, 1, 's', 1, 9, 0},
	} {
		b := append(append([]byte(nil), head...), tail...)
		if _, err := DecodeTree(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	good := append(append([]byte(nil), head...), winAttrs, 1)
	if tr, err := DecodeTree(good); err != nil || tr.Nodes[0].Attrs != 1 {
		t.Fatalf("a minimal Windows node: %v", err)
	}
}

func TestNodeDataBlobs(t *testing.T) {
	tr := windowsTree()
	n := tr.Find("doc.txt")
	got := n.DataBlobs()
	want := append(append(append([]ID(nil), n.Content...), n.Streams[0].Content...), n.Streams[2].Content...)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("DataBlobs %v, want %v", got, want)
	}
	if p := tr.Find("plain"); len(p.DataBlobs()) != 0 {
		t.Fatal("a node without content has blobs")
	}
}

// Prune keeps a blob only an alternate data stream holds, and check reads
// it: streams are content too.
func TestPruneAndCheckKeepStreamBlobs(t *testing.T) {
	be, cred := newPruneRepo(t)
	b := startBackup(t, be, cred)
	r := b.r
	store := func(data string) ID {
		id := r.Hash([]byte(data))
		if _, err := r.SaveBlob(bg, DataBlob, id, []byte(data)); err != nil {
			t.Fatal(err)
		}
		return id
	}
	snap := func(nodes ...*Node) *Snapshot {
		tree := &Tree{Nodes: nodes}
		tree.Sort()
		root, err := r.SaveTree(bg, tree)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Flush(bg); err != nil {
			t.Fatal(err)
		}
		s := &Snapshot{Time: time.Now(), Host: "h", Paths: []string{"/"}, Tree: root}
		if _, err := r.SaveSnapshot(bg, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	gone := snap(&Node{Name: "old", Type: NodeFile, Size: 7, Content: []ID{store("garbage")}})
	zone := "[ZoneTransfer]\r\nZoneId=3\r\n"
	stream := store(zone)
	dirStream := store("a directory's stream")
	keep := snap(
		&Node{Name: "f.exe", Type: NodeFile, Size: 2, Content: []ID{store("MZ")}, Attrs: 0x20,
			Streams: []Stream{{Name: "Zone.Identifier", Size: uint64(len(zone)), Content: []ID{stream}}}},
		&Node{Name: "d", Type: NodeDir, Attrs: 0x10, Streams: []Stream{{Name: "s", Size: 20, Content: []ID{dirStream}}}},
	)
	b.done()
	forget(t, be, gone)
	res := prune(t, be, cred, PruneOptions{MaxUnused: MaxUnused{Bytes: 0}, Now: true})
	if res.RemovedPacks == 0 {
		t.Fatalf("prune removed nothing: %+v", res)
	}
	r2 := openRepo(t, be, cred)
	for _, id := range []ID{stream, dirStream} {
		if _, err := r2.LoadBlob(bg, id); err != nil {
			t.Errorf("stream blob %s after prune: %v", id.Short(), err)
		}
	}
	mustCheck(t, be, cred)
	if tr, err := r2.LoadTree(bg, keep.Tree); err != nil || len(tr.Find("f.exe").Streams) != 1 {
		t.Fatalf("the kept snapshot's tree: %v", err)
	}
}

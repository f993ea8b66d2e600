package repo

import (
	"encoding/binary"
	"errors"
	"math"
	"sort"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
)

// NodeType is the kind of a tree entry; the values match view.FileType.
type NodeType uint8

// Node types.
const (
	NodeFile NodeType = iota + 1
	NodeDir
	NodeSymlink
	NodeDevice
	NodeCharDevice
	NodeFIFO
	NodeSocket
)

func (t NodeType) String() string {
	switch t {
	case NodeFile:
		return "file"
	case NodeDir:
		return "dir"
	case NodeSymlink:
		return "symlink"
	case NodeDevice:
		return "blockdev"
	case NodeCharDevice:
		return "chardev"
	case NodeFIFO:
		return "fifo"
	case NodeSocket:
		return "socket"
	}
	return "unknown"
}

// Xattr is an extended attribute of a node.
type Xattr struct {
	Name  string
	Value []byte
}

// Stream is an alternate data stream of a Windows file or directory
// (Zone.Identifier, ...); its bytes are data blobs like a file's content.
type Stream struct {
	Name    string // without the leading ':' and the ":$DATA" type
	Size    uint64
	Content []ID
}

// Which parts of a Windows security descriptor Node.SD holds (the
// SECURITY_INFORMATION bits of the same names).
const (
	SDOwner uint8 = 1 << iota
	SDGroup
	SDDACL
	SDSACL
)

// Node is one entry of a directory tree. Name is raw bytes: any name a
// filesystem allows, valid UTF-8 or not, round-trips.
type Node struct {
	Name       string
	Type       NodeType
	Mode       uint32 // permission bits with setuid/setgid/sticky
	Size       uint64
	Mtime      int64 // ns since the epoch
	Ctime      int64
	UID, GID   uint32
	Inode      uint64
	Device     uint64 // device of this run's read; only links within one snapshot compare it
	Links      uint64
	Rdev       uint64
	LinkTarget string
	Xattrs     []Xattr
	Content    []ID // data blobs, in order
	Subtree    ID   // for directories
	Outcome    outcome.Outcome
	Reason     string // why a file is not whole (locked, permission, …)
	Holder     string // the process that held it, "name[pid]"

	// Windows metadata; all zero for nodes from other platforms, and then
	// the encoding holds no byte of it.
	Attrs   uint32 // FILE_ATTRIBUTE_* as read
	Created int64  // creation time, ns since the epoch; 0: not recorded
	SD      []byte // security descriptor, self-relative, as read
	SDParts uint8  // SDOwner|SDGroup|SDDACL|SDSACL: the parts SD holds
	Streams []Stream
}

// DataBlobs returns every data blob the node refers to: its content, then
// the content of its streams.
func (n *Node) DataBlobs() []ID {
	if len(n.Streams) == 0 {
		return n.Content
	}
	ids := append([]ID(nil), n.Content...)
	for _, s := range n.Streams {
		ids = append(ids, s.Content...)
	}
	return ids
}

func (n *Node) hasWindows() bool {
	return n.Attrs != 0 || n.Created != 0 || len(n.SD) > 0 || n.SDParts != 0 || len(n.Streams) > 0
}

// Tree is a directory's entries, sorted by name.
type Tree struct {
	Nodes []*Node
}

// Sort orders the nodes by name, as the encoding requires.
func (t *Tree) Sort() {
	sort.Slice(t.Nodes, func(i, j int) bool { return t.Nodes[i].Name < t.Nodes[j].Name })
}

// Find returns the node named name, or nil.
func (t *Tree) Find(name string) *Node {
	i := sort.Search(len(t.Nodes), func(i int) bool { return t.Nodes[i].Name >= name })
	if i < len(t.Nodes) && t.Nodes[i].Name == name {
		return t.Nodes[i]
	}
	return nil
}

const treeVersion = 1

// Node field presence bits keep the encoding small for common nodes.
const (
	hasLinkTarget = 1 << iota
	hasXattrs
	hasContent
	hasSubtree
	hasOutcome
	hasRdev
	hasWindows // followed by a byte of the win* bits below
)

// Presence bits of the Windows part of a node.
const (
	winAttrs = 1 << iota
	winCreated
	winSD
	winStreams
)

// EncodeTree serialises a tree canonically: equal trees give equal bytes,
// so an unchanged directory dedups to the same blob.
func EncodeTree(t *Tree) []byte {
	out := make([]byte, 0, 64+len(t.Nodes)*96)
	out = append(out, treeVersion)
	out = binary.AppendUvarint(out, uint64(len(t.Nodes)))
	for _, n := range t.Nodes {
		out = appendString(out, n.Name)
		out = append(out, byte(n.Type))
		var bits byte
		if n.LinkTarget != "" {
			bits |= hasLinkTarget
		}
		if len(n.Xattrs) > 0 {
			bits |= hasXattrs
		}
		if len(n.Content) > 0 {
			bits |= hasContent
		}
		if !n.Subtree.IsNull() {
			bits |= hasSubtree
		}
		if n.Outcome != outcome.OK || n.Reason != "" || n.Holder != "" {
			bits |= hasOutcome
		}
		if n.Rdev != 0 {
			bits |= hasRdev
		}
		if n.hasWindows() {
			bits |= hasWindows
		}
		out = append(out, bits)
		out = binary.AppendUvarint(out, uint64(n.Mode))
		out = binary.AppendUvarint(out, n.Size)
		out = binary.AppendVarint(out, n.Mtime)
		out = binary.AppendVarint(out, n.Ctime)
		out = binary.AppendUvarint(out, uint64(n.UID))
		out = binary.AppendUvarint(out, uint64(n.GID))
		out = binary.AppendUvarint(out, n.Inode)
		out = binary.AppendUvarint(out, n.Device)
		out = binary.AppendUvarint(out, n.Links)
		if bits&hasRdev != 0 {
			out = binary.AppendUvarint(out, n.Rdev)
		}
		if bits&hasLinkTarget != 0 {
			out = appendString(out, n.LinkTarget)
		}
		if bits&hasXattrs != 0 {
			out = binary.AppendUvarint(out, uint64(len(n.Xattrs)))
			for _, x := range n.Xattrs {
				out = appendString(out, x.Name)
				out = appendString(out, string(x.Value))
			}
		}
		if bits&hasContent != 0 {
			out = binary.AppendUvarint(out, uint64(len(n.Content)))
			for _, id := range n.Content {
				out = append(out, id[:]...)
			}
		}
		if bits&hasSubtree != 0 {
			out = append(out, n.Subtree[:]...)
		}
		if bits&hasOutcome != 0 {
			out = append(out, byte(n.Outcome))
			out = appendString(out, n.Reason)
			out = appendString(out, n.Holder)
		}
		if bits&hasWindows != 0 {
			out = appendWindows(out, n)
		}
	}
	return out
}

func appendWindows(out []byte, n *Node) []byte {
	var bits byte
	if n.Attrs != 0 {
		bits |= winAttrs
	}
	if n.Created != 0 {
		bits |= winCreated
	}
	if len(n.SD) > 0 || n.SDParts != 0 {
		bits |= winSD
	}
	if len(n.Streams) > 0 {
		bits |= winStreams
	}
	out = append(out, bits)
	if bits&winAttrs != 0 {
		out = binary.AppendUvarint(out, uint64(n.Attrs))
	}
	if bits&winCreated != 0 {
		out = binary.AppendVarint(out, n.Created)
	}
	if bits&winSD != 0 {
		out = append(out, n.SDParts)
		out = appendString(out, string(n.SD))
	}
	if bits&winStreams != 0 {
		out = binary.AppendUvarint(out, uint64(len(n.Streams)))
		for _, s := range n.Streams {
			out = appendString(out, s.Name)
			out = binary.AppendUvarint(out, s.Size)
			out = binary.AppendUvarint(out, uint64(len(s.Content)))
			for _, id := range s.Content {
				out = append(out, id[:]...)
			}
		}
	}
	return out
}

func appendString(out []byte, s string) []byte {
	out = binary.AppendUvarint(out, uint64(len(s)))
	return append(out, s...)
}

// ErrBadTree means a tree blob does not decode.
var ErrBadTree = errors.New("tree is damaged")

type treeDecoder struct {
	b   []byte
	err bool
}

func (d *treeDecoder) uvarint() uint64 {
	v, k := uvarint(d.b)
	if k <= 0 {
		d.err = true
		d.b = nil
		return 0
	}
	d.b = d.b[k:]
	return v
}

// uint32 reads a uvarint that must fit 32 bits.
func (d *treeDecoder) uint32() uint32 {
	v := d.uvarint()
	if v > math.MaxUint32 {
		d.err = true
		d.b = nil
	}
	return uint32(v)
}

func (d *treeDecoder) varint() int64 {
	v, k := varint(d.b)
	if k <= 0 {
		d.err = true
		d.b = nil
		return 0
	}
	d.b = d.b[k:]
	return v
}

func (d *treeDecoder) bytes(n uint64) []byte {
	if n > uint64(len(d.b)) {
		d.err = true
		d.b = nil
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *treeDecoder) string() string { return string(d.bytes(d.uvarint())) }

func (d *treeDecoder) byte() byte {
	b := d.bytes(1)
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// windows reads the Windows part of a node; false: it is not canonical.
func (d *treeDecoder) windows(nd *Node) bool {
	bits := d.byte()
	if bits&winAttrs != 0 {
		nd.Attrs = d.uint32()
	}
	if bits&winCreated != 0 {
		nd.Created = d.varint()
	}
	if bits&winSD != 0 {
		nd.SDParts = d.byte()
		if sd := d.bytes(d.uvarint()); len(sd) > 0 {
			nd.SD = append([]byte(nil), sd...)
		}
	}
	if bits&winStreams != 0 {
		k := d.uvarint()
		if k > uint64(len(d.b)) {
			return false
		}
		nd.Streams = make([]Stream, k)
		for j := range nd.Streams {
			s := &nd.Streams[j]
			s.Name = d.string()
			s.Size = d.uvarint()
			c := d.uvarint()
			if c > uint64(len(d.b))/32 {
				return false
			}
			if c > 0 {
				s.Content = make([]ID, c)
				for i := range s.Content {
					copy(s.Content[i][:], d.bytes(32))
				}
			}
		}
	}
	return !d.err && bits&^(winAttrs|winCreated|winSD|winStreams) == 0 &&
		(bits&winAttrs != 0) == (nd.Attrs != 0) &&
		(bits&winCreated != 0) == (nd.Created != 0) &&
		(bits&winSD != 0) == (len(nd.SD) > 0 || nd.SDParts != 0) &&
		(bits&winStreams != 0) == (len(nd.Streams) > 0)
}

// DecodeTree parses a tree blob.
func DecodeTree(b []byte) (*Tree, error) {
	if len(b) < 1 || b[0] != treeVersion {
		return nil, ErrBadTree
	}
	d := &treeDecoder{b: b[1:]}
	n := d.uvarint()
	if n > uint64(len(b)) {
		return nil, ErrBadTree
	}
	t := &Tree{Nodes: make([]*Node, 0, n)}
	for i := uint64(0); i < n && !d.err; i++ {
		nd := &Node{}
		nd.Name = d.string()
		nd.Type = NodeType(d.byte())
		bits := d.byte()
		nd.Mode = d.uint32()
		nd.Size = d.uvarint()
		nd.Mtime = d.varint()
		nd.Ctime = d.varint()
		nd.UID = d.uint32()
		nd.GID = d.uint32()
		nd.Inode = d.uvarint()
		nd.Device = d.uvarint()
		nd.Links = d.uvarint()
		if bits&hasRdev != 0 {
			nd.Rdev = d.uvarint()
		}
		if bits&hasLinkTarget != 0 {
			nd.LinkTarget = d.string()
		}
		if bits&hasXattrs != 0 {
			k := d.uvarint()
			if k > uint64(len(d.b)) {
				return nil, ErrBadTree
			}
			for j := uint64(0); j < k && !d.err; j++ {
				name := d.string()
				val := []byte(d.string())
				nd.Xattrs = append(nd.Xattrs, Xattr{Name: name, Value: val})
			}
		}
		if bits&hasContent != 0 {
			k := d.uvarint()
			if k > uint64(len(d.b))/32 {
				return nil, ErrBadTree
			}
			nd.Content = make([]ID, k)
			for j := range nd.Content {
				copy(nd.Content[j][:], d.bytes(32))
			}
		}
		if bits&hasSubtree != 0 {
			copy(nd.Subtree[:], d.bytes(32))
		}
		if bits&hasOutcome != 0 {
			nd.Outcome = outcome.Outcome(d.byte())
			nd.Reason = d.string()
			nd.Holder = d.string()
		}
		if bits&hasWindows != 0 && !d.windows(nd) {
			return nil, ErrBadTree
		}
		if bits&^(hasLinkTarget|hasXattrs|hasContent|hasSubtree|hasOutcome|hasRdev|hasWindows) != 0 {
			return nil, ErrBadTree
		}
		// a flag is set exactly when its field is not empty, as EncodeTree
		// writes it: anything else would be a second encoding of the node
		if (bits&hasRdev != 0) != (nd.Rdev != 0) ||
			(bits&hasLinkTarget != 0) != (nd.LinkTarget != "") ||
			(bits&hasXattrs != 0) != (len(nd.Xattrs) > 0) ||
			(bits&hasContent != 0) != (len(nd.Content) > 0) ||
			(bits&hasSubtree != 0) != !nd.Subtree.IsNull() ||
			(bits&hasOutcome != 0) != (nd.Outcome != outcome.OK || nd.Reason != "" || nd.Holder != "") ||
			(bits&hasWindows != 0) != nd.hasWindows() {
			return nil, ErrBadTree
		}
		t.Nodes = append(t.Nodes, nd)
	}
	if d.err || len(d.b) != 0 {
		return nil, ErrBadTree
	}
	return t, nil
}

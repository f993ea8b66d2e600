package winmeta

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// File attributes (FILE_ATTRIBUTE_*), as GetFileAttributes returns them.
const (
	AttrReadOnly          uint32 = 0x1
	AttrHidden            uint32 = 0x2
	AttrSystem            uint32 = 0x4
	AttrDirectory         uint32 = 0x10
	AttrArchive           uint32 = 0x20
	AttrNormal            uint32 = 0x80
	AttrTemporary         uint32 = 0x100
	AttrSparse            uint32 = 0x200
	AttrReparsePoint      uint32 = 0x400
	AttrCompressed        uint32 = 0x800
	AttrOffline           uint32 = 0x1000
	AttrNotContentIndexed uint32 = 0x2000
	AttrEncrypted         uint32 = 0x4000
)

// Settable are the attributes SetFileAttributes sets; the others
// (directory, sparse, compressed, encrypted, reparse point) follow from how
// the file is made and are recorded only.
const Settable = AttrReadOnly | AttrHidden | AttrSystem | AttrArchive | AttrTemporary | AttrOffline | AttrNotContentIndexed

// AttrString is the attributes as letters in the order of attrib.exe's
// output and more (R read-only, H hidden, S system, A archive, T temporary,
// O offline, I not content indexed, P sparse, C compressed, E encrypted,
// L reparse point), "-" for none.
func AttrString(attrs uint32) string {
	var b strings.Builder
	for _, a := range []struct {
		bit    uint32
		letter byte
	}{
		{AttrReadOnly, 'R'}, {AttrHidden, 'H'}, {AttrSystem, 'S'}, {AttrArchive, 'A'},
		{AttrTemporary, 'T'}, {AttrOffline, 'O'}, {AttrNotContentIndexed, 'I'},
		{AttrSparse, 'P'}, {AttrCompressed, 'C'}, {AttrEncrypted, 'E'}, {AttrReparsePoint, 'L'},
	} {
		if attrs&a.bit != 0 {
			b.WriteByte(a.letter)
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// Security descriptor parts, as the SECURITY_INFORMATION bits (and
// repo.SDOwner ... repo.SDSACL, which have the same values).
const (
	PartOwner uint8 = 1 << iota
	PartGroup
	PartDACL
	PartSACL
)

// PartNames says which parts a set of bits names: "owner, group, DACL".
func PartNames(parts uint8) string {
	var names []string
	for _, p := range []struct {
		bit  uint8
		name string
	}{{PartOwner, "owner"}, {PartGroup, "group"}, {PartDACL, "DACL"}, {PartSACL, "SACL"}} {
		if parts&p.bit != 0 {
			names = append(names, p.name)
		}
	}
	if len(names) == 0 {
		return "nothing"
	}
	return strings.Join(names, ", ")
}

// Control bits of a security descriptor (SECURITY_DESCRIPTOR_CONTROL).
const (
	sdDACLPresent  = 0x0004
	sdSACLPresent  = 0x0010
	sdDACLProtect  = 0x1000
	sdSACLProtect  = 0x2000
	sdSelfRelative = 0x8000
)

// SDInfo is what the header of a self-relative security descriptor says.
type SDInfo struct {
	Parts         uint8 // the parts it holds (a DACL or SACL present but null counts)
	DACLProtected bool  // the DACL does not inherit from the parent
	SACLProtected bool
}

// ErrBadSD means bytes are not a self-relative security descriptor.
var ErrBadSD = errors.New("not a self-relative security descriptor")

// ParseSD checks the layout of a self-relative security descriptor (the
// form GetSecurityInfo returns and a tree stores): revision 1, the
// self-relative flag, and every part inside the buffer with a plausible
// header. It does not judge the ACEs themselves; Windows does that when the
// descriptor is set.
func ParseSD(sd []byte) (SDInfo, error) {
	var info SDInfo
	if len(sd) < 20 || sd[0] != 1 {
		return info, ErrBadSD
	}
	control := binary.LittleEndian.Uint16(sd[2:])
	if control&sdSelfRelative == 0 {
		return info, ErrBadSD
	}
	offOwner := binary.LittleEndian.Uint32(sd[4:])
	offGroup := binary.LittleEndian.Uint32(sd[8:])
	offSACL := binary.LittleEndian.Uint32(sd[12:])
	offDACL := binary.LittleEndian.Uint32(sd[16:])
	for _, s := range []struct {
		off  uint32
		part uint8
	}{{offOwner, PartOwner}, {offGroup, PartGroup}} {
		if s.off == 0 {
			continue
		}
		if err := checkSID(sd, s.off); err != nil {
			return info, err
		}
		info.Parts |= s.part
	}
	for _, a := range []struct {
		off     uint32
		present uint16
		part    uint8
	}{{offDACL, sdDACLPresent, PartDACL}, {offSACL, sdSACLPresent, PartSACL}} {
		if control&a.present == 0 {
			continue
		}
		if a.off != 0 {
			if err := checkACL(sd, a.off); err != nil {
				return info, err
			}
		}
		info.Parts |= a.part
	}
	info.DACLProtected = control&sdDACLProtect != 0
	info.SACLProtected = control&sdSACLProtect != 0
	return info, nil
}

func checkSID(sd []byte, off uint32) error {
	// revision 1, sub-authority count, 6-byte authority, 4 bytes per sub-authority
	if uint64(off)+8 > uint64(len(sd)) || sd[off] != 1 {
		return fmt.Errorf("%w: owner or group outside it", ErrBadSD)
	}
	n := uint64(sd[off+1])
	if n > 15 || uint64(off)+8+4*n > uint64(len(sd)) {
		return fmt.Errorf("%w: SID of %d sub-authorities outside it", ErrBadSD, n)
	}
	return nil
}

func checkACL(sd []byte, off uint32) error {
	if uint64(off)+8 > uint64(len(sd)) {
		return fmt.Errorf("%w: ACL outside it", ErrBadSD)
	}
	rev := sd[off]
	size := uint64(binary.LittleEndian.Uint16(sd[off+2:]))
	if (rev != 2 && rev != 4) || size < 8 || uint64(off)+size > uint64(len(sd)) {
		return fmt.Errorf("%w: ACL of revision %d and %d bytes", ErrBadSD, rev, size)
	}
	return nil
}

// Stream names ---------------------------------------------------------

// StreamName returns the name of an alternate data stream from the form
// FindFirstStreamW gives (":Zone.Identifier:$DATA"); ok is false for the
// file's main stream ("::$DATA") and for streams of other types.
func StreamName(found string) (name string, ok bool) {
	rest, hasColon := strings.CutPrefix(found, ":")
	name, typ, hasType := strings.Cut(rest, ":")
	if !hasColon || !hasType || !strings.EqualFold(typ, "$DATA") || name == "" {
		return "", false
	}
	return name, true
}

// CheckStreamName rejects a stream name that could not have come from a
// file, so that a damaged or crafted tree cannot make a restore write
// elsewhere than a stream of the file it restores.
func CheckStreamName(name string) error {
	switch {
	case name == "":
		return errors.New("empty stream name")
	case len(name) > 255:
		return fmt.Errorf("stream name of %d bytes (at most 255)", len(name))
	case strings.ContainsAny(name, ":\\/\x00"):
		return fmt.Errorf("stream name %q holds ':', '\\', '/' or NUL", name)
	}
	return nil
}

// What a restore elsewhere keeps ----------------------------------------

// Foreign says what of a Windows node's metadata a restore on another
// platform cannot set back, in words for the restore's note; "" when
// nothing is lost (the node has no Windows metadata, or only the archive
// bit, which means nothing elsewhere).
func Foreign(attrs uint32, hasSD bool, streams []string) string {
	var lost []string
	if a := attrs & (Settable &^ (AttrReadOnly | AttrArchive)); a != 0 {
		lost = append(lost, "attributes "+AttrString(a))
	}
	if hasSD {
		lost = append(lost, "security descriptor")
	}
	if len(streams) > 0 {
		lost = append(lost, fmt.Sprintf("alternate data streams %s", strings.Join(streams, ", ")))
	}
	return strings.Join(lost, "; ")
}

// UnixMode is the mode a file or directory recorded on Windows gets on
// another platform: Windows knows no permission bits, only the read-only
// attribute, so owner-writable and world-readable (0644, 0755 for
// directories) less the write bits when it was read-only. Go's own mode of
// a Windows file (0666, 0777) would make every restored file
// world-writable.
func UnixMode(attrs uint32, dir bool) uint32 {
	mode := uint32(0o644)
	if dir {
		mode = 0o755
	}
	if attrs&AttrReadOnly != 0 && !dir {
		// a read-only directory on Windows only marks a customised folder
		mode &^= 0o222
	}
	return mode
}

// FromUnixMode is the read-only attribute a file recorded elsewhere gets on
// Windows: set when its owner had no write permission.
func FromUnixMode(mode uint32, dir bool) uint32 {
	if !dir && mode&0o200 == 0 {
		return AttrReadOnly
	}
	return 0
}

// VolumeKey names the volume a Windows path is on, so that what is the
// same for every file of a volume (its serial number) is asked once: "c:"
// for C:\x and \\?\C:\x, "unc\srv\share" for \\srv\share\x and
// \\?\UNC\srv\share\x, "globalroot\device\harddiskvolumeshadowcopy3" for
// a shadow copy's \\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3\x,
// "volume{…}" for \\?\Volume{…}\x; "" for a path without a volume.
func VolumeKey(path string) string {
	p := strings.ToLower(strings.ReplaceAll(path, "/", `\`))
	parts := func(s string, n int) string {
		el := strings.SplitN(s, `\`, n+1)
		if len(el) < n {
			return ""
		}
		for _, e := range el[:n] {
			if e == "" {
				return ""
			}
		}
		return strings.Join(el[:n], `\`)
	}
	switch {
	case strings.HasPrefix(p, `\\?\`), strings.HasPrefix(p, `\\.\`):
		rest := p[4:]
		switch {
		case strings.HasPrefix(rest, `globalroot\`):
			return parts(rest, 3)
		case strings.HasPrefix(rest, `unc\`):
			return parts(rest, 3)
		case len(rest) >= 2 && rest[1] == ':':
			return rest[:2]
		}
		return parts(rest, 1)
	case strings.HasPrefix(p, `\\`):
		if k := parts(p[2:], 2); k != "" {
			return `unc\` + k
		}
		return ""
	case len(p) >= 2 && p[1] == ':' && (p[0] >= 'a' && p[0] <= 'z'):
		return p[:2]
	}
	return ""
}

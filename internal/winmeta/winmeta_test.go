package winmeta

import (
	"encoding/binary"
	"errors"
	"strings"
	"testing"
)

// sampleSD builds a self-relative descriptor: owner S-1-5-32-544, group
// S-1-5-18, and a DACL (revision 2, no ACEs), with the given control bits.
func sampleSD(control uint16) []byte {
	sd := make([]byte, 20)
	sd[0] = 1
	binary.LittleEndian.PutUint16(sd[2:], control|sdSelfRelative|sdDACLPresent)
	owner := []byte{1, 2, 0, 0, 0, 0, 0, 5, 32, 0, 0, 0, 0x20, 2, 0, 0}
	group := []byte{1, 1, 0, 0, 0, 0, 0, 5, 18, 0, 0, 0}
	dacl := []byte{2, 0, 8, 0, 0, 0, 0, 0}
	binary.LittleEndian.PutUint32(sd[4:], uint32(len(sd)))
	sd = append(sd, owner...)
	binary.LittleEndian.PutUint32(sd[8:], uint32(len(sd)))
	sd = append(sd, group...)
	binary.LittleEndian.PutUint32(sd[16:], uint32(len(sd)))
	return append(sd, dacl...)
}

func TestParseSD(t *testing.T) {
	info, err := ParseSD(sampleSD(sdDACLProtect))
	if err != nil {
		t.Fatal(err)
	}
	if info.Parts != PartOwner|PartGroup|PartDACL || !info.DACLProtected || info.SACLProtected {
		t.Fatalf("%+v, want owner, group, DACL, protected DACL", info)
	}
	if PartNames(info.Parts) != "owner, group, DACL" {
		t.Errorf("PartNames %q", PartNames(info.Parts))
	}

	// a null DACL (present, offset 0) is a DACL: everyone may do everything
	null := sampleSD(0)
	binary.LittleEndian.PutUint32(null[16:], 0)
	if info, err := ParseSD(null); err != nil || info.Parts&PartDACL == 0 {
		t.Errorf("null DACL: %+v, %v", info, err)
	}
	// an owner-only descriptor, as a user without READ_CONTROL on the DACL might get
	ownerOnly := sampleSD(0)
	binary.LittleEndian.PutUint16(ownerOnly[2:], sdSelfRelative)
	binary.LittleEndian.PutUint32(ownerOnly[8:], 0)
	if info, err := ParseSD(ownerOnly); err != nil || info.Parts != PartOwner {
		t.Errorf("owner only: %+v, %v", info, err)
	}

	good := sampleSD(0)
	for name, mutate := range map[string]func([]byte) []byte{
		"empty":             func(b []byte) []byte { return nil },
		"revision 2":        func(b []byte) []byte { b[0] = 2; return b },
		"absolute form":     func(b []byte) []byte { binary.LittleEndian.PutUint16(b[2:], sdDACLPresent); return b },
		"cut in the DACL":   func(b []byte) []byte { return b[:len(b)-1] },
		"owner far outside": func(b []byte) []byte { binary.LittleEndian.PutUint32(b[4:], 1<<31); return b },
		"SID of 200 parts":  func(b []byte) []byte { b[21] = 200; return b },
		"ACL bigger":        func(b []byte) []byte { b[len(b)-6] = 200; return b },
		"ACL revision 9":    func(b []byte) []byte { b[len(b)-8] = 9; return b },
	} {
		b := mutate(append([]byte(nil), good...))
		if _, err := ParseSD(b); !errors.Is(err, ErrBadSD) {
			t.Errorf("%s: %v, want ErrBadSD", name, err)
		}
	}
}

func TestStreamNames(t *testing.T) {
	for found, want := range map[string]string{
		":Zone.Identifier:$DATA": "Zone.Identifier",
		":x:$data":               "x",
		"::$DATA":                "",
		":x:$INDEX_ALLOCATION":   "",
		"noColon":                "",
		":only":                  "",
	} {
		name, ok := StreamName(found)
		if name != want || ok != (want != "") {
			t.Errorf("StreamName(%q) = %q, %v; want %q", found, name, ok, want)
		}
	}
	if err := CheckStreamName("Zone.Identifier"); err != nil {
		t.Error(err)
	}
	for _, bad := range []string{"", "a:b", `..\..\x`, "a/b", "nul\x00", strings.Repeat("x", 256)} {
		if CheckStreamName(bad) == nil {
			t.Errorf("stream name %q accepted", bad)
		}
	}
}

func TestAttributes(t *testing.T) {
	if s := AttrString(AttrReadOnly | AttrHidden | AttrArchive | AttrDirectory); s != "RHA" {
		t.Errorf("AttrString %q", s)
	}
	if s := AttrString(AttrNormal); s != "-" {
		t.Errorf("AttrString(normal) %q", s)
	}
	if Settable&(AttrDirectory|AttrCompressed|AttrEncrypted|AttrSparse|AttrReparsePoint) != 0 {
		t.Error("Settable holds attributes SetFileAttributes cannot set")
	}
}

func TestRestoreElsewhere(t *testing.T) {
	for _, tc := range []struct {
		attrs uint32
		dir   bool
		mode  uint32
	}{
		{AttrArchive, false, 0o644},
		{AttrReadOnly | AttrArchive, false, 0o444},
		{AttrDirectory, true, 0o755},
		{AttrDirectory | AttrReadOnly, true, 0o755},
	} {
		if m := UnixMode(tc.attrs, tc.dir); m != tc.mode {
			t.Errorf("UnixMode(%#x, %v) = %o, want %o", tc.attrs, tc.dir, m, tc.mode)
		}
	}
	if FromUnixMode(0o444, false) != AttrReadOnly || FromUnixMode(0o644, false) != 0 || FromUnixMode(0o555, true) != 0 {
		t.Error("FromUnixMode")
	}
	if s := Foreign(AttrArchive|AttrReadOnly, false, nil); s != "" {
		t.Errorf("archive and read-only lose nothing elsewhere, got %q", s)
	}
	got := Foreign(AttrHidden|AttrSystem|AttrArchive, true, []string{"Zone.Identifier", "x"})
	if got != "attributes HS; security descriptor; alternate data streams Zone.Identifier, x" {
		t.Errorf("Foreign: %q", got)
	}
}

func TestVolumeKey(t *testing.T) {
	for p, want := range map[string]string{
		`C:\data\x`:           "c:",
		`c:/data`:             "c:",
		`\\?\C:\long\x`:       "c:",
		`\\srv\Share\dir`:     `unc\srv\share`,
		`\\?\UNC\srv\share\x`: `unc\srv\share`,
		`\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3\data\x`: `globalroot\device\harddiskvolumeshadowcopy3`,
		`\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy3`:        `globalroot\device\harddiskvolumeshadowcopy3`,
		`\\?\Volume{0b1e}\x`: "volume{0b1e}",
		`\\srv`:              "",
		`relative\x`:         "",
		`\rooted\x`:          "",
	} {
		if got := VolumeKey(p); got != want {
			t.Errorf("VolumeKey(%s) = %q, want %q", p, got, want)
		}
	}
}

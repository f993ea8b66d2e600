package winmeta

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

// The privileges a backup and a restore use.
const (
	BackupPrivilege   = "SeBackupPrivilege"   // read any file, whatever its DACL says
	RestorePrivilege  = "SeRestorePrivilege"  // write any file, set any owner
	SecurityPrivilege = "SeSecurityPrivilege" // read and write SACLs
)

// securityHeld: SeSecurityPrivilege is enabled, so SACLs are read and set.
var securityHeld atomic.Bool

var procAdjustTokenPrivileges = windows.NewLazySystemDLL("advapi32.dll").NewProc("AdjustTokenPrivileges")

// Enable enables a privilege in the process token. It returns false and no
// error when the process does not hold the privilege (AdjustTokenPrivileges
// succeeds with ERROR_NOT_ALL_ASSIGNED): the program was not started
// elevated, or by an account without that right.
func Enable(name string) (bool, error) {
	var luid windows.LUID
	if err := windows.LookupPrivilegeValue(nil, windows.StringToUTF16Ptr(name), &luid); err != nil {
		return false, fmt.Errorf("looking up %s: %w", name, err)
	}
	var token windows.Token
	if err := windows.OpenProcessToken(windows.CurrentProcess(), windows.TOKEN_ADJUST_PRIVILEGES|windows.TOKEN_QUERY, &token); err != nil {
		return false, fmt.Errorf("opening the process token: %w", err)
	}
	defer token.Close()
	tp := windows.Tokenprivileges{PrivilegeCount: 1}
	tp.Privileges[0] = windows.LUIDAndAttributes{Luid: luid, Attributes: windows.SE_PRIVILEGE_ENABLED}
	// called directly: the last error is what tells "not held", and
	// x/sys's wrapper drops it when the call succeeds
	r1, _, lastErr := procAdjustTokenPrivileges.Call(uintptr(token), 0, uintptr(unsafe.Pointer(&tp)), 0, 0, 0)
	if r1 == 0 {
		return false, fmt.Errorf("enabling %s: %w", name, lastErr)
	}
	if errors.Is(lastErr, windows.ERROR_NOT_ALL_ASSIGNED) {
		return false, nil
	}
	if name == SecurityPrivilege {
		securityHeld.Store(true)
	}
	return true, nil
}

const fileReadAttributes = 0x80

// openHandle opens path with backup semantics (which directories need, and
// which lets SeBackupPrivilege and SeRestorePrivilege override the DACL),
// sharing read, write and delete with every other program, and without
// following a final reparse point.
func openHandle(path string, access, disposition, extra uint32) (windows.Handle, error) {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return windows.InvalidHandle, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	h, err := windows.CreateFile(p, access,
		windows.FILE_SHARE_READ|windows.FILE_SHARE_WRITE|windows.FILE_SHARE_DELETE, nil, disposition,
		windows.FILE_FLAG_BACKUP_SEMANTICS|windows.FILE_FLAG_OPEN_REPARSE_POINT|extra, 0)
	if err != nil {
		return windows.InvalidHandle, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return h, nil
}

// Open opens a file (or directory) for reading as a backup reads it. An
// ERROR_SHARING_VIOLATION is still possible: a program that opened the
// file sharing nothing keeps everyone out.
func Open(path string) (*os.File, error) {
	h, err := openHandle(path, windows.GENERIC_READ, windows.OPEN_EXISTING, windows.FILE_FLAG_SEQUENTIAL_SCAN)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(h), path), nil
}

// Info is what Windows says of an open file.
type Info struct {
	Attrs                               uint32
	Created, Accessed, Modified, Change time.Time
	Size                                int64
	Volume                              uint32 // volume serial number
	Index                               uint64 // file index: unique on the volume while the file exists
	Links                               uint32
}

// fileBasicInfo is FILE_BASIC_INFO.
type fileBasicInfo struct {
	CreationTime, LastAccessTime, LastWriteTime, ChangeTime int64
	FileAttributes                                          uint32
	_                                                       uint32
}

// filetime converts a FILETIME count; 0 (not kept by the file system) is
// the zero Time, and a time before 1678 (out of int64 ns) is clamped.
func filetime(t int64) time.Time {
	const minFiletime = 116444736000000000 - math.MaxInt64/100 // 1678
	switch {
	case t == 0:
		return time.Time{}
	case t < minFiletime:
		t = minFiletime
	}
	ft := windows.Filetime{LowDateTime: uint32(t), HighDateTime: uint32(uint64(t) >> 32)}
	return time.Unix(0, ft.Nanoseconds())
}

// fileStandardInfo is FILE_STANDARD_INFO.
type fileStandardInfo struct {
	AllocationSize, EndOfFile int64
	NumberOfLinks             uint32
	DeletePending, Directory  bool
	_                         [2]byte
}

const (
	fileStandardInfoClass   = 1 // FileStandardInfo of GetFileInformationByHandleEx
	fileInternalInformation = 6 // FILE_INTERNAL_INFORMATION of NtQueryInformationFile
)

// volumeSerials caches the serial number of each volume (VolumeKey ->
// uint32): it is the same for every file of the volume, and asking for it
// costs more than the rest of a stat (about 1 ms per file under Wine).
var volumeSerials sync.Map

func volumeSerial(h windows.Handle, path string) uint32 {
	key := VolumeKey(path)
	if v, ok := volumeSerials.Load(key); ok && key != "" {
		return v.(uint32)
	}
	var serial uint32
	if err := windows.GetVolumeInformationByHandle(h, nil, 0, &serial, nil, nil, nil, 0); err != nil {
		return 0
	}
	if key != "" {
		volumeSerials.Store(key, serial)
	}
	return serial
}

// StatHandle returns the Info of an open handle of path: FILE_BASIC_INFO
// for attributes and times, with the change time that Win32's usual calls
// do not give; FILE_STANDARD_INFO for size and links; the file index
// (FILE_INTERNAL_INFORMATION); and the volume serial number, asked once
// per volume.
func StatHandle(h windows.Handle, path string) (*Info, error) {
	var bi fileBasicInfo
	if err := windows.GetFileInformationByHandleEx(h, windows.FileBasicInfo, (*byte)(unsafe.Pointer(&bi)), uint32(unsafe.Sizeof(bi))); err != nil {
		return nil, err
	}
	var si fileStandardInfo
	if err := windows.GetFileInformationByHandleEx(h, fileStandardInfoClass, (*byte)(unsafe.Pointer(&si)), uint32(unsafe.Sizeof(si))); err != nil {
		return nil, err
	}
	info := &Info{
		Attrs:    bi.FileAttributes,
		Created:  filetime(bi.CreationTime),
		Accessed: filetime(bi.LastAccessTime),
		Modified: filetime(bi.LastWriteTime),
		Change:   filetime(bi.ChangeTime),
		Size:     si.EndOfFile,
		Links:    si.NumberOfLinks,
		Volume:   volumeSerial(h, path),
	}
	if info.Modified.IsZero() {
		info.Modified = time.Unix(0, 0) // callers take UnixNano of it
	}
	if info.Accessed.IsZero() {
		info.Accessed = info.Modified
	}
	if info.Change.IsZero() { // a file system without one (FAT)
		info.Change = info.Modified
	}
	var iosb windows.IO_STATUS_BLOCK
	var index uint64
	if err := windows.NtQueryInformationFile(h, &iosb, (*byte)(unsafe.Pointer(&index)), 8, fileInternalInformation); err == nil {
		info.Index = index
	}
	return info, nil
}

// Stat is StatHandle of an open file.
func Stat(f *os.File) (*Info, error) {
	info, err := StatHandle(windows.Handle(f.Fd()), f.Name())
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: f.Name(), Err: err}
	}
	return info, nil
}

// Lstat returns the Info of path itself (a link is not followed). It opens
// the file for its attributes only, which no share mode refuses.
func Lstat(path string) (*Info, error) {
	h, err := openHandle(path, fileReadAttributes, windows.OPEN_EXISTING, 0)
	if err != nil {
		return nil, err
	}
	defer windows.CloseHandle(h)
	info, err := StatHandle(h, path)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	return info, nil
}

// ReadSD returns the security descriptor of path, self-relative, with
// owner, group and DACL, and the SACL when SeSecurityPrivilege is held, and
// which of those parts it read.
func ReadSD(path string) ([]byte, uint8, error) {
	parts := PartOwner | PartGroup | PartDACL
	access := uint32(windows.READ_CONTROL)
	if securityHeld.Load() {
		parts |= PartSACL
		access |= windows.ACCESS_SYSTEM_SECURITY
	}
	h, err := openHandle(path, access, windows.OPEN_EXISTING, 0)
	if err != nil && parts&PartSACL != 0 {
		parts &^= PartSACL
		h, err = openHandle(path, windows.READ_CONTROL, windows.OPEN_EXISTING, 0)
	}
	if err != nil {
		return nil, 0, err
	}
	defer windows.CloseHandle(h)
	sd, err := windows.GetSecurityInfo(h, windows.SE_FILE_OBJECT, securityInformation(parts))
	if err != nil {
		return nil, 0, &fs.PathError{Op: "GetSecurityInfo", Path: path, Err: err}
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(sd)), sd.Length())
	return append([]byte(nil), b...), parts, nil
}

func securityInformation(parts uint8) windows.SECURITY_INFORMATION {
	var si windows.SECURITY_INFORMATION
	if parts&PartOwner != 0 {
		si |= windows.OWNER_SECURITY_INFORMATION
	}
	if parts&PartGroup != 0 {
		si |= windows.GROUP_SECURITY_INFORMATION
	}
	if parts&PartDACL != 0 {
		si |= windows.DACL_SECURITY_INFORMATION
	}
	if parts&PartSACL != 0 {
		si |= windows.SACL_SECURITY_INFORMATION
	}
	return si
}

// SetSD sets the parts of a recorded security descriptor that can be set:
// all of them with SeRestorePrivilege (and SeSecurityPrivilege for the
// SACL), else what the user may set (the DACL of a file they created,
// and an owner that is themselves). It returns the parts it set; err
// says why the others were not. The descriptor is set as recorded, with
// its inherited ACEs, and not propagated to children (which get their own).
func SetSD(path string, sd []byte, parts uint8) (uint8, error) {
	info, err := ParseSD(sd)
	if err != nil {
		return 0, err
	}
	desc := (*windows.SECURITY_DESCRIPTOR)(unsafe.Pointer(&sd[0]))
	if !desc.IsValid() {
		return 0, ErrBadSD
	}
	want := parts & info.Parts
	var why []error
	can := want
	if can&PartSACL != 0 && !securityHeld.Load() {
		can &^= PartSACL
		why = append(why, errors.New("setting a SACL needs SeSecurityPrivilege"))
	}
	// the whole first, then without owner and SACL, then the DACL alone
	for _, try := range []uint8{can, can &^ (PartOwner | PartSACL), can & PartDACL} {
		if try == 0 {
			continue
		}
		err := setSD(path, desc, try)
		if err == nil {
			if try != want {
				return try, fmt.Errorf("%s not set: %w", PartNames(want&^try), errors.Join(why...))
			}
			return try, nil
		}
		if len(why) == 0 || !errors.Is(why[len(why)-1], err) {
			why = append(why, err)
		}
	}
	if want == 0 {
		return 0, nil
	}
	return 0, errors.Join(why...)
}

func setSD(path string, desc *windows.SECURITY_DESCRIPTOR, parts uint8) error {
	access := uint32(windows.WRITE_DAC)
	if parts&(PartOwner|PartGroup) != 0 {
		access |= windows.WRITE_OWNER
	}
	if parts&PartSACL != 0 {
		access |= windows.ACCESS_SYSTEM_SECURITY
	}
	h, err := openHandle(path, access, windows.OPEN_EXISTING, 0)
	if err != nil {
		return err
	}
	defer windows.CloseHandle(h)
	// Whether the DACL inherits is the descriptor's own control bit
	// (SE_DACL_PROTECTED), which the kernel takes with the DACL; the
	// (UN)PROTECTED_* flags are SetSecurityInfo's, not this call's.
	if err := windows.SetKernelObjectSecurity(h, securityInformation(parts), desc); err != nil {
		return &fs.PathError{Op: "SetKernelObjectSecurity", Path: path, Err: err}
	}
	return nil
}

// Streams ----------------------------------------------------------------

// StreamInfo is an alternate data stream of a file.
type StreamInfo struct {
	Name string
	Size int64
}

var (
	kernel32             = windows.NewLazySystemDLL("kernel32.dll")
	procFindFirstStreamW = kernel32.NewProc("FindFirstStreamW")
	procFindNextStreamW  = kernel32.NewProc("FindNextStreamW")
)

// win32FindStreamData is WIN32_FIND_STREAM_DATA.
type win32FindStreamData struct {
	StreamSize int64
	StreamName [windows.MAX_PATH + 36]uint16
}

// ErrStreamsUnsupported means the system or filesystem cannot list streams
// (FAT, some network filesystems, Wine).
var ErrStreamsUnsupported = errors.New("alternate data streams cannot be listed here")

// Streams lists the alternate data streams of path ($DATA streams other
// than the file's content).
func Streams(path string) ([]StreamInfo, error) {
	if err := procFindFirstStreamW.Find(); err != nil {
		return nil, ErrStreamsUnsupported
	}
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return nil, err
	}
	var data win32FindStreamData
	r1, _, e := procFindFirstStreamW.Call(uintptr(unsafe.Pointer(p)), 0, uintptr(unsafe.Pointer(&data)), 0)
	h := windows.Handle(r1)
	if h == windows.InvalidHandle {
		switch {
		case errors.Is(e, windows.ERROR_HANDLE_EOF):
			return nil, nil // no stream at all (a directory without named streams)
		case errors.Is(e, windows.ERROR_INVALID_PARAMETER), errors.Is(e, windows.ERROR_CALL_NOT_IMPLEMENTED), errors.Is(e, windows.ERROR_INVALID_FUNCTION):
			return nil, ErrStreamsUnsupported
		}
		return nil, &fs.PathError{Op: "FindFirstStreamW", Path: path, Err: e}
	}
	defer windows.FindClose(h)
	var out []StreamInfo
	for {
		if name, ok := StreamName(windows.UTF16ToString(data.StreamName[:])); ok {
			out = append(out, StreamInfo{Name: name, Size: data.StreamSize})
		}
		r1, _, e := procFindNextStreamW.Call(uintptr(h), uintptr(unsafe.Pointer(&data)))
		if r1 == 0 {
			if errors.Is(e, windows.ERROR_HANDLE_EOF) {
				return out, nil
			}
			return out, &fs.PathError{Op: "FindNextStreamW", Path: path, Err: e}
		}
	}
}

// OpenStream opens the stream name of path for reading.
func OpenStream(path, name string) (*os.File, error) {
	if err := CheckStreamName(name); err != nil {
		return nil, err
	}
	return Open(path + ":" + name)
}

// CreateStream creates (or truncates) the stream name of path for writing.
func CreateStream(path, name string) (*os.File, error) {
	if err := CheckStreamName(name); err != nil {
		return nil, err
	}
	h, err := openHandle(path+":"+name, windows.GENERIC_WRITE, windows.CREATE_ALWAYS, 0)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(h), path+":"+name), nil
}

// Setting times and attributes ---------------------------------------------

// SetTimes sets the creation and modification times of path (a zero time
// is left as it is) without following a final link.
func SetTimes(path string, created, modified time.Time) error {
	h, err := openHandle(path, windows.FILE_WRITE_ATTRIBUTES, windows.OPEN_EXISTING, 0)
	if err != nil {
		return err
	}
	defer windows.CloseHandle(h)
	var c, m *windows.Filetime
	if !created.IsZero() {
		ft := windows.NsecToFiletime(created.UnixNano())
		c = &ft
	}
	if !modified.IsZero() {
		ft := windows.NsecToFiletime(modified.UnixNano())
		m = &ft
	}
	if err := windows.SetFileTime(h, c, nil, m); err != nil {
		return &fs.PathError{Op: "SetFileTime", Path: path, Err: err}
	}
	return nil
}

// SetAttrs sets the settable attributes of path to those of attrs.
func SetAttrs(path string, attrs uint32) error {
	p, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return err
	}
	a := attrs & Settable
	if a == 0 {
		a = AttrNormal
	}
	if err := windows.SetFileAttributes(p, a); err != nil {
		return &fs.PathError{Op: "SetFileAttributes", Path: path, Err: err}
	}
	return nil
}

package snapshot

import (
	"path/filepath"

	"golang.org/x/sys/windows"

	"github.com/stillpoint-backup/stillpoint/internal/vss"
)

// DefaultProviders: Volume Shadow Copies, else live reading.
func DefaultProviders() []Provider {
	return []Provider{&VSS{Options: vss.DefaultOptions()}, None{}}
}

// filesystemOf names the volume holding path and its filesystem (NTFS,
// ReFS, FAT32 ...).
func filesystemOf(path string) (FSInfo, error) {
	info := FSInfo{Mountpoint: filepath.VolumeName(path) + `\`}
	vol, err := systemVolumes{}.VolumeOf(path)
	if err != nil {
		return info, nil // a share, or a path the walk reports
	}
	info.Mountpoint = vol
	p, err := windows.UTF16PtrFromString(vol)
	if err != nil {
		return info, nil
	}
	fsName := make([]uint16, windows.MAX_PATH+1)
	var serial, maxLen, flags uint32
	if err := windows.GetVolumeInformation(p, nil, 0, &serial, &maxLen, &flags, &fsName[0], uint32(len(fsName))); err == nil {
		info.FSType = windows.UTF16ToString(fsName)
		info.ReadOnly = flags&windows.FILE_READ_ONLY_VOLUME != 0
	}
	return info, nil
}

func subvolumeOf(path string, _ FSInfo) (string, *Subvolume) { return path, nil }

func processStart(int) uint64 { return 0 }

// FindLeftovers finds nothing: VSS_CTX_BACKUP shadow copies vanish with
// the process that made them.
func FindLeftovers([]string) ([]Leftover, error) { return nil, nil }

// Cleanup has nothing to remove on this platform.
func Cleanup([]Leftover) error { return nil }

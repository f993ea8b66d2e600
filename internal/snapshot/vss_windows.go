package snapshot

import (
	"strings"

	"golang.org/x/sys/windows"

	"github.com/stillpoint-backup/stillpoint/internal/vss"
)

func systemVSSFactory() vss.Factory { return vss.NewFactory() }

func systemVSSProbe() error { return vss.Probe() }

// systemVolumes asks Windows.
type systemVolumes struct{}

func (systemVolumes) VolumeOf(p string) (string, error) {
	pp, err := windows.UTF16PtrFromString(p)
	if err != nil {
		return "", err
	}
	buf := make([]uint16, windows.MAX_LONG_PATH)
	if err := windows.GetVolumePathName(pp, &buf[0], uint32(len(buf))); err != nil {
		return "", err
	}
	v := windows.UTF16ToString(buf)
	if !strings.HasSuffix(v, `\`) {
		v += `\`
	}
	return v, nil
}

// MountsBelow lists every volume's mount paths and keeps those below dir.
func (systemVolumes) MountsBelow(dir string) ([]string, error) {
	name := make([]uint16, windows.MAX_PATH+1)
	h, err := windows.FindFirstVolume(&name[0], uint32(len(name)))
	if err != nil {
		return nil, err
	}
	defer windows.FindVolumeClose(h)
	prefix := strings.TrimSuffix(dir, `\`) + `\`
	var out []string
	for {
		paths := make([]uint16, 4096)
		var n uint32
		if err := windows.GetVolumePathNamesForVolumeName(&name[0], &paths[0], uint32(len(paths)), &n); err == nil {
			for _, p := range splitMultiSz(paths[:n]) {
				if len(p) > len(prefix) && strings.EqualFold(p[:len(prefix)], prefix) {
					out = append(out, p)
				}
			}
		}
		if err := windows.FindNextVolume(h, &name[0], uint32(len(name))); err != nil {
			if err == windows.ERROR_NO_MORE_FILES {
				return out, nil
			}
			return out, err
		}
	}
}

// splitMultiSz splits a list of NUL-terminated strings ending in an empty one.
func splitMultiSz(b []uint16) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i == start {
				break
			}
			out = append(out, windows.UTF16ToString(b[start:i]))
			start = i + 1
		}
	}
	return out
}

func (systemVolumes) Unsupported(volume string) string {
	p, err := windows.UTF16PtrFromString(volume)
	if err != nil {
		return err.Error()
	}
	switch windows.GetDriveType(p) {
	case windows.DRIVE_REMOTE:
		return shareReason
	case windows.DRIVE_CDROM:
		return "VSS does not snap CD or DVD drives; read live"
	case windows.DRIVE_NO_ROOT_DIR:
		return volume + " is not a volume"
	}
	return ""
}

func vssDoctor(paths []string) *VSSReport {
	if err := vss.Probe(); err != nil {
		return &VSSReport{Writers: []VSSWriterInfo{}, Shadows: []VSSShadowInfo{}, Providers: []VSSProviderInfo{}, Error: err.Error()}
	}
	return vssReport(vss.NewRequester(vss.NewFactory(), vss.DefaultOptions()), systemVolumes{}, paths)
}

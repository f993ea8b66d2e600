//go:build !windows

package snapshot

import (
	"errors"
	"runtime"

	"github.com/stillpoint-backup/stillpoint/internal/vss"
)

var errNoVSS = errors.New("volume shadow copies exist only on Windows, not on " + runtime.GOOS)

func systemVSSFactory() vss.Factory {
	return func() (vss.Components, error) { return nil, errNoVSS }
}

func systemVSSProbe() error { return errNoVSS }

type systemVolumes struct{}

func (systemVolumes) VolumeOf(string) (string, error)      { return "", errNoVSS }
func (systemVolumes) MountsBelow(string) ([]string, error) { return nil, errNoVSS }
func (systemVolumes) Unsupported(string) string            { return errNoVSS.Error() }

func vssDoctor([]string) *VSSReport { return nil }

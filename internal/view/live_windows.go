package view

import (
	"errors"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/winmeta"
)

// WindowsMeta implements WindowsMetaView: the security descriptor (nil
// when it cannot be read) and the alternate data streams (none where the
// filesystem or system cannot list them).
func (l *Live) WindowsMeta(p string) (*WindowsMeta, error) {
	if pathmap.Native.Virtual(p) {
		return nil, nil
	}
	op := l.Path(p)
	m := &WindowsMeta{}
	var errs []error
	sd, parts, err := winmeta.ReadSD(op)
	if err != nil {
		errs = append(errs, err)
	} else {
		m.SD, m.SDParts = sd, parts
	}
	streams, err := winmeta.Streams(op)
	switch {
	case errors.Is(err, winmeta.ErrStreamsUnsupported):
	case err != nil:
		errs = append(errs, err)
	}
	for _, s := range streams {
		m.Streams = append(m.Streams, Stream{Name: s.Name, Size: s.Size})
	}
	return m, errors.Join(errs...)
}

// OpenStream implements WindowsMetaView.
func (l *Live) OpenStream(p, name string) (File, error) {
	f, err := winmeta.OpenStream(l.Path(p), name)
	if err != nil {
		return nil, err
	}
	return &osFile{f}, nil
}

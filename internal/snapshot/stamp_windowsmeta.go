package snapshot

import (
	"errors"

	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// WindowsMeta implements view.WindowsMetaView for the wrapped view, so a
// snapshot's files keep their security descriptors and streams.
func (s *stamped) WindowsMeta(p string) (*view.WindowsMeta, error) {
	if wv, ok := s.View.(view.WindowsMetaView); ok {
		return wv.WindowsMeta(p)
	}
	return nil, nil
}

// OpenStream implements view.WindowsMetaView.
func (s *stamped) OpenStream(p, name string) (view.File, error) {
	wv, ok := s.View.(view.WindowsMetaView)
	if !ok {
		return nil, errors.New("this view has no alternate data streams")
	}
	f, err := wv.OpenStream(p, name)
	if err != nil {
		return nil, err
	}
	return &stampedFile{File: f, dev: s.dev, c: s.c}, nil
}

var _ view.WindowsMetaView = (*stamped)(nil)

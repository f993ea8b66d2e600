package snapshot

import (
	"errors"

	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// WindowsMeta implements view.WindowsMetaView through the view of p's
// route: nothing where that view has no Windows metadata.
func (r *router) WindowsMeta(p string) (*view.WindowsMeta, error) {
	if wv, ok := r.pick(p).(view.WindowsMetaView); ok {
		return wv.WindowsMeta(p)
	}
	return nil, nil
}

// OpenStream implements view.WindowsMetaView.
func (r *router) OpenStream(p, name string) (view.File, error) {
	if wv, ok := r.pick(p).(view.WindowsMetaView); ok {
		return wv.OpenStream(p, name)
	}
	return nil, errors.New("this view has no alternate data streams")
}

var _ view.WindowsMetaView = (*router)(nil)

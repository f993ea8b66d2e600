package archiver

import (
	"fmt"

	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// windowsMeta records the security descriptor and the alternate data
// streams of p, where the view has them (Windows). A descriptor that cannot
// be read is left out (SDParts says what was read); a stream that cannot be
// read is left out and reported as a problem of path:stream, while the
// file itself keeps its outcome.
func (a *Archiver) windowsMeta(p string, n *repo.Node) {
	wv, ok := a.view.(view.WindowsMetaView)
	if !ok {
		return
	}
	m, _ := wv.WindowsMeta(p)
	if m == nil {
		return
	}
	n.SD, n.SDParts = m.SD, m.SDParts
	for _, s := range m.Streams {
		st, err := a.storeStream(wv, p, s)
		if err != nil {
			if a.ctx.Err() == nil {
				a.record(Problem{Path: p + ":" + s.Name, Outcome: outcome.Failed, Reason: classify(err),
					Error: fmt.Sprintf("alternate data stream %s not stored: %v", s.Name, err)})
			}
			continue
		}
		n.Streams = append(n.Streams, st)
	}
}

// storeStream chunks and stores one stream like file content: its blobs
// deduplicate with every file's.
func (a *Archiver) storeStream(wv view.WindowsMetaView, p string, s view.Stream) (repo.Stream, error) {
	f, err := wv.OpenStream(p, s.Name)
	if err != nil {
		return repo.Stream{}, err
	}
	defer f.Close()
	j := &fileJob{path: p + ":" + s.Name, st: &view.Stat{Type: view.TypeRegular, Size: s.Size}}
	if err := a.readContent(f, j); err != nil {
		return repo.Stream{}, err
	}
	return repo.Stream{Name: s.Name, Size: uint64(j.read), Content: append([]repo.ID(nil), j.content...)}, nil
}

// streamsKnown tells whether every stream blob of a parent's node is still
// counted as stored, so the node's streams can be reused.
func (a *Archiver) streamsKnown(old *repo.Node) bool {
	for _, s := range old.Streams {
		if !a.allKnown(s.Content) {
			return false
		}
	}
	return true
}

package restore

import (
	"fmt"
	"io"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/stillpoint-backup/stillpoint/internal/repo"
	"github.com/stillpoint-backup/stillpoint/internal/winmeta"
)

// writeBlobs writes the data blobs ids to w in order, each read from its
// pack and verified: how a stream's content is restored (streams are small
// as a rule, so they are read blob by blob rather than planned with the
// files' content).
func (rs *restorer) writeBlobs(w io.Writer, ids []repo.ID) error {
	for _, id := range ids {
		bi, ok := rs.r.LookupBlob(id)
		if !ok {
			return fmt.Errorf("blob %s is not in the index", id.Short())
		}
		pr := rs.r.OpenPack(bi.Pack)
		sealed, err := pr.ReadRange(rs.ctx, int64(bi.Offset), int64(bi.Length))
		if err != nil {
			return fmt.Errorf("pack %s cannot be read: %w", bi.Pack.Short(), err)
		}
		plain, err := pr.Blob(bi, sealed)
		if err != nil {
			return err
		}
		if _, err := w.Write(plain); err != nil {
			return err
		}
	}
	return nil
}

// foreignNotes gathers the metadata a restore cannot set on this platform
// (a Windows snapshot on Unix, or the reverse), for one note at the end
// rather than one per file.
type foreignNotes struct {
	mu      sync.Mutex
	entries map[string]int      // what was lost -> how many entries
	example map[string]string   // what was lost -> the first path
	streams map[string]struct{} // stream names not restored
}

func (f *foreignNotes) add(what, p string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.entries == nil {
		f.entries, f.example, f.streams = map[string]int{}, map[string]string{}, map[string]struct{}{}
	}
	if f.entries[what] == 0 {
		f.example[what] = p
	}
	f.entries[what]++
}

// noteWindowsNode records what of a Windows node's metadata this platform
// (not Windows) cannot set back.
func (f *foreignNotes) noteWindowsNode(p string, n *repo.Node) {
	if a := n.Attrs & (winmeta.Settable &^ (winmeta.AttrReadOnly | winmeta.AttrArchive)); a != 0 {
		f.add("attributes "+winmeta.AttrString(a), p)
	}
	if len(n.SD) > 0 {
		f.add("security descriptor", p)
	}
	if n.Created != 0 {
		f.add("creation time", p)
	}
	if len(n.Streams) > 0 {
		f.add("alternate data streams", p)
		f.mu.Lock()
		for _, s := range n.Streams {
			f.streams[s.Name] = struct{}{}
		}
		f.mu.Unlock()
	}
}

// noteUnixNode records what of a node recorded on Unix Windows cannot set.
func (f *foreignNotes) noteUnixNode(p string, n *repo.Node) {
	if len(n.Xattrs) > 0 {
		f.add("extended attributes", p)
	}
	if n.Mode&0o7000 != 0 {
		f.add("setuid, setgid and sticky bits", p)
	}
}

// event is the note of what was not set, nil
// when nothing was lost.
func (f *foreignNotes) event() *Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.entries) == 0 {
		return nil
	}
	whats := make([]string, 0, len(f.entries))
	for w := range f.entries {
		whats = append(whats, w)
	}
	sort.Strings(whats)
	var parts []string
	for _, w := range whats {
		s := fmt.Sprintf("%s of %d entries (first %s)", w, f.entries[w], f.example[w])
		if w == "alternate data streams" {
			names := make([]string, 0, len(f.streams))
			for n := range f.streams {
				names = append(names, n)
			}
			sort.Strings(names)
			if len(names) > 5 {
				names = append(names[:5], "...")
			}
			s += ": " + strings.Join(names, ", ")
		}
		parts = append(parts, s)
	}
	return &Event{Path: path.Clean("/"), Kind: "warning",
		Message: fmt.Sprintf("metadata not restored on %s (the platform or the user cannot set it): %s", runtime.GOOS, strings.Join(parts, "; "))}
}

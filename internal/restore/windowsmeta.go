package restore

import (
	"fmt"
	"path"
	"runtime"
	"sort"
	"strings"
	"sync"
)

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

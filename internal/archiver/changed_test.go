package archiver_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/archiver"
	"github.com/stillpoint-backup/stillpoint/internal/outcome"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// growingReader reads a file, then appends to it, and classes it changed
// in the words it was given: as a reader that finds the change but gives
// no reason of its own.
type growingReader struct{ reason, detail string }

func (g growingReader) ReadFile(_ context.Context, v view.View, p string, _ *view.Stat, _ bool, attempt archiver.Attempt) archiver.ReadResult {
	f, err := v.Open(p)
	if err != nil {
		return archiver.ReadResult{Outcome: outcome.Failed, Reason: outcome.ReasonIO, Err: err}
	}
	defer f.Close()
	if _, err := attempt(f, nil); err != nil {
		return archiver.ReadResult{Outcome: outcome.Failed, Reason: outcome.ReasonIO, Err: err}
	}
	w, err := os.OpenFile((&view.Live{}).Path(p), os.O_WRONLY|os.O_APPEND, 0) // C:\... for /C/...
	if err == nil {
		_, err = w.WriteString(" and more")
		w.Close()
	}
	if err != nil {
		return archiver.ReadResult{Outcome: outcome.Failed, Reason: outcome.ReasonIO, Err: err}
	}
	return archiver.ReadResult{Outcome: outcome.Changed, Stored: true, Reason: g.reason, Detail: g.detail}
}

// A file that changed while read is reported with what changed, never
// with an empty reason.
func TestChangedFileHasAReason(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reader growingReader
		want   string
	}{
		{"no words from the reader", growingReader{}, "size 5 → 14"},
		{"the reader's detail", growingReader{detail: "size 5 → 14 while read"}, "size 5 → 14 while read"},
		{"the reader's reason", growingReader{reason: "changed while read", detail: "ignored"}, "changed while read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			p := filepath.Join(src, "f")
			must(t, os.WriteFile(p, []byte("hello"), 0o644))
			r := newRepo(t)
			res, err := archiver.New(r, &view.Live{}, archiver.Options{Reader: tc.reader}).Run(context.Background(), []string{src})
			must(t, err)
			if len(res.Problems) != 1 || res.Problems[0].Outcome != outcome.Changed {
				t.Fatalf("problems %+v, want one changed file", res.Problems)
			}
			if got := res.Problems[0].Reason; !strings.Contains(got, tc.want) {
				t.Fatalf("reason %q, want it to say %q", got, tc.want)
			}
			must(t, r.Flush(context.Background()))
			tree, err := r.LoadTree(context.Background(), subtreeAt(t, r, res.Tree, src))
			must(t, err)
			if n := tree.Find("f"); n == nil || n.Reason != res.Problems[0].Reason {
				t.Fatalf("stored node %+v, want the reason %q", n, res.Problems[0].Reason)
			}
		})
	}
}

// The direct reader says what changed too.
func TestDirectReaderSaysWhatChanged(t *testing.T) {
	src := t.TempDir()
	p := filepath.Join(src, "f")
	must(t, os.WriteFile(p, []byte("hello"), 0o644))
	attempt := func(view.File, *view.Stat) (int64, error) {
		must(t, os.WriteFile(p, []byte("hello, longer"), 0o644))
		return 5, nil
	}
	res := archiver.DirectReader{}.ReadFile(context.Background(), &view.Live{}, p, nil, false, attempt)
	if res.Outcome != outcome.Changed || !strings.Contains(res.Reason, "size 5 → 13") || !strings.HasSuffix(res.Reason, "changed while read") {
		t.Fatalf("%+v, want changed with the size change as its reason", res)
	}
}

// A file that grows right after the read that ended it (a short read, with
// no read of 0 bytes after it) is changed for the direct reader: the
// stat after the read is compared with the one before it.
func TestDirectReaderCatchesGrowthAfterLastRead(t *testing.T) {
	src := t.TempDir()
	p := filepath.Join(src, "f")
	must(t, os.WriteFile(p, []byte("hello"), 0o644))
	attempt := func(f view.File, st *view.Stat) (int64, error) {
		if st == nil || st.Size != 5 {
			t.Fatalf("attempt given stat %+v, want the open file's", st)
		}
		buf := make([]byte, st.Size+1)
		n, err := io.ReadFull(f, buf)
		if err != io.ErrUnexpectedEOF || n != 5 {
			t.Fatalf("read %d, %v; want 5 and the end", n, err)
		}
		w, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		must(t, err)
		_, err = w.WriteString(" and more")
		must(t, err)
		must(t, w.Close())
		return int64(n), nil
	}
	res := archiver.DirectReader{}.ReadFile(context.Background(), &view.Live{}, p, nil, false, attempt)
	if res.Outcome != outcome.Changed || !strings.Contains(res.Reason, "size 5 → 14") {
		t.Fatalf("%+v, want changed, size 5 → 14", res)
	}
}

package view

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, data, 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func appendTo(t *testing.T, p, s string) {
	t.Helper()
	w, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// The raw-descriptor file reads a file whole, with one read when the
// buffer has room for more than the size its Stat gave, and its Stat is
// the file's.
func TestFdFileReadsWholeAndStats(t *testing.T) {
	data := make([]byte, 3000)
	rand.Read(data)
	p := writeTemp(t, data)
	l := &Live{}
	want, err := l.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	f, err := l.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, ok := f.(interface{ Fd() uintptr })
	if !ok {
		t.Fatalf("%T has no Fd: the lock probes of livefile need it", f)
	}
	var raw unix.Stat_t
	if err := unix.Fstat(int(fd.Fd()), &raw); err != nil || raw.Ino != want.Ino {
		t.Fatalf("Fd: fstat %v, inode %d, want %d", err, raw.Ino, want.Ino)
	}
	if n, ok := f.(interface{ Name() string }); !ok || n.Name() != p {
		t.Errorf("Name() = %v, want %s", n, p)
	}
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if st.Type != TypeRegular || st.Size != 3000 || st.Mode != 0o640 || st.Ino != want.Ino || st.Dev != want.Dev ||
		!st.Mtime.Equal(want.Mtime) || !st.Ctime.Equal(want.Ctime) || st.Uid != want.Uid || st.Nlink != 1 {
		t.Fatalf("Stat %+v, want the lstat %+v", st, want)
	}
	buf := make([]byte, len(data)+1)
	n, err := f.Read(buf)
	if n != len(data) || err != io.EOF || !bytes.Equal(buf[:n], data) {
		t.Fatalf("Read = %d, %v; want %d bytes and io.EOF (a short read at the size is the end)", n, err, len(data))
	}
	if n, err := f.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after the end = %d, %v; want 0, io.EOF", n, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("second Close = %v, want ErrClosed", err)
	}
	if _, err := f.Read(buf); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close = %v, want ErrClosed", err)
	}
}

// Small reads come whole too, and without a Stat a short read is not
// taken for the end: the next read says it.
func TestFdFileSmallReadsAndNoStat(t *testing.T) {
	data := []byte("hello, world")
	p := writeTemp(t, data)
	f, err := (&Live{}).Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 100)
	n, err := f.Read(buf)
	if n != len(data) || err != nil {
		t.Fatalf("Read without a Stat = %d, %v; want %d, nil", n, err, len(data))
	}
	if n, err := f.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("next Read = %d, %v; want 0, io.EOF", n, err)
	}

	g, err := (&Live{}).Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Stat(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(iotestOneByte{g})
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("one byte at a time: %q, %v; want %q", got, err, data)
	}
}

type iotestOneByte struct{ r io.Reader }

func (o iotestOneByte) Read(p []byte) (int, error) { return o.r.Read(p[:min(len(p), 1)]) }

// A file that grows while read is still seen changed: whether it grew
// before the read (the read returns more than the Stat said) or after the
// short read that ended it, a Stat after the read shows another size and
// mtime than the one before.
func TestFdFileGrowthShowsInStatAfter(t *testing.T) {
	for _, when := range []string{"before the read", "after the read"} {
		t.Run(when, func(t *testing.T) {
			p := writeTemp(t, []byte("hello"))
			old := time.Now().Add(-time.Hour)
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
			f, err := (&Live{}).Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			before, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if when == "before the read" {
				appendTo(t, p, " and more")
			}
			got, err := io.ReadAll(f)
			if err != nil {
				t.Fatal(err)
			}
			if when == "after the read" {
				if string(got) != "hello" {
					t.Fatalf("read %q, want hello", got)
				}
				appendTo(t, p, " and more")
			} else if string(got) != "hello and more" {
				t.Fatalf("read %q, want all of the grown file", got)
			}
			after, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			if after.Size != 14 || before.Size == after.Size || before.Mtime.Equal(after.Mtime) {
				t.Fatalf("stat before %d %v, after %d %v: the growth does not show", before.Size, before.Mtime, after.Size, after.Mtime)
			}
		})
	}
}

// A path that has become a FIFO since it was listed opens at once (no
// writer to wait for) and says what it is.
func TestFdFileOpenDoesNotWaitOnFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := (&Live{}).Open(p)
		if err == nil {
			var st *Stat
			if st, err = f.Stat(); err == nil && st.Type != TypeFIFO {
				err = errors.New("not a FIFO")
			}
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("open of a FIFO waits for a writer")
	}
}

// Open fails as os.Open did: a *PathError of the path, a symlink not
// followed.
func TestFdFileOpenErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := (&Live{}).Open(filepath.Join(dir, "missing"))
	var pe *os.PathError
	if !errors.As(err, &pe) || pe.Op != "open" || pe.Path != filepath.Join(dir, "missing") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v, want a PathError of open with ErrNotExist", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("/etc/hostname", link); err != nil {
		t.Fatal(err)
	}
	if _, err := (&Live{}).Open(link); !errors.Is(err, unix.ELOOP) {
		t.Fatalf("symlink: %v, want ELOOP (not followed)", err)
	}
}

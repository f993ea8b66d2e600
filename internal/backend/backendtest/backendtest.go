// Package backendtest is the conformance suite every backend.Backend must
// pass: the rules of package backend, each checked by a subtest.
package backendtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// Run runs the suite. newBackend must return a fresh, empty backend for
// every call; the suite calls Create on it when it is a backend.Creator.
func Run(t *testing.T, newBackend func(t *testing.T) backend.Backend) {
	open := func(t *testing.T) backend.Backend {
		t.Helper()
		b := newBackend(t)
		if c, ok := b.(backend.Creator); ok {
			if err := c.Create(context.Background()); err != nil {
				t.Fatalf("Create: %v", err)
			}
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, b backend.Backend)
	}{
		{"SaveLoadEveryKind", testSaveLoad},
		{"WriteOnce", testWriteOnce},
		{"NotFound", testNotFound},
		{"RangedLoad", testRangedLoad},
		{"LoadInto", testLoadInto},
		{"EmptyFile", testEmptyFile},
		{"List", testList},
		{"RemoveIdempotent", testRemove},
		{"ConcurrentSavesOfOneName", testConcurrentSameName},
		{"ConcurrentSavesOfManyNames", testConcurrentManyNames},
		{"CallerOwnsBuffers", testBuffers},
		{"CanceledContext", testCanceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open(t)) })
	}
}

var ctx = context.Background()

// Name returns a random pack-like name (64 hex digits).
func Name() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func mustSave(t *testing.T, b backend.Backend, h backend.Handle, data []byte) {
	t.Helper()
	if err := b.Save(ctx, h, data); err != nil {
		t.Fatalf("Save %s: %v", h, err)
	}
}

func mustLoad(t *testing.T, b backend.Backend, h backend.Handle, off, n int64) []byte {
	t.Helper()
	data, err := b.Load(ctx, h, off, n)
	if err != nil {
		t.Fatalf("Load %s [%d,+%d]: %v", h, off, n, err)
	}
	return data
}

func handles() []backend.Handle {
	var hs []backend.Handle
	for _, k := range backend.Kinds {
		name := Name()
		if k == backend.Config {
			name = "config"
		}
		hs = append(hs, backend.Handle{Kind: k, Name: name})
	}
	return hs
}

func testSaveLoad(t *testing.T, b backend.Backend) {
	for i, h := range handles() {
		data := randBytes(1000 + i*777)
		mustSave(t, b, h, data)
		if got := mustLoad(t, b, h, 0, 0); !bytes.Equal(got, data) {
			t.Errorf("%s: loaded %d bytes that differ from the %d saved", h, len(got), len(data))
		}
		fi, err := b.Stat(ctx, h)
		if err != nil {
			t.Fatalf("Stat %s: %v", h, err)
		}
		if fi.Size != int64(len(data)) || fi.Name != h.Name {
			t.Errorf("Stat %s = %+v, want name %s size %d", h, fi, h.Name, len(data))
		}
	}
}

func testWriteOnce(t *testing.T, b backend.Backend) {
	for _, h := range handles() {
		first := []byte("first version of " + h.String())
		mustSave(t, b, h, first)
		err := b.Save(ctx, h, []byte("second"))
		if !errors.Is(err, backend.ErrExists) {
			t.Fatalf("second Save of %s: got %v, want ErrExists", h, err)
		}
		// the same content again is still a second write: refused too
		if err := b.Save(ctx, h, first); !errors.Is(err, backend.ErrExists) {
			t.Fatalf("Save of identical content to %s: got %v, want ErrExists", h, err)
		}
		if got := mustLoad(t, b, h, 0, 0); !bytes.Equal(got, first) {
			t.Fatalf("%s was overwritten: %q", h, got)
		}
	}
}

func testNotFound(t *testing.T, b backend.Backend) {
	for _, h := range handles() {
		if _, err := b.Load(ctx, h, 0, 0); !backend.IsNotFound(err) {
			t.Errorf("Load of missing %s: got %v, want ErrNotFound", h, err)
		}
		if _, err := b.Load(ctx, h, 10, 5); !backend.IsNotFound(err) {
			t.Errorf("ranged Load of missing %s: got %v, want ErrNotFound", h, err)
		}
		if _, err := b.Stat(ctx, h); !backend.IsNotFound(err) {
			t.Errorf("Stat of missing %s: got %v, want ErrNotFound", h, err)
		}
	}
}

func testRangedLoad(t *testing.T, b backend.Backend) {
	h := backend.Handle{Kind: backend.Packs, Name: Name()}
	data := randBytes(4096)
	mustSave(t, b, h, data)
	size := int64(len(data))
	for _, c := range []struct{ off, n int64 }{
		{0, 1}, {0, size}, {1, size - 1}, {100, 200}, {size - 1, 1},
		{100, 0}, {size, 0}, {size - 7, 0},
	} {
		want := data[c.off:]
		if c.n > 0 {
			want = data[c.off : c.off+c.n]
		}
		got := mustLoad(t, b, h, c.off, c.n)
		if !bytes.Equal(got, want) {
			t.Errorf("Load [%d,+%d]: got %d bytes, want %d (or content differs)", c.off, c.n, len(got), len(want))
		}
	}
	for _, c := range []struct{ off, n int64 }{
		{0, size + 1}, {size - 10, 11}, {size, 1}, {size + 5, 1}, {size + 1, 0}, {size + 100, 10},
	} {
		got, err := b.Load(ctx, h, c.off, c.n)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Load [%d,+%d] of a %d-byte file: got %d bytes, %v; want io.ErrUnexpectedEOF", c.off, c.n, size, len(got), err)
		}
	}
}

func testLoadInto(t *testing.T, b backend.Backend) {
	h := backend.Handle{Kind: backend.Packs, Name: Name()}
	data := randBytes(4096)
	mustSave(t, b, h, data)
	size := int64(len(data))
	for _, c := range []struct{ off, n int64 }{{0, 1}, {0, size}, {1, size - 1}, {100, 200}, {size - 1, 1}, {size, 0}} {
		buf := bytes.Repeat([]byte{0xAA}, int(c.n)+8)
		if err := b.LoadInto(ctx, h, c.off, buf[:c.n]); err != nil {
			t.Fatalf("LoadInto [%d,+%d]: %v", c.off, c.n, err)
		}
		if !bytes.Equal(buf[:c.n], data[c.off:c.off+c.n]) {
			t.Errorf("LoadInto [%d,+%d]: content differs", c.off, c.n)
		}
		if !bytes.Equal(buf[c.n:], bytes.Repeat([]byte{0xAA}, 8)) {
			t.Errorf("LoadInto [%d,+%d] wrote past its buffer", c.off, c.n)
		}
	}
	for _, c := range []struct{ off, n int64 }{{0, size + 1}, {size - 10, 11}, {size, 1}, {size + 5, 1}} {
		if err := b.LoadInto(ctx, h, c.off, make([]byte, c.n)); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("LoadInto [%d,+%d] of a %d-byte file: %v, want io.ErrUnexpectedEOF", c.off, c.n, size, err)
		}
	}
	missing := backend.Handle{Kind: backend.Packs, Name: Name()}
	if err := b.LoadInto(ctx, missing, 0, make([]byte, 10)); !backend.IsNotFound(err) {
		t.Errorf("LoadInto of missing %s: %v, want ErrNotFound", missing, err)
	}
}

func testEmptyFile(t *testing.T, b backend.Backend) {
	h := backend.Handle{Kind: backend.Locks, Name: Name()}
	mustSave(t, b, h, nil)
	if got := mustLoad(t, b, h, 0, 0); len(got) != 0 {
		t.Errorf("empty file loads as %d bytes", len(got))
	}
	fi, err := b.Stat(ctx, h)
	if err != nil || fi.Size != 0 {
		t.Errorf("Stat of empty file: %+v %v", fi, err)
	}
	if _, err := b.Load(ctx, h, 0, 1); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Load 1 byte of empty file: %v, want io.ErrUnexpectedEOF", err)
	}
}

func list(t *testing.T, b backend.Backend, k backend.Kind) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := b.List(ctx, k, func(fi backend.FileInfo) error {
		if _, dup := out[fi.Name]; dup {
			t.Errorf("List %s: %s listed twice", k, fi.Name)
		}
		out[fi.Name] = fi.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List %s: %v", k, err)
	}
	return out
}

func testList(t *testing.T, b backend.Backend) {
	for _, k := range backend.Kinds {
		if got := list(t, b, k); len(got) != 0 {
			t.Errorf("fresh backend lists %d files of kind %s", len(got), k)
		}
	}
	want := map[backend.Kind]map[string]int64{}
	for _, k := range backend.Kinds {
		want[k] = map[string]int64{}
		n := 40
		if k == backend.Config {
			n = 1
		}
		for i := range n {
			name := Name()
			if k == backend.Config {
				name = "config"
			}
			data := randBytes(i * 3)
			mustSave(t, b, backend.Handle{Kind: k, Name: name}, data)
			want[k][name] = int64(len(data))
		}
	}
	for _, k := range backend.Kinds {
		got := list(t, b, k)
		if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(want[k])) {
			t.Errorf("List %s:\n got  %v\n want %v", k, sorted(got), sorted(want[k]))
		}
	}
	// an error from fn stops the listing and is returned
	stop := errors.New("stop here")
	calls := 0
	err := b.List(ctx, backend.Packs, func(backend.FileInfo) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("List with a failing fn: err %v after %d calls, want the fn's error after 1", err, calls)
	}
	// removed files disappear from listings
	for name := range want[backend.Snapshots] {
		if err := b.Remove(ctx, backend.Handle{Kind: backend.Snapshots, Name: name}); err != nil {
			t.Fatal(err)
		}
		delete(want[backend.Snapshots], name)
		break
	}
	if got := list(t, b, backend.Snapshots); len(got) != len(want[backend.Snapshots]) {
		t.Errorf("after Remove, List snapshots has %d files, want %d", len(got), len(want[backend.Snapshots]))
	}
}

func sorted(m map[string]int64) []string {
	var out []string
	for k, v := range m {
		out = append(out, fmt.Sprintf("%s:%d", k, v))
	}
	sort.Strings(out)
	return out
}

func testRemove(t *testing.T, b backend.Backend) {
	h := backend.Handle{Kind: backend.Indexes, Name: Name()}
	if err := b.Remove(ctx, h); err != nil {
		t.Fatalf("Remove of a file that never existed: %v", err)
	}
	mustSave(t, b, h, []byte("x"))
	for i := range 2 {
		if err := b.Remove(ctx, h); err != nil {
			t.Fatalf("Remove #%d: %v", i+1, err)
		}
	}
	if _, err := b.Load(ctx, h, 0, 0); !backend.IsNotFound(err) {
		t.Fatalf("Load after Remove: %v, want ErrNotFound", err)
	}
	if _, err := b.Stat(ctx, h); !backend.IsNotFound(err) {
		t.Fatalf("Stat after Remove: %v, want ErrNotFound", err)
	}
	// the name is free again
	mustSave(t, b, h, []byte("y"))
	if got := mustLoad(t, b, h, 0, 0); string(got) != "y" {
		t.Fatalf("Save after Remove stored %q", got)
	}
}

func testConcurrentSameName(t *testing.T, b backend.Backend) {
	for round := range 5 {
		h := backend.Handle{Kind: backend.Packs, Name: Name()}
		const n = 12
		datas := make([][]byte, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			datas[i] = randBytes(64<<10 + i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = b.Save(ctx, h, datas[i])
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil:
				if winner >= 0 {
					t.Fatalf("round %d: saves %d and %d of one name both succeeded", round, winner, i)
				}
				winner = i
			case !errors.Is(err, backend.ErrExists):
				t.Fatalf("round %d: save %d: %v, want nil or ErrExists", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no save succeeded", round)
		}
		if got := mustLoad(t, b, h, 0, 0); !bytes.Equal(got, datas[winner]) {
			t.Fatalf("round %d: stored content is not the successful save's (%d bytes, want %d)", round, len(got), len(datas[winner]))
		}
	}
	// no leftovers of the losing writers are listed
	if got := list(t, b, backend.Packs); len(got) != 5 {
		t.Fatalf("after 5 contested names, List shows %d packs", len(got))
	}
}

func testConcurrentManyNames(t *testing.T, b backend.Backend) {
	const n = 64
	names := make([]string, n)
	datas := make([][]byte, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		names[i], datas[i] = Name(), randBytes(1000+i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			h := backend.Handle{Kind: backend.Packs, Name: names[i]}
			if err := b.Save(ctx, h, datas[i]); err != nil {
				errs <- err
				return
			}
			got, err := b.Load(ctx, h, 0, 0)
			if err != nil || !bytes.Equal(got, datas[i]) {
				errs <- fmt.Errorf("read back %s: %v", h, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := list(t, b, backend.Packs); len(got) != n {
		t.Fatalf("List shows %d packs, want %d", len(got), n)
	}
}

func testBuffers(t *testing.T, b backend.Backend) {
	h := backend.Handle{Kind: backend.Snapshots, Name: Name()}
	data := []byte("original content")
	mustSave(t, b, h, data)
	copy(data, "XXXXXXXX")
	got := mustLoad(t, b, h, 0, 0)
	if string(got) != "original content" {
		t.Fatalf("changing the saved slice changed the file: %q", got)
	}
	copy(got, "YYYYYYYY")
	if again := mustLoad(t, b, h, 0, 0); string(again) != "original content" {
		t.Fatalf("changing a loaded slice changed the file: %q", again)
	}
}

func testCanceled(t *testing.T, b backend.Backend) {
	c, cancel := context.WithCancel(ctx)
	cancel()
	h := backend.Handle{Kind: backend.Packs, Name: Name()}
	if err := b.Save(c, h, []byte("x")); err == nil {
		t.Fatal("Save with a canceled context succeeded")
	}
	if _, err := b.Stat(ctx, h); !backend.IsNotFound(err) {
		t.Fatalf("a Save with a canceled context left a file: %v", err)
	}
}

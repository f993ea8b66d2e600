package bufs

import (
	"runtime"
	"testing"
)

func TestListKeepsBuffersAcrossCollections(t *testing.T) {
	l := NewList(2)
	a, b, c := make([]byte, 5, 64), make([]byte, 0, 64), make([]byte, 0, 64)
	l.Put(a)
	l.Put(b)
	l.Put(c) // beyond keep: dropped
	runtime.GC()
	runtime.GC()
	got1, got2, got3 := l.Get(), l.Get(), l.Get()
	if got1 == nil || got2 == nil || got3 != nil {
		t.Fatalf("kept %v %v %v, want two buffers then nil", got1 != nil, got2 != nil, got3 != nil)
	}
	if len(got1) != 0 || cap(got1) != 64 || &got1[:1][0] != &a[0] {
		t.Fatalf("Get returned len %d cap %d, not the first buffer put", len(got1), cap(got1))
	}
}

func TestClasses(t *testing.T) {
	c := NewClasses(64<<10, 4<<20, 8<<20)
	for _, tc := range []struct{ n, wantCap int }{
		{1, 64 << 10}, {64 << 10, 64 << 10}, {64<<10 + 1, 128 << 10}, {3 << 20, 4 << 20}, {4 << 20, 4 << 20},
	} {
		b := c.Get(tc.n)
		if len(b) != tc.n || cap(b) != tc.wantCap {
			t.Errorf("Get(%d): len %d cap %d, want cap %d", tc.n, len(b), cap(b), tc.wantCap)
		}
		c.Put(b)
		if again := c.Get(tc.n); &again[:1][0] != &b[:1][0] {
			t.Errorf("Get(%d) after Put did not reuse the buffer", tc.n)
		}
	}
	big := c.Get(5 << 20)
	if len(big) != 5<<20 {
		t.Fatalf("oversized Get: len %d", len(big))
	}
	c.Put(big) // not kept: no class of its size
	if b := c.Get(4 << 20); cap(b) != 4<<20 {
		t.Fatalf("an oversized buffer was kept in the largest class (cap %d)", cap(b))
	}
}

func TestClassesKeepAByteBudget(t *testing.T) {
	c := NewClasses(64<<10, 4<<20, 5<<20)
	var out [][]byte
	for _, n := range []int{4 << 20, 1 << 20, 1 << 20, 1 << 20} {
		out = append(out, c.Get(n))
	}
	for _, b := range out {
		c.Put(b)
	}
	// 4 MiB + 1 MiB fit the budget; the other two 1 MiB buffers do not
	isOld := func(b []byte) bool {
		for _, o := range out {
			if &o[0] == &b[0] {
				return true
			}
		}
		return false
	}
	if !isOld(c.Get(4 << 20)) {
		t.Fatal("the 4 MiB buffer was not kept")
	}
	reused := 0
	for range 3 {
		if isOld(c.Get(1 << 20)) {
			reused++
		}
	}
	if reused != 1 {
		t.Fatalf("%d buffers of 1 MiB kept, want 1 (budget 5 MiB, a 4 MiB one kept first)", reused)
	}
}

func TestClassesLendALargerBuffer(t *testing.T) {
	c := NewClasses(64<<10, 4<<20, 8<<20)
	big := c.Get(3 << 20)
	c.Put(big)
	// no 1 MiB buffer is kept: the 4 MiB one serves, and goes back to its class
	b := c.Get(1 << 20)
	if len(b) != 1<<20 || &b[:1][0] != &big[:1][0] {
		t.Fatalf("Get(1 MiB) with only a 4 MiB buffer kept: len %d cap %d, not that buffer", len(b), cap(b))
	}
	if again := c.Get(1 << 20); cap(again) != 1<<20 {
		t.Fatalf("a second Get(1 MiB) got cap %d, want a new buffer of its class", cap(again))
	}
	c.Put(b)
	if again := c.Get(4 << 20); &again[:1][0] != &big[:1][0] {
		t.Fatal("the lent 4 MiB buffer did not go back to its class")
	}
	// a smaller class is never lent to a larger request
	c.Put(make([]byte, 0, 64<<10))
	if b := c.Get(128 << 10); cap(b) != 128<<10 {
		t.Fatalf("Get(128 KiB): cap %d", cap(b))
	}
}

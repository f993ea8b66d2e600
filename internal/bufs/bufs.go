// Package bufs keeps large byte buffers for reuse.
//
// Unlike sync.Pool it does not drop its buffers at every garbage
// collection: a backup reuses buffers of megabytes, and with sync.Pool it
// would allocate them again after each cycle, while the dropped ones wait
// for the next cycle as resident memory.
package bufs

import "sync/atomic"

// List keeps up to a fixed number of buffers.
type List struct {
	free chan []byte
}

// NewList returns a list that keeps at most keep buffers.
func NewList(keep int) *List { return &List{free: make(chan []byte, keep)} }

// Get returns a kept buffer of length zero, or nil when none is kept.
func (l *List) Get() []byte {
	select {
	case b := <-l.free:
		return b[:0]
	default:
		return nil
	}
}

// Put keeps b for a later Get, unless the list is full.
func (l *List) Put(b []byte) { l.put(b) }

func (l *List) put(b []byte) bool {
	select {
	case l.free <- b:
		return true
	default:
		return false
	}
}

// Classes hands out buffers by size class (powers of two from min, and
// max), so a 300 KiB chunk does not hold a buffer of the largest size. It
// keeps at most a budget of bytes over all classes: a count per class
// would let every class keep its own high-water mark.
type Classes struct {
	sizes []int
	lists []*List
	kept  atomic.Int64
	limit int64
}

// NewClasses returns classes from minSize up to maxSize that keep at most
// keepBytes of buffers.
func NewClasses(minSize, maxSize, keepBytes int) *Classes {
	c := &Classes{limit: int64(keepBytes)}
	for s := minSize; s < maxSize; s *= 2 {
		c.sizes = append(c.sizes, s)
	}
	c.sizes = append(c.sizes, maxSize)
	for _, s := range c.sizes {
		c.lists = append(c.lists, NewList(max(1, keepBytes/s)))
	}
	return c
}

// Get returns a buffer of length n; its capacity is n's class, or a larger
// class's when n's has none kept and a larger one has (a kept buffer
// costs nothing, a new one of megabytes costs clearing it and, later, a
// collection). A request above the largest class gets a buffer of its
// own, which Put will not keep.
func (c *Classes) Get(n int) []byte {
	for i, s := range c.sizes {
		if n <= s {
			for j := i; j < len(c.sizes); j++ {
				if b := c.lists[j].Get(); b != nil {
					c.kept.Add(-int64(c.sizes[j]))
					return b[:n]
				}
			}
			return make([]byte, n, s)
		}
	}
	return make([]byte, n)
}

// Put returns a buffer that Get handed out.
func (c *Classes) Put(b []byte) {
	for i, s := range c.sizes {
		if cap(b) == s {
			if c.kept.Add(int64(s)) > c.limit || !c.lists[i].put(b) {
				c.kept.Add(-int64(s))
			}
			return
		}
	}
}

// Grow returns buf resliced to n bytes, or a new buffer of n bytes when buf
// is too small: for one goroutine that reuses a single buffer.
func Grow(buf []byte, n int) []byte {
	if cap(buf) >= n {
		return buf[:n]
	}
	return make([]byte, n)
}

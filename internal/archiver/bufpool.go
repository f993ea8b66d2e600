package archiver

import "sync"

// bufPool hands out byte buffers by size class, so a 300 KiB chunk or a
// 5 KiB file does not hold a buffer the size of the largest chunk.
type bufPool struct {
	classes []int
	pools   []sync.Pool
}

func newBufPool(maxSize int) *bufPool {
	p := &bufPool{}
	for c := 64 << 10; c < maxSize; c *= 2 {
		p.classes = append(p.classes, c)
	}
	p.classes = append(p.classes, maxSize)
	p.pools = make([]sync.Pool, len(p.classes))
	return p
}

// get returns a buffer of length n (at most the largest class).
func (p *bufPool) get(n int) *[]byte {
	for i, c := range p.classes {
		if n <= c {
			if b, ok := p.pools[i].Get().(*[]byte); ok {
				*b = (*b)[:n]
				return b
			}
			b := make([]byte, n, c)
			return &b
		}
	}
	b := make([]byte, n)
	return &b
}

func (p *bufPool) put(b *[]byte) {
	c := cap(*b)
	for i, cl := range p.classes {
		if c == cl {
			p.pools[i].Put(b)
			return
		}
	}
}

// Package faultproxy is a TCP proxy on 127.0.0.1 for tests, put between a
// client and a server and steered while it runs: it adds latency, resets
// connections (now, or after some bytes), stalls them (stops forwarding
// and keeps them open), blackholes new connections, and counts what it
// forwards.
package faultproxy

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// chunk is the most the proxy forwards at once; latency is added per chunk.
const chunk = 32 << 10

// Stats counts what the proxy did since it started.
type Stats struct {
	Conns         int64 // connections accepted
	Active        int64 // connections open now
	Blackholed    int64 // connections accepted into the blackhole
	Resets        int64 // connections the proxy reset
	BytesToServer int64
	BytesToClient int64
}

// Proxy forwards connections to a target address. All methods are safe
// for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu        sync.Mutex
	links     map[*link]struct{}
	held      map[net.Conn]struct{} // blackholed
	latency   time.Duration
	stall     chan struct{} // open while stalled; closed when forwarding resumes
	blackhole bool
	resetAt   int64 // bytes after which a link is reset (0: no rule)
	resetLeft int   // links still to reset by the rule (<0: every link)
	closed    bool

	conns, blackholed, resets, toServer, toClient atomic.Int64
}

// link is one proxied connection.
type link struct {
	client, server net.Conn
	done           chan struct{}
	once           sync.Once
	forwarded      int64 // under Proxy.mu
	resetBase      int64 // forwarded when the reset rule was set
}

// Start listens on 127.0.0.1 and forwards every connection to target
// (host:port).
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: %w", err)
	}
	p := &Proxy{ln: ln, target: target, links: map[*link]struct{}{}, held: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// New starts a proxy for a test and closes it when the test ends.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	p, err := Start(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// Addr is the proxy's address (127.0.0.1:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetLatency adds d before every chunk forwarded, either way (0: none).
func (p *Proxy) SetLatency(d time.Duration) {
	p.mu.Lock()
	p.latency = d
	p.mu.Unlock()
}

// Stall stops forwarding on every connection, open or new, while on is
// true; the connections stay open. Stall(false) resumes.
func (p *Proxy) Stall(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case on && p.stall == nil:
		p.stall = make(chan struct{})
	case !on && p.stall != nil:
		close(p.stall)
		p.stall = nil
	}
}

// Blackhole makes new connections go nowhere while on is true: they are
// accepted and then neither answered nor closed, as when a server's host
// vanished from the network. Connections already held stay so until the
// client gives up or the proxy closes.
func (p *Proxy) Blackhole(on bool) {
	p.mu.Lock()
	p.blackhole = on
	p.mu.Unlock()
}

// ResetAll resets every open connection now and returns how many.
func (p *Proxy) ResetAll() int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		p.reset(l)
	}
	return len(links)
}

// ResetAfter resets connections once they have forwarded n more bytes
// (both ways together, counted from this call or from their start): the
// next count connections to get there, or every one for count < 0.
// ResetAfter(0, 0) removes the rule.
func (p *Proxy) ResetAfter(n int64, count int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.resetAt, p.resetLeft = n, count
	if n <= 0 || count == 0 {
		p.resetAt, p.resetLeft = 0, 0
	}
	for l := range p.links {
		l.resetBase = l.forwarded
	}
}

// Stats returns the counters.
func (p *Proxy) Stats() Stats {
	p.mu.Lock()
	active := int64(len(p.links))
	p.mu.Unlock()
	return Stats{
		Conns: p.conns.Load(), Active: active, Blackholed: p.blackholed.Load(), Resets: p.resets.Load(),
		BytesToServer: p.toServer.Load(), BytesToClient: p.toClient.Load(),
	}
}

// Close stops listening, closes every connection and waits for the
// forwarding to end.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	if p.stall != nil {
		close(p.stall)
		p.stall = nil
	}
	for c := range p.held {
		_ = c.Close()
	}
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range links {
		l.close()
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.conns.Add(1)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			return
		}
		if p.blackhole {
			p.held[c] = struct{}{}
			p.blackholed.Add(1)
			p.mu.Unlock()
			continue
		}
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	l := &link{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		l.close()
		return
	}
	p.links[l] = struct{}{}
	p.mu.Unlock()
	var both sync.WaitGroup
	both.Add(2)
	go func() { defer both.Done(); p.forward(l, client, server, &p.toServer) }()
	go func() { defer both.Done(); p.forward(l, server, client, &p.toClient) }()
	both.Wait()
	l.close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// forward copies src to dst chunk by chunk, obeying the faults.
func (p *Proxy) forward(l *link, src, dst net.Conn, counter *atomic.Int64) {
	buf := make([]byte, chunk)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			allowed, ok := p.admit(l, n)
			if !ok {
				return
			}
			w, werr := dst.Write(buf[:allowed])
			counter.Add(int64(w))
			if allowed < n {
				p.reset(l)
				return
			}
			if werr != nil {
				l.close()
				return
			}
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// pass the end of one direction on, keeping the other open
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

// admit waits out a stall and the latency and returns how many of n bytes
// may be forwarded before the link is to be reset (allowed < n: reset
// after them). ok false: the link is closed.
func (p *Proxy) admit(l *link, n int) (allowed int, ok bool) {
	for {
		p.mu.Lock()
		stall, latency := p.stall, p.latency
		p.mu.Unlock()
		if stall != nil {
			select {
			case <-stall:
				continue
			case <-l.done:
				return 0, false
			}
		}
		if latency > 0 {
			t := time.NewTimer(latency)
			select {
			case <-t.C:
			case <-l.done:
				t.Stop()
				return 0, false
			}
		}
		break
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	allowed = n
	if p.resetAt > 0 && p.resetLeft != 0 {
		if left := p.resetAt - (l.forwarded - l.resetBase); left <= int64(n) {
			allowed = int(max(left, 0))
			if p.resetLeft > 0 {
				p.resetLeft--
			}
		}
	}
	l.forwarded += int64(allowed)
	return allowed, true
}

// reset aborts both sides of a link with a TCP reset.
func (p *Proxy) reset(l *link) {
	l.once.Do(func() {
		p.resets.Add(1)
		for _, c := range []net.Conn{l.client, l.server} {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = c.Close()
		}
		close(l.done)
	})
}

func (l *link) close() {
	l.once.Do(func() {
		_ = l.client.Close()
		_ = l.server.Close()
		close(l.done)
	})
}

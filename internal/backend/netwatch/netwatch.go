// Package netwatch cuts network connections on which no byte moves: the
// watchdog of a stalled transfer. Every Read and Write of a watched
// connection, and every byte it moves either way, pushes the connection's
// deadline Idle into the future; when Idle passes with no byte moved, the
// pending Read or Write fails with a *StallError, the HTTP request on it
// fails, and the backend's Retry sends it again on a new connection.
//
// Both directions share one clock because an HTTP/1 client reads while it
// uploads (the transport waits for the response from the first byte on):
// a long upload that keeps moving must not fail its pending read.
//
// Wire it beneath TLS, where the bytes are counted as they cross the
// socket: Watch(transport, DefaultIdle) wraps a transport's dialers.
package netwatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

// DefaultIdle is how long a connection may move no byte while a request
// waits on it. 30s: an S3 server answers a request or sends the next bytes
// of a body within a second or two, even when loaded; a pause of 30s is a
// dead peer or a broken path, not a slow one.
const DefaultIdle = 30 * time.Second

// writeChunk bounds one write to the socket, so that a large Write that is
// moving slowly renews the deadline as it goes: a link slower than
// writeChunk per Idle (4 KiB/s at the default) would be taken for stalled.
const writeChunk = 128 << 10

// StallError is the error of a Read or Write that the watchdog cut.
type StallError struct {
	Op     string // "read" or "write"
	Remote string
	Idle   time.Duration
}

func (e *StallError) Error() string {
	return fmt.Sprintf("%s %s: connection stalled: no byte moved for %v", e.Op, e.Remote, e.Idle)
}

// Timeout tells net/http (and any net.Error user) that this is a timeout.
func (e *StallError) Timeout() bool { return true }

// Temporary reports true: a new connection may well work.
func (e *StallError) Temporary() bool { return true }

// Unwrap makes errors.Is(err, os.ErrDeadlineExceeded) hold.
func (e *StallError) Unwrap() error { return os.ErrDeadlineExceeded }

// Conn is a net.Conn whose deadline moves with progress. Deadlines the
// user sets are kept: the earlier of the user's and the watchdog's applies.
type Conn struct {
	net.Conn
	idle time.Duration

	mu                  sync.Mutex
	userRead, userWrite time.Time
	renewed             time.Time // when the watchdog's deadline was last set
}

// Wrap watches c with the given idle time (0 or less: DefaultIdle).
func Wrap(c net.Conn, idle time.Duration) *Conn {
	if idle <= 0 {
		idle = DefaultIdle
	}
	w := &Conn{Conn: c, idle: idle}
	w.renewAt(true)
	return w
}

func earliest(user, watch time.Time) time.Time {
	if !user.IsZero() && user.Before(watch) {
		return user
	}
	return watch
}

// renew pushes both deadlines Idle from now (bounded by the user's). It
// skips the work while the last renewal is younger than Idle/16, so that a
// fast transfer does not reset two timers for every read and write: a stall
// is then cut after Idle less at most Idle/16.
func (c *Conn) renew() { c.renewAt(false) }

func (c *Conn) renewAt(force bool) {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !force && now.Sub(c.renewed) < c.idle/16 {
		return
	}
	c.renewed = now
	watch := now.Add(c.idle)
	_ = c.Conn.SetReadDeadline(earliest(c.userRead, watch))
	_ = c.Conn.SetWriteDeadline(earliest(c.userWrite, watch))
}

// explain turns a timeout of the watchdog's deadline into a *StallError; a
// user's deadline that passed stays the plain timeout it is.
func (c *Conn) explain(op string, err error) error {
	if err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	c.mu.Lock()
	user := c.userRead
	if op == "write" {
		user = c.userWrite
	}
	c.mu.Unlock()
	if !user.IsZero() && !time.Now().Before(user) {
		return err
	}
	return &StallError{Op: op, Remote: c.RemoteAddr().String(), Idle: c.idle}
}

// Read implements net.Conn.
func (c *Conn) Read(p []byte) (int, error) {
	c.renew()
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.renew()
	}
	return n, c.explain("read", err)
}

// Write implements net.Conn.
func (c *Conn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		c.renew()
		chunk := p[written:min(len(p), written+writeChunk)]
		n, err := c.Conn.Write(chunk)
		written += n
		if err != nil {
			return written, c.explain("write", err)
		}
	}
	if written > 0 {
		c.renew()
	}
	return written, nil
}

// SetDeadline implements net.Conn.
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.userRead, c.userWrite = t, t
	c.mu.Unlock()
	c.renewAt(true)
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.userRead = t
	c.mu.Unlock()
	c.renewAt(true)
	return nil
}

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.userWrite = t
	c.mu.Unlock()
	c.renewAt(true)
	return nil
}

// DialFunc is the shape of net.Dialer.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// Dialer returns dial with every connection it makes watched (dial nil: a
// net.Dialer with a 30s connect timeout and keep-alives, as Go's default
// transport has).
func Dialer(dial DialFunc, idle time.Duration) DialFunc {
	if dial == nil {
		dial = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return Wrap(c, idle), nil
	}
}

// Watch makes every connection of tr watched, and closes pooled idle
// connections before the watchdog would (an idle pooled connection has a
// read pending, which the watchdog would cut, racing a request that picks
// the connection up). It returns tr.
func Watch(tr *http.Transport, idle time.Duration) *http.Transport {
	if idle <= 0 {
		idle = DefaultIdle
	}
	tr.DialContext = Dialer(tr.DialContext, idle)
	if tr.DialTLSContext != nil {
		tr.DialTLSContext = Dialer(tr.DialTLSContext, idle)
	}
	if tr.IdleConnTimeout == 0 || tr.IdleConnTimeout > idle/2 {
		tr.IdleConnTimeout = idle / 2
	}
	return tr
}

// NewTransport is a clone of http.DefaultTransport with its connections
// watched.
func NewTransport(idle time.Duration) *http.Transport {
	return Watch(http.DefaultTransport.(*http.Transport).Clone(), idle)
}

package netwatch_test

import (
	"io"
	"net"
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend/netwatch"
)

// BenchmarkLoopback moves 64 MiB over loopback TCP per iteration, plain
// and watched, to show what renewing the deadline costs.
func BenchmarkLoopback(b *testing.B) {
	for _, watched := range []bool{false, true} {
		name := "plain"
		if watched {
			name = "watched"
		}
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() { _, _ = io.Copy(io.Discard, c); c.Close() }()
				}
			}()
			buf := make([]byte, 1<<20)
			const total = 64 << 20
			b.SetBytes(total)
			for b.Loop() {
				var c net.Conn
				c, err = net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				if watched {
					c = netwatch.Wrap(c, time.Minute)
				}
				for n := 0; n < total; n += len(buf) {
					if _, err := c.Write(buf); err != nil {
						b.Fatal(err)
					}
				}
				c.Close()
			}
		})
	}
}

package s3

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
)

// MaxClockSkew is how far this machine's clock may be from the server's
// for a lock to be written. Other clients judge a lock stale by its time,
// so a lock whose time is wrong by more than the margin between the lock
// refresh (5 min) and staleness (30 min) would be taken for gone while
// its holder lives (docs/format.md, Object storage).
const MaxClockSkew = 5 * time.Minute

// clockWatch is a transport that measures the difference between this
// machine's clock and the server's from the Date header of every response.
type clockWatch struct {
	next http.RoundTripper
	// skew is local minus server time in nanoseconds; valid once seen
	skew atomic.Int64
	seen atomic.Bool
	now  func() time.Time
}

func (c *clockWatch) RoundTrip(req *http.Request) (*http.Response, error) {
	start := c.now()
	resp, err := c.next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if d, perr := http.ParseTime(resp.Header.Get("Date")); perr == nil {
		end := c.now()
		// the server stamped the response between start and end; its
		// Date has whole seconds
		local := start.Add(end.Sub(start) / 2)
		skew := local.Sub(d.Add(500 * time.Millisecond))
		if slack := end.Sub(start)/2 + 500*time.Millisecond; skew.Abs() <= slack {
			skew = 0
		}
		c.skew.Store(int64(skew))
		c.seen.Store(true)
	}
	return resp, nil
}

// check fails when the last measured difference is more than MaxClockSkew.
func (c *clockWatch) check(server string) error {
	if !c.seen.Load() {
		return nil
	}
	skew := time.Duration(c.skew.Load())
	if skew.Abs() <= MaxClockSkew {
		return nil
	}
	way := "ahead of"
	if skew < 0 {
		way = "behind"
	}
	return fmt.Errorf("this machine's clock is %s %s the clock of %s: other clients would misjudge the age of its lock (more than %s is refused); set the clock right (NTP)",
		skew.Abs().Round(time.Second), way, server, MaxClockSkew)
}

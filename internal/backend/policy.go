package backend

import "time"

// Policy says how a backend's requests are retried, bounded and timed. See
// LocalPolicy and RemotePolicy for the defaults and their reasons.
type Policy struct {
	// Retry: tries per call, the shortest and the longest wait between
	// two, and the time one call may take over all its tries (Retry).
	Attempts   int
	Backoff    time.Duration
	MaxBackoff time.Duration
	Budget     time.Duration
	// Limits of requests in flight (Limit); 0: no bound.
	Transfers int
	Metadata  int
	// Request deadlines (Deadline); RequestBase 0: none.
	RequestBase time.Duration
	MinRate     int64
	UnknownSize int64
	ListTimeout time.Duration
	// OnRetry is told about every retried failure (Retry.OnRetry).
	OnRetry func(op string, h Handle, attempt int, err error)
}

// LocalPolicy is the policy of a repository on a local or mounted disk.
//   - 4 tries, 50ms to 1s apart, 1 minute per call: what fails on a disk
//     and passes (an NFS hiccup, a busy file on Windows) passes quickly.
//   - 4 transfers: an SSD gains little from a deeper queue, a spinning disk
//     loses to seeks; 16 metadata calls, which are cheap.
//   - no request deadline: a read or write of a local file does not watch
//     its context, so a deadline could not cut it, and a slow disk is no
//     failure.
func LocalPolicy() Policy {
	return Policy{
		Attempts: 4, Backoff: 50 * time.Millisecond, MaxBackoff: time.Second, Budget: time.Minute,
		Transfers: 4, Metadata: 16,
	}
}

// RemotePolicy is the policy of a repository on object storage.
//   - 6 tries, waits from 1s up to 20s apart (decorrelated jitter), and at
//     most 10 minutes per call: enough to ride out a server's restart or a
//     burst of 503 SlowDown from a bucket shared by many clients, short
//     enough that a dead server gives a clear error within minutes.
//   - 8 transfers: a request's cost is mostly waiting (round trip, the
//     server's work), which 8 in flight hide well; more mostly add load to a
//     server that many clients share (4 clients are already 32 requests).
//     16 metadata calls: prune removes packs in parallel, each removal one
//     round trip and no bandwidth.
//   - a deadline of 15s plus the bytes at 32 KiB/s: a Stat or a lock file
//     on a dead connection fails after 15s; an 8 MiB pack gets 4.5 minutes,
//     enough for 8 parallel transfers on a 2 Mbit/s uplink. A transfer
//     that stops moving is cut sooner by the connection's watchdog
//     (netwatch, 30s without a byte). A Load to the end of a file, whose
//     size is not known, gets the time of 32 MiB; a whole listing (many
//     pages) 10 minutes.
func RemotePolicy() Policy {
	return Policy{
		Attempts: 6, Backoff: time.Second, MaxBackoff: 20 * time.Second, Budget: 10 * time.Minute,
		Transfers: 8, Metadata: 16,
		RequestBase: 15 * time.Second, MinRate: 32 << 10, UnknownSize: 32 << 20, ListTimeout: 10 * time.Minute,
	}
}

// WithPolicy wraps b in the policy's layers, from the caller inwards:
//
//	Retry → Limit → Deadline → b
//
// Retry is outermost so that a call waiting out its backoff holds no
// request slot: slots go to requests that are being sent. Limit is outside
// Deadline so that a request's deadline starts when it is sent, not while
// it queues for a slot (a queued Stat would otherwise time out without
// ever reaching the server). Each try of Retry thus queues for a slot and
// then gets a fresh deadline.
//
// The result implements Creator and RemovalSyncer, passing them on to b
// where b implements them.
func WithPolicy(b Backend, p Policy) Backend {
	if p.RequestBase > 0 {
		b = &Deadline{Backend: b, Base: p.RequestBase, MinRate: p.MinRate, UnknownSize: p.UnknownSize, ListTimeout: p.ListTimeout}
	}
	if p.Transfers > 0 || p.Metadata > 0 {
		b = NewLimit(b, p.Transfers, p.Metadata)
	}
	return &Retry{Backend: b, Attempts: p.Attempts, Backoff: p.Backoff, MaxBackoff: p.MaxBackoff, Budget: p.Budget, OnRetry: p.OnRetry}
}

// Package metered counts the requests a backend serves, by operation and by
// kind of file, and the bytes moved. It is meant to sit right above the
// store (below the cache and the retry policy), so that it counts what
// really reaches the store: every try of a retried call, no call the cache
// answered.
//
// A Meter may be shared by several backends (a process opens its
// repository more than once): the counts add up.
package metered

import (
	"context"
	"sort"
	"sync"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// The operations counted, as they appear in Counts.
const (
	OpSave   = "save"
	OpLoad   = "load"
	OpStat   = "stat"
	OpList   = "list"
	OpRemove = "remove"
)

// Ops lists the operations in the order they are reported.
var Ops = []string{OpSave, OpLoad, OpStat, OpList, OpRemove}

// The object lock calls (backend.Retainer), counted apart from Ops and
// present in Counts only once made: reading a retention (S3: a HEAD) and
// setting one (PutObjectRetention). A bucket's object lock configuration
// is read as OpRetention of kind Bucket.
const (
	OpRetention    = "retention"
	OpSetRetention = "set-retention"
)

// Bucket is the kind of the requests about the bucket, not a file.
const Bucket backend.Kind = "bucket"

// Meter holds the counts. The zero value is not usable: call NewMeter.
type Meter struct {
	// PageSize, when above 0, counts a listing as one request per
	// PageSize entries (at least one), as an S3 listing is paged by 1,000.
	PageSize int

	mu     sync.Mutex
	byKind map[backend.Kind]map[string]int64
	up     int64
	down   int64
}

// NewMeter returns an empty meter; pageSize as Meter.PageSize.
func NewMeter(pageSize int) *Meter {
	return &Meter{PageSize: pageSize, byKind: map[backend.Kind]map[string]int64{}}
}

func (m *Meter) add(k backend.Kind, op string, n, up, down int64) {
	m.mu.Lock()
	ops := m.byKind[k]
	if ops == nil {
		ops = map[string]int64{}
		m.byKind[k] = ops
	}
	ops[op] += n
	m.up += up
	m.down += down
	m.mu.Unlock()
}

// Counts is a copy of a meter's counts.
type Counts struct {
	// Requests by operation; every operation of Ops is present.
	Requests map[string]int64 `json:"requests"`
	// ByKind: requests by kind of file, then operation (only those made).
	ByKind map[string]map[string]int64 `json:"by_kind"`
	Total  int64                       `json:"total"`
	// Bytes sent (saves) and received (loads).
	BytesSent     int64 `json:"bytes_sent"`
	BytesReceived int64 `json:"bytes_received"`
}

// Counts returns the counts so far.
func (m *Meter) Counts() Counts {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := Counts{Requests: map[string]int64{}, ByKind: map[string]map[string]int64{}, BytesSent: m.up, BytesReceived: m.down}
	for _, op := range Ops {
		c.Requests[op] = 0
	}
	for k, ops := range m.byKind {
		kc := map[string]int64{}
		for op, n := range ops {
			kc[op] = n
			c.Requests[op] += n
			c.Total += n
		}
		c.ByKind[string(k)] = kc
	}
	return c
}

// Of returns the count of op on files of kind k.
func (c Counts) Of(k backend.Kind, op string) int64 { return c.ByKind[string(k)][op] }

// Kinds lists the kinds that saw a request, sorted.
func (c Counts) Kinds() []string {
	var ks []string
	for k := range c.ByKind {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// Backend counts the calls to the Backend it wraps; a call counts whether
// it succeeds or not, since the store served it either way.
type Backend struct {
	backend.Backend
	M *Meter
}

// New wraps b, counting into m.
func New(b backend.Backend, m *Meter) *Backend { return &Backend{Backend: b, M: m} }

// Save implements backend.Backend.
func (b *Backend) Save(ctx context.Context, h backend.Handle, data []byte) error {
	b.M.add(h.Kind, OpSave, 1, int64(len(data)), 0)
	return b.Backend.Save(ctx, h, data)
}

// Load implements backend.Backend.
func (b *Backend) Load(ctx context.Context, h backend.Handle, offset, length int64) ([]byte, error) {
	data, err := b.Backend.Load(ctx, h, offset, length)
	b.M.add(h.Kind, OpLoad, 1, 0, int64(len(data)))
	return data, err
}

// LoadInto implements backend.Backend.
func (b *Backend) LoadInto(ctx context.Context, h backend.Handle, offset int64, buf []byte) error {
	err := b.Backend.LoadInto(ctx, h, offset, buf)
	n := int64(len(buf))
	if err != nil {
		n = 0
	}
	b.M.add(h.Kind, OpLoad, 1, 0, n)
	return err
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, h backend.Handle) (backend.FileInfo, error) {
	b.M.add(h.Kind, OpStat, 1, 0, 0)
	return b.Backend.Stat(ctx, h)
}

// List implements backend.Backend.
func (b *Backend) List(ctx context.Context, k backend.Kind, fn func(backend.FileInfo) error) error {
	var n int64
	err := b.Backend.List(ctx, k, func(fi backend.FileInfo) error {
		n++
		return fn(fi)
	})
	pages := int64(1)
	if b.M.PageSize > 0 && n > int64(b.M.PageSize) {
		pages = (n + int64(b.M.PageSize) - 1) / int64(b.M.PageSize)
	}
	b.M.add(k, OpList, pages, 0, 0)
	return err
}

// Remove implements backend.Backend.
func (b *Backend) Remove(ctx context.Context, h backend.Handle) error {
	b.M.add(h.Kind, OpRemove, 1, 0, 0)
	return b.Backend.Remove(ctx, h)
}

// Create implements backend.Creator where the wrapped backend does.
func (b *Backend) Create(ctx context.Context) error {
	if c, ok := b.Backend.(backend.Creator); ok {
		return c.Create(ctx)
	}
	return nil
}

// SyncRemovals implements backend.RemovalSyncer.
func (b *Backend) SyncRemovals(ctx context.Context, k backend.Kind) error {
	return backend.SyncRemovals(ctx, b.Backend, k)
}

// Retainer implements backend.RetainerWrapper: the object lock calls are
// counted as well.
func (b *Backend) Retainer() (backend.Retainer, bool) {
	next, ok := backend.AsRetainer(b.Backend)
	if !ok {
		return nil, false
	}
	return retainer{m: b.M, next: next}, true
}

type retainer struct {
	m    *Meter
	next backend.Retainer
}

func (x retainer) ObjectLock(ctx context.Context) (backend.ObjectLock, error) {
	x.m.add(Bucket, OpRetention, 1, 0, 0)
	return x.next.ObjectLock(ctx)
}

func (x retainer) RetainWrites(w backend.WriteRetention) { x.next.RetainWrites(w) }

func (x retainer) Retention(ctx context.Context, h backend.Handle) (backend.Retention, error) {
	x.m.add(h.Kind, OpRetention, 1, 0, 0)
	return x.next.Retention(ctx, h)
}

func (x retainer) SetRetention(ctx context.Context, h backend.Handle, r backend.Retention) error {
	x.m.add(h.Kind, OpSetRetention, 1, 0, 0)
	return x.next.SetRetention(ctx, h, r)
}

package metered

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/backendtest"
)

func TestCounts(t *testing.T) {
	ctx := context.Background()
	m := NewMeter(1000)
	mem := backend.NewMem()
	a, b := New(mem, m), New(mem, m) // two backends, one meter
	for i := range 2500 {
		h := backend.Handle{Kind: backend.Packs, Name: fmt.Sprintf("%064x", i)}
		if err := a.Save(ctx, h, make([]byte, 10)); err != nil {
			t.Fatal(err)
		}
	}
	idx := backend.Handle{Kind: backend.Indexes, Name: backendtest.Name()}
	if err := b.Save(ctx, idx, make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx, idx, make([]byte, 100)); !errors.Is(err, backend.ErrExists) {
		t.Fatalf("second save: %v", err)
	}
	if _, err := b.Load(ctx, idx, 10, 20); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 30)
	if err := a.LoadInto(ctx, idx, 0, buf); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, backend.Handle{Kind: backend.Snapshots, Name: backendtest.Name()}, 0, 0); !backend.IsNotFound(err) {
		t.Fatal(err)
	}
	if _, err := a.Stat(ctx, idx); err != nil {
		t.Fatal(err)
	}
	for _, k := range []backend.Kind{backend.Packs, backend.Indexes} {
		if err := a.List(ctx, k, func(backend.FileInfo) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Remove(ctx, idx); err != nil {
		t.Fatal(err)
	}

	c := m.Counts()
	want := map[string]int64{OpSave: 2502, OpLoad: 3, OpStat: 1, OpList: 3 + 1, OpRemove: 1}
	for op, n := range want {
		if c.Requests[op] != n {
			t.Errorf("%s: %d, want %d (%+v)", op, c.Requests[op], n, c.Requests)
		}
	}
	if c.Total != 2502+3+1+4+1 {
		t.Errorf("total %d", c.Total)
	}
	if got := c.Of(backend.Packs, OpList); got != 3 {
		t.Errorf("a listing of 2,500 packs counts %d requests, want 3 pages of 1,000", got)
	}
	if got := c.Of(backend.Snapshots, OpLoad); got != 1 {
		t.Errorf("a failed load counts %d, want 1: the store answered it", got)
	}
	if c.BytesSent != 2500*10+2*100 || c.BytesReceived != 20+30 {
		t.Errorf("bytes sent %d, received %d", c.BytesSent, c.BytesReceived)
	}
	if ks := c.Kinds(); len(ks) != 3 || ks[0] != "data" || ks[1] != "index" || ks[2] != "snapshots" {
		t.Errorf("kinds %v", ks)
	}
}

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend { return New(backend.NewMem(), NewMeter(0)) })
}

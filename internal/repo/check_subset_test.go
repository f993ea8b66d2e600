package repo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

func TestParseReadSubset(t *testing.T) {
	good := map[string]ReadSubset{
		"1/5":     {Bucket: 1, Buckets: 5},
		"5/5":     {Bucket: 5, Buckets: 5},
		"1/1":     {Bucket: 1, Buckets: 1},
		"256/256": {Bucket: 256, Buckets: 256},
		"10%":     {Percent: 10},
		"2.5%":    {Percent: 2.5},
		"100%":    {Percent: 100},
		"0.1%":    {Percent: 0.1},
		"500M":    {Bytes: 500 << 20},
		"2g":      {Bytes: 2 << 30},
		"1k":      {Bytes: 1024},
		"4096":    {Bytes: 4096},
		"1T":      {Bytes: 1 << 40},
		"500MB":   {Bytes: 500 << 20},
		"2GiB":    {Bytes: 2 << 30},
		"1.5G":    {Bytes: 3 << 29},
		"100B":    {Bytes: 100},
	}
	for text, want := range good {
		got, err := ParseReadSubset(text)
		if err != nil {
			t.Errorf("%q: %v", text, err)
			continue
		}
		if got.Bucket != want.Bucket || got.Buckets != want.Buckets || got.Percent != want.Percent || got.Bytes != want.Bytes {
			t.Errorf("%q: %+v, want %+v", text, got, want)
		}
		if got.String() != text || got.IsZero() {
			t.Errorf("%q: String %q, IsZero %v", text, got.String(), got.IsZero())
		}
	}
	bad := map[string]string{
		"0/5": "1 <= N <= M", "6/5": "1 <= N <= M", "1/0": "1 <= N <= M", "1/257": "256",
		"0%": "more than 0%", "101%": "at most 100%", "100.5%": "at most 100%", "0": "at least 1 byte", "0.5": "at least 1 byte",
		"": "use N/M", "junk": "use N/M", "-1/5": "use N/M", "1/5/2": "use N/M", "1e2%": "use N/M",
		"NaN%": "use N/M", "5%%": "use N/M", "10 %": "use N/M", "500XB": "use N/M", "1e3": "use N/M", "Inf": "use N/M", "99999999999T": "below 8 EiB",
		"99999999999999999999/5": "1 <= N <= M",
	}
	for text, want := range bad {
		_, err := ParseReadSubset(text)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", text, err, want)
		}
	}
	if !(ReadSubset{}).IsZero() || (ReadSubset{}).String() != "all" {
		t.Error("the zero subset is not \"all\"")
	}
}

// packReads records which packs are read whole, as check --read-data does.
type packReads struct {
	*backend.Mem
	mu   sync.Mutex
	read map[string]int
}

func (b *packReads) LoadInto(ctx context.Context, h backend.Handle, offset int64, buf []byte) error {
	if h.Kind == backend.Packs && offset == 0 {
		b.mu.Lock()
		b.read[h.Name]++
		b.mu.Unlock()
	}
	return b.Mem.LoadInto(ctx, h, offset, buf)
}

func (b *packReads) take() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.read
	b.read = map[string]int{}
	return r
}

// manyPacks makes a repository of small packs.
func manyPacks(t *testing.T) (*Repository, *packReads, map[ID]int64) {
	t.Helper()
	be := &packReads{Mem: backend.NewMem(), read: map[string]int{}}
	cfg := testConfig()
	cfg.PackSize = 64 << 10
	r, err := Init(bg, be, Credential{KeyFile: NewKeyFileSecret()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for range 240 {
		data := make([]byte, 20<<10)
		for i := range data {
			data[i] = byte(rnd.Uint32())
		}
		if _, err := r.SaveBlob(bg, DataBlob, r.Hash(data), data); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.Flush(bg); err != nil {
		t.Fatal(err)
	}
	packs := map[ID]int64{}
	if err := be.List(bg, backend.Packs, func(fi backend.FileInfo) error {
		id, err := ParseID(fi.Name)
		if err != nil {
			t.Fatal(err)
		}
		packs[id] = fi.Size
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(packs) < 40 {
		t.Fatalf("only %d packs", len(packs))
	}
	return r, be, packs
}

func TestReadDataSubsetCoversEveryPackOnce(t *testing.T) {
	r, be, packs := manyPacks(t)

	check := func(subset string) (*CheckResult, map[string]int) {
		t.Helper()
		s, err := ParseReadSubset(subset)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Check(bg, CheckOptions{Subset: s})
		if err != nil {
			t.Fatal(err)
		}
		return res, be.take()
	}
	// a pack is corrupted inside a blob: its size is right, so only the
	// run that reads it can find it
	var victim ID
	for id := range packs {
		victim = id
		break
	}
	be.Tamper(backend.Handle{Kind: backend.Packs, Name: victim.String()}, func(b []byte) []byte {
		b[100] ^= 0xff
		return b
	})
	victimBucket := Bucket(victim, 5)

	readBy := map[string][]int{}
	for n := 1; n <= 5; n++ {
		res, reads := check(fmt.Sprintf("%d/5", n))
		if !res.ReadData || res.ReadSubset != fmt.Sprintf("%d/5", n) {
			t.Errorf("run %d/5: read_data %v, subset %q", n, res.ReadData, res.ReadSubset)
		}
		if res.PacksRead != len(reads) {
			t.Errorf("run %d/5 says it read %d packs, read %d", n, res.PacksRead, len(reads))
		}
		var bytes int64
		for name, times := range reads {
			id, _ := ParseID(name)
			if times != 1 {
				t.Errorf("run %d/5 read pack %s %d times", n, id.Short(), times)
			}
			if Bucket(id, 5) != n || int(id[0])%5 != n-1 {
				t.Errorf("run %d/5 read pack %s of bucket %d", n, id.Short(), Bucket(id, 5))
			}
			readBy[name] = append(readBy[name], n)
			bytes += packs[id]
		}
		if bytes != res.BytesRead {
			t.Errorf("run %d/5: %d bytes read, says %d", n, bytes, res.BytesRead)
		}
		found := false
		for _, e := range res.Errors {
			if e.Object == "pack "+victim.Short() && strings.Contains(e.Message, "damaged") {
				found = true
			} else {
				t.Errorf("run %d/5: unexpected error %v", n, e)
			}
		}
		if found != (n == victimBucket) {
			t.Errorf("run %d/5 found the damaged pack %s (bucket %d): %v", n, victim.Short(), victimBucket, found)
		}
	}
	for id := range packs {
		if got := readBy[id.String()]; len(got) != 1 {
			t.Errorf("pack %s was read by runs %v, want exactly one", id.Short(), got)
		}
	}
	if len(readBy) != len(packs) {
		t.Errorf("five runs read %d packs, the repository has %d", len(readBy), len(packs))
	}

	// --read-data reads every pack once; a plain check reads none
	res, reads := check("100%")
	if len(reads) != len(packs) || res.PacksRead != len(packs) || res.OK() {
		t.Errorf("100%%: read %d of %d packs, ok %v", len(reads), len(packs), res.OK())
	}
	res, err := r.Check(bg, CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if reads := be.take(); len(reads) != len(packs) || res.ReadSubset != "all" || res.OK() {
		t.Errorf("read-data: read %d of %d packs, subset %q", len(reads), len(packs), res.ReadSubset)
	}
	res, err = r.Check(bg, CheckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if reads := be.take(); len(reads) != 0 || res.ReadData || res.PacksRead != 0 || !res.OK() {
		t.Errorf("plain check read %d packs (%+v)", len(reads), res)
	}
}

func TestReadDataSubsetRandom(t *testing.T) {
	r, be, packs := manyPacks(t)
	run := func(subset string, seed uint64) map[string]int {
		t.Helper()
		s, err := ParseReadSubset(subset)
		if err != nil {
			t.Fatal(err)
		}
		res, err := r.Check(bg, CheckOptions{Subset: s, Rand: rand.New(rand.NewPCG(seed, 0))})
		if err != nil || !res.OK() {
			t.Fatalf("%s: %v %v", subset, err, res.Errors)
		}
		reads := be.take()
		if res.PacksRead != len(reads) {
			t.Fatalf("%s: says %d packs, read %d", subset, res.PacksRead, len(reads))
		}
		return reads
	}
	want := len(packs) / 4
	a, b, a2 := run("25%", 1), run("25%", 2), run("25%", 1)
	if len(a) != want || len(b) != want {
		t.Fatalf("25%% of %d packs read %d and %d", len(packs), len(a), len(b))
	}
	same := 0
	for name := range a {
		if a2[name] == 0 {
			t.Error("the same seed picked other packs")
		}
		if b[name] > 0 {
			same++
		}
	}
	if same == want {
		t.Error("two seeds picked the same packs: not at random")
	}
	if got := run("0.1%", 3); len(got) != 1 {
		t.Errorf("0.1%% read %d packs, want at least one", len(got))
	}

	// SIZE: packs until their sizes reach it, and no more than needed
	const size = 300 << 10
	got := run("300k", 4)
	var sum, largest int64
	for name := range got {
		id, _ := ParseID(name)
		sum += packs[id]
		largest = max(largest, packs[id])
	}
	// the last pack taken is at most the largest, and without it the sum
	// was below size
	if sum < size || sum-largest >= size {
		t.Errorf("300k read %d packs of %d bytes", len(got), sum)
	}
	if got := run("1T", 5); len(got) != len(packs) {
		t.Errorf("a size above the repository's read %d of %d packs", len(got), len(packs))
	}
}

// A pack that a prune mark names may be deleted by the prune's sweep
// between check's listing and its reading: that is not damage.
func TestReadDataSkipsPackSweptMeanwhile(t *testing.T) {
	r, be, packs := manyPacks(t)
	var victim ID
	for id := range packs {
		victim = id
		break
	}
	gone := &sweptMeanwhile{packReads: be, pack: victim.String()}
	r.be = gone
	res, err := r.Check(bg, CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK() {
		t.Fatal("a pack that vanished while no mark names it is not reported")
	}
	if _, err := r.writeMark(bg, []ID{victim}, packs[victim], ""); err != nil {
		t.Fatal(err)
	}
	res, err = r.Check(bg, CheckOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK() {
		t.Fatalf("a marked pack swept during check is reported: %v", res.Errors)
	}
}

// sweptMeanwhile lists a pack but finds it gone when it is read.
type sweptMeanwhile struct {
	*packReads
	pack string
}

func (b *sweptMeanwhile) LoadInto(ctx context.Context, h backend.Handle, offset int64, buf []byte) error {
	if h.Kind == backend.Packs && h.Name == b.pack {
		return backend.ErrNotFound
	}
	return b.packReads.LoadInto(ctx, h, offset, buf)
}

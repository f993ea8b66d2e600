// Command gen writes the deterministic data sets used by bench/compare.sh and
// applies a deterministic ~1% change to them.
//
//	go run ./bench/gen create -set mixed|many-small|big -out DIR [-seed N] [-size BYTES] [-files N]
//	go run ./bench/gen mutate -dir DIR [-seed N] [-percent 1]
//
// The same seed and the same parameters always produce byte-identical file
// trees (names, sizes and contents); only timestamps differ. Contents come
// from a small non-cryptographic PRNG (wyrand), so generation is limited by
// the disk rather than by the CPU. Every file gets its own PRNG stream derived
// from (seed, file index), which lets files be written in parallel without
// giving up determinism.
//
// Standard library only: this program must keep working with `go run` from
// the main module without touching go.mod.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "create":
		err = cmdCreate(os.Args[2:])
	case "mutate":
		err = cmdMutate(os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
		return
	default:
		fmt.Fprintf(os.Stderr, "gen: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "gen: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprint(os.Stderr, `usage:
  gen create -set mixed|many-small|big -out DIR [-seed N] [-size BYTES] [-files N]
  gen mutate -dir DIR [-seed N] [-percent P]

defaults (full size):   mixed 1 GiB with 10,000 small files; many-small 200,000 files;
                        big one 4 GiB file
-size applies to mixed and big, -files to many-small and to mixed's small files.
`)
}

// ---------------------------------------------------------------------------
// PRNG

// rng is wyrand: tiny, fast, good enough statistically for test data, and
// fully specified here so output never depends on the Go release.
type rng struct{ s uint64 }

func newRNG(seed uint64) *rng { return &rng{s: mix(seed)} }

func (r *rng) next() uint64 {
	r.s += 0xa0761d6478bd642f
	hi, lo := bits.Mul64(r.s, r.s^0xe7037ed1a0b428db)
	return hi ^ lo
}

// intn returns a value in [0, n). The modulo bias is irrelevant here.
func (r *rng) intn(n int) int {
	if n <= 0 {
		return 0
	}
	return int(r.next() % uint64(n))
}

// between returns a value in [lo, hi].
func (r *rng) between(lo, hi int64) int64 {
	if hi <= lo {
		return lo
	}
	return lo + int64(r.next()%uint64(hi-lo+1))
}

func (r *rng) fill(b []byte) {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.next())
	}
	if i < len(b) {
		var t [8]byte
		binary.LittleEndian.PutUint64(t[:], r.next())
		copy(b[i:], t[:])
	}
}

// mix is the splitmix64 finaliser, used to derive independent streams.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func derive(parts ...uint64) uint64 {
	h := uint64(0x243f6a8885a308d3)
	for _, p := range parts {
		h = mix(h ^ p)
	}
	return h
}

func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

// ---------------------------------------------------------------------------
// Content

type kind int

const (
	kindRandom kind = iota // incompressible
	kindSource             // source-code-like text (compresses ~3-5x)
	kindLog                // log-like text (compresses well, random ids)
	kindDisk               // 1 MiB segments, ~90% random and ~10% log text
)

const chunkSize = 1 * MiB

// vocabulary shared by all text files, derived from a fixed seed so that the
// language is the same for every data-set seed (like real code bases).
var (
	words    []string
	keywords = []string{"func", "return", "if", "else", "for", "range", "var", "const",
		"type", "struct", "interface", "nil", "err", "int", "string", "bool", "byte",
		"error", "len", "append", "make", "switch", "case", "default", "break", "defer"}
	levels   = []string{"DEBUG", "INFO ", "INFO ", "INFO ", "INFO ", "WARN ", "ERROR"}
	services = []string{"api", "auth", "billing", "cache", "db-pool", "gateway", "indexer",
		"ingest", "mailer", "metrics", "notifier", "queue", "scheduler", "search",
		"session", "storage", "sync", "thumbnailer", "uploader", "worker"}
	messages = []string{"request completed", "request started", "cache miss",
		"cache hit", "retrying operation", "connection opened", "connection closed",
		"slow query", "user logged in", "user logged out", "job enqueued",
		"job finished", "job failed", "rate limit exceeded", "config reloaded",
		"health check ok", "token refreshed", "upload received", "file stored",
		"index updated", "message delivered", "timeout waiting for upstream",
		"payload validated", "permission denied", "snapshot written", "lease renewed"}
	paths = []string{"/api/v1/users", "/api/v1/orders", "/api/v2/search", "/login",
		"/logout", "/static/app.js", "/healthz", "/api/v1/files", "/api/v1/reports",
		"/metrics"}
)

func init() {
	syl := []string{"ba", "co", "de", "fi", "ga", "ho", "ji", "ka", "lu", "me", "no",
		"pa", "qui", "ro", "sa", "ti", "vu", "wa", "xe", "yo", "ze", "str", "ctx",
		"buf", "idx", "len", "tmp", "obj", "map", "key", "val", "node", "list", "tree"}
	r := newRNG(42)
	words = make([]string, 4096)
	for i := range words {
		n := 1 + r.intn(3)
		b := make([]byte, 0, 16)
		for j := 0; j < n; j++ {
			s := syl[r.intn(len(syl))]
			if j > 0 && r.intn(2) == 0 {
				b = append(b, s[0]-'a'+'A')
				b = append(b, s[1:]...)
			} else {
				b = append(b, s...)
			}
		}
		words[i] = string(b)
	}
}

// textGen produces lines of text into a buffer.
type textGen struct {
	r     *rng
	depth int
	ts    int64 // log timestamp, milliseconds since the Unix epoch
}

func (g *textGen) word() string { return words[g.r.intn(len(words))] }

func (g *textGen) sourceLine(b []byte) []byte {
	for i := 0; i < g.depth; i++ {
		b = append(b, '\t')
	}
	switch g.r.intn(12) {
	case 0, 1:
		b = append(b, g.word()...)
		b = append(b, " := "...)
		b = append(b, g.word()...)
		b = append(b, '(')
		b = append(b, g.word()...)
		b = append(b, ", "...)
		b = append(b, g.word()...)
		b = append(b, ")\n"...)
	case 2:
		b = append(b, "if err != nil {\n"...)
		g.depth++
	case 3:
		b = append(b, "return "...)
		b = append(b, g.word()...)
		b = append(b, ", nil\n"...)
	case 4, 5:
		if g.depth > 0 {
			g.depth--
			b = b[:len(b)-1]
			b = append(b, "}\n"...)
		} else {
			b = append(b, '\n')
		}
	case 6:
		b = append(b, "// "...)
		n := 3 + g.r.intn(9)
		for i := 0; i < n; i++ {
			if i > 0 {
				b = append(b, ' ')
			}
			b = append(b, g.word()...)
		}
		b = append(b, '\n')
	case 7:
		if g.depth == 0 {
			b = append(b, "\nfunc ("...)
			b = append(b, g.word()[:1]...)
			b = append(b, " *"...)
			b = append(b, g.word()...)
			b = append(b, ") "...)
			b = append(b, g.word()...)
			b = append(b, "(ctx context.Context, n int) error {\n"...)
			g.depth = 1
		} else {
			b = append(b, keywords[g.r.intn(len(keywords))]...)
			b = append(b, ' ')
			b = append(b, g.word()...)
			b = append(b, '\n')
		}
	case 8:
		b = append(b, g.word()...)
		b = append(b, '.')
		b = append(b, g.word()...)
		b = append(b, " = append("...)
		b = append(b, g.word()...)
		b = append(b, ", \""...)
		b = append(b, g.word()...)
		b = append(b, "\")\n"...)
	case 9:
		if g.depth < 6 {
			b = append(b, "for i := 0; i < "...)
			b = strconv.AppendInt(b, int64(g.r.intn(1000)), 10)
			b = append(b, "; i++ {\n"...)
			g.depth++
		} else {
			b = append(b, "continue\n"...)
		}
	default:
		b = append(b, g.word()...)
		b = append(b, " = "...)
		b = strconv.AppendInt(b, int64(g.r.intn(1<<20)), 10)
		b = append(b, " + "...)
		b = append(b, g.word()...)
		b = append(b, '\n')
	}
	return b
}

const hexdigits = "0123456789abcdef"

func (g *textGen) logLine(b []byte) []byte {
	g.ts += int64(g.r.intn(250))
	t := time.UnixMilli(g.ts).UTC()
	b = t.AppendFormat(b, "2006-01-02T15:04:05.000Z")
	b = append(b, ' ')
	b = append(b, levels[g.r.intn(len(levels))]...)
	b = append(b, " ["...)
	b = append(b, services[g.r.intn(len(services))]...)
	b = append(b, "] "...)
	b = append(b, messages[g.r.intn(len(messages))]...)
	b = append(b, " req="...)
	v := g.r.next()
	for i := 0; i < 16; i++ {
		b = append(b, hexdigits[v&15])
		v >>= 4
	}
	switch g.r.intn(3) {
	case 0:
		b = append(b, " path="...)
		b = append(b, paths[g.r.intn(len(paths))]...)
		b = append(b, '/')
		b = strconv.AppendInt(b, int64(g.r.intn(100000)), 10)
		b = append(b, " status="...)
		b = strconv.AppendInt(b, int64([]int{200, 200, 200, 201, 204, 304, 400, 404, 500}[g.r.intn(9)]), 10)
	case 1:
		b = append(b, " user="...)
		b = append(b, g.word()...)
		b = append(b, " shard="...)
		b = strconv.AppendInt(b, int64(g.r.intn(64)), 10)
	}
	b = append(b, " dur="...)
	b = strconv.AppendInt(b, int64(g.r.intn(2000)), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(g.r.intn(10)), 10)
	b = append(b, "ms\n"...)
	return b
}

// produce calls emit with consecutive pieces of the content of a file of the
// given kind and size. buf must have capacity >= chunkSize+4096.
func produce(k kind, size int64, r *rng, buf []byte, emit func([]byte) error) error {
	g := &textGen{r: r, ts: 1767225600000 + int64(r.intn(1<<30))}
	for size > 0 {
		n := int64(chunkSize)
		if size < n {
			n = size
		}
		b := buf[:0]
		kk := k
		if k == kindDisk {
			// segment granularity is the chunk (1 MiB)
			if r.intn(10) == 0 {
				kk = kindLog
			} else {
				kk = kindRandom
			}
		}
		switch kk {
		case kindRandom:
			b = b[:n]
			r.fill(b)
		case kindSource:
			for int64(len(b)) < n {
				b = g.sourceLine(b)
			}
		case kindLog:
			for int64(len(b)) < n {
				b = g.logLine(b)
			}
		}
		if err := emit(b[:n]); err != nil {
			return err
		}
		size -= n
	}
	return nil
}

// ---------------------------------------------------------------------------
// create

type fileSpec struct {
	path string
	kind kind
	size int64
	seed uint64
}

func cmdCreate(args []string) error {
	fset := flag.NewFlagSet("create", flag.ExitOnError)
	set := fset.String("set", "", "data set: mixed, many-small or big")
	out := fset.String("out", "", "output directory (must not exist or be empty)")
	seed := fset.Uint64("seed", 1, "seed")
	size := fset.Int64("size", 0, "total size in bytes for mixed and big (0: default)")
	files := fset.Int("files", 0, "file count for many-small, small-file count for mixed (0: default)")
	workers := fset.Int("j", 2*runtime.NumCPU(), "parallel writers")
	fset.Parse(args)
	if *out == "" || *set == "" {
		return errors.New("create needs -set and -out")
	}
	if ents, err := os.ReadDir(*out); err == nil && len(ents) > 0 {
		return fmt.Errorf("%s exists and is not empty", *out)
	}
	var specs []fileSpec
	switch *set {
	case "mixed":
		specs = planMixed(*seed, orDefault(*size, 1*GiB), int(orDefault(int64(*files), 10000)))
	case "many-small":
		specs = planManySmall(*seed, int(orDefault(int64(*files), 200000)))
	case "big":
		specs = planBig(*seed, orDefault(*size, 4*GiB))
	default:
		return fmt.Errorf("unknown set %q (want mixed, many-small or big)", *set)
	}
	start := time.Now()
	total, err := writeAll(*out, specs, *workers)
	if err != nil {
		return err
	}
	el := time.Since(start)
	fmt.Printf("gen: %s seed=%d: %d files, %d bytes (%.1f MiB) in %.1fs (%.0f MiB/s)\n",
		*set, *seed, len(specs), total, float64(total)/MiB, el.Seconds(),
		float64(total)/MiB/el.Seconds())
	return nil
}

func orDefault(v, d int64) int64 {
	if v <= 0 {
		return d
	}
	return v
}

// planMixed: ~45% in four large random files, ~25% source-like text in a
// tree of packages, ~25% log files, and `small` small files of 0-8 KiB.
func planMixed(seed uint64, total int64, small int) []fileSpec {
	r := newRNG(derive(seed, hashString("mixed-plan")))
	var specs []fileSpec
	add := func(p string, k kind, size int64) {
		specs = append(specs, fileSpec{path: p, kind: k, size: size,
			seed: derive(seed, hashString("mixed"), uint64(len(specs)))})
	}
	// large random files
	for i, frac := range []float64{0.16, 0.12, 0.10, 0.07} {
		add(fmt.Sprintf("large/blob-%02d.bin", i), kindRandom, int64(frac*float64(total)))
	}
	// source tree: modules/packages/files of 1-64 KiB
	budget := int64(0.25 * float64(total))
	for i := 0; budget > 0; i++ {
		sz := r.between(1*KiB, 64*KiB)
		if r.intn(4) == 0 {
			sz = r.between(64, 4*KiB)
		}
		sz = min(sz, budget)
		add(fmt.Sprintf("src/mod%02d/pkg%03d/%s_%d.go", i/2000, (i/25)%80, words[r.intn(len(words))], i), kindSource, sz)
		budget -= sz
	}
	// logs: files of 2-16 MiB, grouped by service
	budget = int64(0.25 * float64(total))
	for i := 0; budget > 0; i++ {
		sz := min(r.between(2*MiB, 16*MiB), budget)
		svc := services[i%len(services)]
		add(fmt.Sprintf("logs/%s/%s.%03d.log", svc, svc, i), kindLog, sz)
		budget -= sz
	}
	// small files 0-8 KiB, 100 per directory
	for i := 0; i < small; i++ {
		var k kind
		ext := ".txt"
		switch x := r.intn(10); {
		case x < 4:
			k, ext = kindSource, ".go"
		case x < 6:
			k, ext = kindLog, ".log"
		case x < 8:
			k, ext = kindRandom, ".dat"
		default:
			k, ext = kindSource, ".conf"
		}
		add(fmt.Sprintf("small/d%03d/f%05d%s", i/100, i, ext), k, r.between(0, 8*KiB))
	}
	return specs
}

// planManySmall: n files of 0-16 KiB, ~20 per directory, directories 6 levels
// deep.
func planManySmall(seed uint64, n int) []fileSpec {
	r := newRNG(derive(seed, hashString("many-small-plan")))
	specs := make([]fileSpec, 0, n)
	dir := 0
	left := 0
	var dirPath string
	for i := 0; i < n; i++ {
		if left == 0 {
			left = 1 + r.intn(39)
			dirPath = deepDir(dir)
			dir++
		}
		left--
		var k kind
		ext := ".txt"
		switch x := r.intn(20); {
		case x < 9:
			k, ext = kindSource, ".go"
		case x < 13:
			k, ext = kindLog, ".log"
		default:
			k, ext = kindRandom, ".bin"
		}
		sz := r.between(0, 16*KiB)
		if r.intn(20) == 0 {
			sz = r.between(0, 64)
		}
		specs = append(specs, fileSpec{
			path: fmt.Sprintf("%s/file%06d%s", dirPath, i, ext),
			kind: k, size: sz,
			seed: derive(seed, hashString("many-small"), uint64(i)),
		})
	}
	return specs
}

// deepDir maps a directory number to a 6-level path, most significant digit
// first so that consecutive directories share their parents.
func deepDir(d int) string {
	var digits [6]int
	for lvl := 5; lvl >= 0; lvl-- {
		digits[lvl] = d % 6
		d /= 6
	}
	b := make([]byte, 0, 24)
	for lvl, v := range digits {
		if lvl > 0 {
			b = append(b, '/')
		}
		b = append(b, byte('a'+lvl))
		b = strconv.AppendInt(b, int64(v), 10)
	}
	return string(b)
}

func planBig(seed uint64, size int64) []fileSpec {
	return []fileSpec{{path: "big/disk.img", kind: kindDisk, size: size,
		seed: derive(seed, hashString("big"), 0)}}
}

func writeAll(root string, specs []fileSpec, workers int) (int64, error) {
	dirs := map[string]bool{}
	for _, s := range specs {
		dirs[filepath.Dir(s.path)] = true
	}
	dl := make([]string, 0, len(dirs))
	for d := range dirs {
		dl = append(dl, d)
	}
	sort.Strings(dl)
	for _, d := range dl {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return 0, err
		}
	}
	if workers < 1 {
		workers = 1
	}
	jobs := make(chan fileSpec)
	var (
		mu       sync.Mutex
		firstErr error
		total    int64
		wg       sync.WaitGroup
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 0, chunkSize+8*KiB)
			for s := range jobs {
				err := writeFile(filepath.Join(root, s.path), s, buf)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				total += s.size
				mu.Unlock()
			}
		}()
	}
	for _, s := range specs {
		mu.Lock()
		failed := firstErr != nil
		mu.Unlock()
		if failed {
			break
		}
		jobs <- s
	}
	close(jobs)
	wg.Wait()
	return total, firstErr
}

func writeFile(path string, s fileSpec, buf []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = produce(s.kind, s.size, newRNG(s.seed), buf, func(b []byte) error {
		_, err := f.Write(b)
		return err
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ---------------------------------------------------------------------------
// mutate

type entry struct {
	path string
	size int64
}

func cmdMutate(args []string) error {
	fset := flag.NewFlagSet("mutate", flag.ExitOnError)
	dir := fset.String("dir", "", "data set directory to change in place")
	seed := fset.Uint64("seed", 2, "seed")
	pct := fset.Float64("percent", 1, "share of the data set's bytes to change")
	fset.Parse(args)
	if *dir == "" {
		return errors.New("mutate needs -dir")
	}
	var files []entry
	var dirs []string
	var total int64
	err := filepath.WalkDir(*dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, p)
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, entry{p, info.Size()})
		total += info.Size()
		return nil
	})
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%s: no files", *dir)
	}
	r := newRNG(derive(*seed, hashString("mutate"), uint64(len(files)), uint64(total)))
	budget := max(int64(float64(total)**pct/100), 64*KiB)
	buf := make([]byte, 0, chunkSize+8*KiB)

	// 1. deletions: ~10% of the budget, only in trees with enough files, and
	//    never a file bigger than what is left of that share.
	var delN int
	var delB int64
	if len(files) >= 20 {
		target := budget / 10
		for tries := 0; tries < 10000 && delB < target && len(files) > 1; tries++ {
			i := r.intn(len(files))
			if files[i].size > target-delB {
				continue
			}
			if err := os.Remove(files[i].path); err != nil {
				return err
			}
			delB += files[i].size
			delN++
			files[i] = files[len(files)-1]
			files = files[:len(files)-1]
		}
	}

	// 2. in-place edits: ~40% of the budget, regions of up to 64 KiB
	var editN int
	var editB int64
	target := budget * 4 / 10
	for tries := 0; tries < 1000000 && editB < target; tries++ {
		e := files[r.intn(len(files))]
		if e.size == 0 {
			continue
		}
		n := min(r.between(1, 64*KiB), e.size, target-editB)
		off := r.between(0, e.size-n)
		b := buf[:n]
		r.fill(b)
		f, err := os.OpenFile(e.path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		_, err = f.WriteAt(b, off)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		editN++
		editB += n
	}

	// 3. appends: ~25% of the budget, text appended to existing files
	var appN int
	var appB int64
	target = budget / 4
	for appB < target {
		i := r.intn(len(files))
		e := files[i]
		n := min(r.between(1, 256*KiB), target-appB)
		k := kindSource
		if filepath.Ext(e.path) == ".log" {
			k = kindLog
		}
		f, err := os.OpenFile(e.path, os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		err = produce(k, n, r, buf, func(b []byte) error { _, err := f.Write(b); return err })
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		files[i].size += n
		appN++
		appB += n
	}

	// 4. new files: the rest of the budget
	var newN int
	var newB int64
	target = budget - delB - editB - appB
	for i := 0; newB < target; i++ {
		d := dirs[r.intn(len(dirs))]
		n := min(r.between(1, 256*KiB), target-newB)
		k := []kind{kindSource, kindLog, kindRandom}[r.intn(3)]
		p := filepath.Join(d, fmt.Sprintf("new-%d-%05d.dat", *seed, i))
		if err := writeFile(p, fileSpec{path: p, kind: k, size: n, seed: r.next()}, buf); err != nil {
			return err
		}
		newN++
		newB += n
	}
	fmt.Printf("mutate: seed=%d %.2f%% of %.1f MiB: deleted %d files (%.1f MiB), edited %d regions (%.1f MiB), appended %d times (%.1f MiB), created %d files (%.1f MiB)\n",
		*seed, *pct, float64(total)/MiB, delN, float64(delB)/MiB, editN, float64(editB)/MiB,
		appN, float64(appB)/MiB, newN, float64(newB)/MiB)
	return nil
}

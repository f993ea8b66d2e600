package repo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"testing"

	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/fastcdc"  // compared in BenchmarkChunkerAlgorithms
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/ultracdc" // likewise
	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// Data for the stage benchmarks: random (incompressible) and text-like.
func benchData(kind string, n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	switch kind {
	case "random":
		for i := 0; i+8 <= n; i += 8 {
			v := rng.Uint64()
			for k := range 8 {
				b[i+k] = byte(v >> (8 * k))
			}
		}
	case "text":
		words := []string{"func ", "return ", "backup ", "snapshot ", "if err != nil {\n", "\t", "the ", "file ", "stillpoint ", "12345 ", "\n"}
		var buf bytes.Buffer
		for buf.Len() < n {
			buf.WriteString(words[rng.IntN(len(words))])
		}
		copy(b, buf.Bytes())
	}
	return b
}

func benchRepo(b *testing.B) *Repository {
	r, err := Init(context.Background(), backend.NewMem(), Credential{KeyFile: NewKeyFileSecret()}, DefaultConfig)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

func BenchmarkChunker(b *testing.B) {
	for _, kind := range []string{"random", "text"} {
		b.Run(kind, func(b *testing.B) {
			r := benchRepo(b)
			data := benchData(kind, 64<<20)
			c, err := r.NewChunker()
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			for range b.N {
				chunkAll(b, c, data)
			}
		})
	}
}

func BenchmarkHash(b *testing.B) {
	r := benchRepo(b)
	data := benchData("random", 1<<20)
	b.SetBytes(int64(len(data)))
	for range b.N {
		r.Hash(data)
	}
}

func BenchmarkCompress(b *testing.B) {
	for _, kind := range []string{"random", "text"} {
		for _, level := range []string{"fastest", "default"} {
			b.Run(kind+"/"+level, func(b *testing.B) {
				c, err := newCompressor(level)
				if err != nil {
					b.Fatal(err)
				}
				data := benchData(kind, 1<<20)
				dst := make([]byte, 0, len(data))
				b.SetBytes(int64(len(data)))
				for range b.N {
					c.compress(dst, data)
				}
			})
		}
	}
}

func BenchmarkEncrypt(b *testing.B) {
	r := benchRepo(b)
	data := benchData("random", 1<<20)
	b.SetBytes(int64(len(data)))
	pw := newPackWriter(r.key, make([]byte, 0, 2<<20))
	for range b.N {
		pw.buf = pw.buf[:0]
		pw.entries = pw.entries[:0]
		pw.add(DataBlob, ID{}, 0, data, len(data))
	}
}

// BenchmarkPackWriter fills and finishes whole packs of 1 MiB blobs.
func BenchmarkPackWriter(b *testing.B) {
	r := benchRepo(b)
	data := benchData("random", 1<<20)
	perPack := DefaultConfig.PackSize / len(data)
	b.SetBytes(int64(perPack * len(data)))
	buf := make([]byte, 0, DefaultConfig.PackSize+(1<<20))
	for range b.N {
		pw := newPackWriter(r.key, buf[:0])
		for i := range perPack {
			pw.add(DataBlob, ID{byte(i)}, 0, data, len(data))
		}
		buf = pw.finish()
	}
}

func BenchmarkIndexLookup(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			x := NewIndex()
			ids := make([]ID, n)
			var entries []blobEntry
			for i := range ids {
				ids[i] = NewRandomID()
				entries = append(entries, blobEntry{Type: DataBlob, ID: ids[i], Length: 100, RawLen: 100})
				if len(entries) == 1000 {
					x.addPack(packIndex{ID: NewRandomID(), Entries: entries}, false)
					entries = nil
				}
			}
			b.ResetTimer()
			for i := range b.N {
				if !x.Has(ids[i%n]) {
					b.Fatal("missing")
				}
			}
		})
	}
}

func benchTree(n int) *Tree {
	t := &Tree{}
	for i := range n {
		t.Nodes = append(t.Nodes, &Node{Name: fmt.Sprintf("file-%06d.txt", i), Type: NodeFile, Mode: 0o644,
			Size: uint64(i * 100), Mtime: int64(i) * 1e9, Ctime: int64(i) * 1e9, UID: 1000, GID: 1000,
			Inode: uint64(i), Device: 2049, Links: 1, Content: []ID{NewRandomID()}})
	}
	return t
}

func BenchmarkTreeEncode(b *testing.B) {
	t := benchTree(1000)
	b.ReportAllocs()
	for range b.N {
		EncodeTree(t)
	}
}

func BenchmarkTreeDecode(b *testing.B) {
	data := EncodeTree(benchTree(1000))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for range b.N {
		if _, err := DecodeTree(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSaveBlob is the whole per-chunk path: hash, dedup check,
// compress, encrypt, pack, upload to memory, in parallel.
func BenchmarkSaveBlob(b *testing.B) {
	for _, kind := range []string{"random", "text"} {
		b.Run(kind, func(b *testing.B) {
			r := benchRepo(b)
			base := benchData(kind, 1<<20)
			b.SetBytes(int64(len(base)))
			b.RunParallel(func(pb *testing.PB) {
				data := append([]byte(nil), base...)
				ctx := context.Background()
				for pb.Next() {
					data[0]++
					data[1] += data[0] >> 7 // new content each time: no dedup
					data[2]++
					if _, err := r.SaveBlob(ctx, DataBlob, r.Hash(data), data); err != nil {
						b.Fatal(err)
					}
				}
			})
			if err := r.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// BenchmarkChunkerAlgorithms compares the content-defined chunkers of
// go-cdc-chunkers at our sizes; it is how the default was chosen.
func BenchmarkChunkerAlgorithms(b *testing.B) {
	data := benchData("random", 64<<20)
	for _, algo := range []string{"fastcdc-v1.0.0", "ultracdc", "jc", "jc-v1.0.0"} {
		b.Run(algo, func(b *testing.B) {
			cfg := DefaultConfig
			cfg.Chunker.Algorithm = algo
			r, err := Init(context.Background(), backend.NewMem(), Credential{KeyFile: NewKeyFileSecret()}, cfg)
			if err != nil {
				b.Fatal(err)
			}
			c, err := r.NewChunker()
			if err != nil {
				b.Skipf("%s: %v", algo, err)
			}
			b.SetBytes(int64(len(data)))
			b.ResetTimer()
			chunks := 0
			for range b.N {
				c.Reset(bytes.NewReader(data))
				for {
					if _, err := c.Next(); err == io.EOF {
						break
					} else if err != nil {
						b.Fatal(err)
					}
					chunks++
				}
			}
			b.ReportMetric(float64(len(data)*b.N)/float64(chunks)/1024, "KiB/chunk")
		})
	}
}

// BenchmarkStagesOnData runs each stage over the chunks of real data: the
// file named by STILLPOINT_STAGE_DATA (bench/stages.sh passes a sample of
// the big data set). How fast compression is depends on the data, so the
// slowest stage is only known for given content.
func BenchmarkStagesOnData(b *testing.B) {
	path := os.Getenv("STILLPOINT_STAGE_DATA")
	if path == "" {
		b.Skip("STILLPOINT_STAGE_DATA is not set")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	r := benchRepo(b)
	c, err := r.NewChunker()
	if err != nil {
		b.Fatal(err)
	}
	var chunks [][]byte
	chunkAll(b, c, data, func(chunk []byte) { chunks = append(chunks, append([]byte(nil), chunk...)) })
	run := func(name string, stage func([]byte)) {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for range b.N {
				for _, chunk := range chunks {
					stage(chunk)
				}
			}
		})
	}
	b.Run("chunk", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for range b.N {
			chunkAll(b, c, data)
		}
	})
	run("hash", func(chunk []byte) { r.Hash(chunk) })
	comp, err := newCompressor(r.cfg.Compression)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, compressBound(r.cfg.Chunker.Max))
	run("compress", func(chunk []byte) { comp.compress(dst, chunk) })
	pw := newPackWriter(r.key, make([]byte, 0, 2*r.cfg.Chunker.Max))
	run("encrypt", func(chunk []byte) {
		pw.buf, pw.entries = pw.buf[:0], pw.entries[:0]
		pw.add(DataBlob, ID{}, 0, chunk, len(chunk))
	})
}

// chunkAll cuts data into chunks, handing each to the keep functions.
func chunkAll(tb testing.TB, c *Chunker, data []byte, keep ...func([]byte)) {
	c.Reset(bytes.NewReader(data))
	for {
		chunk, err := c.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			tb.Fatal(err)
		}
		for _, k := range keep {
			k(chunk)
		}
	}
}

package repo

import (
	"io"

	chunkers "github.com/PlakarKorp/go-cdc-chunkers"
	_ "github.com/PlakarKorp/go-cdc-chunkers/chunkers/jc" // registers jc-v1.0.0, the default (docs/benchmarks.md)
)

// Chunker splits a stream into content-defined chunks. Its gear table is
// keyed from the repository key. Chunks returned by Next alias an internal
// buffer and are valid until the next call.
type Chunker struct {
	c *chunkers.Chunker
}

// NewChunker returns a chunker for this repository's parameters. Reset it
// onto each new file; a chunker is not safe for concurrent use.
func (r *Repository) NewChunker() (*Chunker, error) {
	p := r.cfg.Chunker
	opts := &chunkers.ChunkerOpts{MinSize: p.Min, NormalSize: p.Avg, MaxSize: p.Max, Key: r.key.chunkerKey()}
	// The scan buffer must hold the largest chunk. The library slides what
	// is left after each cut to the buffer's start when it runs out of room:
	// with one largest chunk that moves ~2 bytes per byte chunked, with two
	// well under one. Only one chunker per core exists (archiver.chunkSem).
	c, err := chunkers.NewChunkerBuffer(p.Algorithm, eofReader{}, opts, make([]byte, 2*p.Max))
	if err != nil {
		return nil, err
	}
	return &Chunker{c: c}, nil
}

// MaxChunk is the largest chunk this repository makes.
func (r *Repository) MaxChunk() int { return r.cfg.Chunker.Max }

// Reset starts a new stream.
func (c *Chunker) Reset(rd io.Reader) { c.c.Reset(rd) }

// Next returns the next chunk, or io.EOF after the last one.
func (c *Chunker) Next() ([]byte, error) {
	for {
		chunk, err := c.c.Next()
		if len(chunk) > 0 {
			if err == io.EOF {
				// the library returns the last chunk together with EOF;
				// report EOF on the following call instead.
				c.c.Reset(eofReader{})
			}
			return chunk, nilIfEOF(err)
		}
		if err != nil {
			return nil, err
		}
	}
}

func nilIfEOF(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

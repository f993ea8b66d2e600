package repo

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
)

func compressionLevel(name string) (zstd.EncoderLevel, error) {
	switch name {
	case "off":
		return 0, nil
	case "fastest", "":
		return zstd.SpeedFastest, nil
	case "default":
		return zstd.SpeedDefault, nil
	case "better":
		return zstd.SpeedBetterCompression, nil
	}
	return 0, fmt.Errorf("unknown compression %q (want off, fastest, default or better)", name)
}

type compressor struct {
	enc *zstd.Encoder // nil: compression off
	dec *zstd.Decoder
}

var (
	decoderOnce sync.Once
	sharedDec   *zstd.Decoder
)

func newCompressor(name string) (*compressor, error) {
	level, err := compressionLevel(name)
	if err != nil {
		return nil, err
	}
	decoderOnce.Do(func() {
		// every blob's plaintext is verified against its BLAKE3 id, so zstd's
		// own frame checksum adds nothing
		sharedDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(1<<30), zstd.IgnoreChecksum(true))
	})
	c := &compressor{dec: sharedDec}
	if level != 0 {
		// a 1 MiB window (the average chunk) halves the encoders' history
		// buffers at a small cost in ratio for chunks larger than that
		c.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithWindowSize(1<<20),
			zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)), zstd.WithZeroFrames(true), zstd.WithEncoderCRC(false))
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

// compress returns data compressed into dst when that saves at least 1/32
// of it; otherwise nil, and the blob is stored as it is. A large chunk is
// first judged by samples from its start, middle and end: when none of them
// compresses, neither will the rest (media, archives, encrypted data), and
// the chunk is stored without spending a full compression pass on it.
func (c *compressor) compress(dst, data []byte) []byte {
	if !c.worthTrying(dst, data) {
		return nil
	}
	return c.compressAll(dst, data)
}

// worthTrying tells whether compress could store data compressed: whether
// compression is on, and for a large chunk whether one of its samples
// compresses (into scratch, of compressBound(sampleLen) bytes; unused for
// data shorter than sampleMin). A caller that lends the destination of
// compressAll asks this first, so incompressible chunks take no buffer of
// their size.
func (c *compressor) worthTrying(scratch, data []byte) bool {
	if c.enc == nil || len(data) < 64 {
		return false
	}
	return len(data) < sampleMin || c.anySampleCompresses(scratch, data)
}

// compressAll is compress without the samples, for data worthTrying passed;
// dst should hold compressBound(len(data)) bytes.
func (c *compressor) compressAll(dst, data []byte) []byte {
	out := c.enc.EncodeAll(data, dst[:0])
	if len(out) > len(data)-len(data)/32 {
		return nil
	}
	return out
}

const (
	sampleLen = 16 << 10
	sampleMin = 16 * sampleLen // below this, sampling saves little
)

// anySampleCompresses compresses three samples of data into scratch (which
// holds compressBound(sampleLen) bytes) and tells whether one of them saves
// at least 1/32.
func (c *compressor) anySampleCompresses(scratch, data []byte) bool {
	for _, at := range []int{0, len(data)/2 - sampleLen/2, len(data) - sampleLen} {
		out := c.enc.EncodeAll(data[at:at+sampleLen], scratch[:0])
		if len(out) <= sampleLen-sampleLen/32 {
			return true
		}
	}
	return false
}

// compressBound is the largest zstd output for n bytes of input.
func compressBound(n int) int { return n + n>>7 + 1024 }

// decompressSlack is room past a blob's end that lets the decoder use its
// fast copies (which may write up to 16 bytes beyond a block) for the last
// block too.
const decompressSlack = 64

// decompress decodes data into dst when it has room for rawLen bytes and
// the slack, else into a new buffer.
func (c *compressor) decompress(data []byte, rawLen int, dst []byte) ([]byte, error) {
	if cap(dst) < rawLen+decompressSlack {
		dst = make([]byte, 0, rawLen+decompressSlack)
	}
	out, err := c.dec.DecodeAll(data, dst[:0])
	if err != nil {
		return nil, fmt.Errorf("decompress: %w", err)
	}
	return out, nil
}

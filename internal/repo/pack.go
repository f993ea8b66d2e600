package repo

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Pack layout: the sealed blobs one after another, then the sealed header,
// then the header's sealed length (uint32, little endian) and the magic.
// The header repeats what the index says of the pack, so an index can be
// rebuilt from the packs alone.
const (
	packMagic      = "SPK1"
	packTrailerLen = 8
	// flagCompressed marks a blob stored zstd-compressed.
	flagCompressed uint8 = 1
)

// blobEntry describes one blob inside a pack.
type blobEntry struct {
	Type   BlobType
	Flags  uint8
	ID     ID
	Offset uint32
	Length uint32 // stored (sealed) length
	RawLen uint32 // plaintext length
}

// packWriter assembles one pack in memory. A blob's place is reserved
// while the writer is held exclusively, and the blob is sealed into it
// afterwards, so several cores fill one pack at once.
type packWriter struct {
	id   ID
	aead interface {
		Seal(dst, nonce, plain, ad []byte) []byte
	}
	buf     []byte
	entries []blobEntry
	sealing sync.WaitGroup // blobs reserved but not yet sealed
}

func newPackWriter(mk *MasterKey, buf []byte) *packWriter {
	id := NewRandomID()
	return &packWriter{id: id, aead: mk.fileCipher(kindPack, id), buf: buf}
}

// reserve claims the room of one sealed blob; the caller must seal into it
// with sealInto. payloadLen is the (possibly compressed) plaintext length,
// rawLen the length before compression.
func (p *packWriter) reserve(t BlobType, id ID, flags uint8, payloadLen, rawLen int) (dst []byte, off int) {
	off, n := len(p.buf), payloadLen+sealOverhead
	if cap(p.buf)-off < n {
		// growing moves the buffer: wait for the blobs being sealed into it
		p.sealing.Wait()
		p.buf = slices.Grow(p.buf, max(n, cap(p.buf)/2))
	}
	p.buf = p.buf[:off+n]
	p.entries = append(p.entries, blobEntry{
		Type: t, Flags: flags, ID: id,
		Offset: uint32(off), Length: uint32(n), RawLen: uint32(rawLen),
	})
	p.sealing.Add(1)
	return p.buf[off : off : off+n], off
}

// sealInto encrypts payload into the room reserve returned.
func (p *packWriter) sealInto(dst []byte, off int, t BlobType, payload []byte) {
	p.aead.Seal(dst, nonceAt(uint64(off)), payload, []byte{byte(t)})
	p.sealing.Done()
}

// add reserves and seals in one step.
func (p *packWriter) add(t BlobType, id ID, flags uint8, payload []byte, rawLen int) {
	dst, off := p.reserve(t, id, flags, len(payload), rawLen)
	p.sealInto(dst, off, t, payload)
}

func (p *packWriter) size() int { return len(p.buf) }

// finish appends header and trailer and returns the pack's bytes.
func (p *packWriter) finish() []byte {
	p.sealing.Wait()
	hdr := encodePackHeader(p.entries)
	p.buf = slices.Grow(p.buf, len(hdr)+32+packTrailerLen)
	start := len(p.buf)
	p.buf = p.aead.Seal(p.buf, headerNonce, hdr, []byte("header"))
	p.buf = binary.LittleEndian.AppendUint32(p.buf, uint32(len(p.buf)-start))
	p.buf = append(p.buf, packMagic...)
	return p.buf
}

func encodePackHeader(entries []blobEntry) []byte {
	out := make([]byte, 0, 8+len(entries)*42)
	out = binary.AppendUvarint(out, uint64(len(entries)))
	for _, e := range entries {
		out = append(out, byte(e.Type), e.Flags)
		out = append(out, e.ID[:]...)
		out = binary.AppendUvarint(out, uint64(e.Length))
		out = binary.AppendUvarint(out, uint64(e.RawLen))
	}
	return out
}

var errBadHeader = errors.New("pack header is damaged")

func decodePackHeader(hdr []byte) ([]blobEntry, error) {
	entries, used, err := decodeEntries(hdr)
	if err != nil || used != len(hdr) {
		return nil, errBadHeader
	}
	return entries, nil
}

// parsePackTrailer returns the sealed header's length from the last bytes of a pack.
func parsePackTrailer(tail []byte, packSize int64) (int64, error) {
	if len(tail) != packTrailerLen || string(tail[4:]) != packMagic {
		return 0, fmt.Errorf("pack trailer is damaged (no %q magic): the pack is truncated or not a pack", packMagic)
	}
	hl := int64(binary.LittleEndian.Uint32(tail))
	if hl+packTrailerLen > packSize {
		return 0, errors.New("pack trailer names a header longer than the pack: the pack is truncated")
	}
	return hl, nil
}

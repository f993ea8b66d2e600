package repo

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/zeebo/blake3"
)

// MasterKey is the secret of a repository. Every other key is derived from
// it, so only this is wrapped by the user's password or key file.
type MasterKey struct {
	Encrypt [32]byte // root of the per-file AES-256-GCM keys
	ID      [32]byte // BLAKE3 key for blob ids
}

// Key derivation contexts (BLAKE3 derive_key); changing one changes the format.
const (
	ctxFileKey    = "stillpoint 2026-11 file encryption key v1"
	ctxChunkerKey = "stillpoint 2026-11 chunker gear table key v1"
	ctxKeyFileKEK = "stillpoint 2026-11 key file wrapping key v1"
)

// ErrDecrypt means authenticated decryption failed: the data was damaged or
// the key is wrong.
var ErrDecrypt = errors.New("decryption failed: data damaged or wrong key")

// fileCipher returns the AES-GCM of one repository file. Each file has a
// random name and its own key, so a nonce is only ever unique within one file,
// and GCM's nonce limits never come near.
func (k *MasterKey) fileCipher(kind byte, name ID) cipher.AEAD {
	material := make([]byte, 0, 65)
	material = append(material, k.Encrypt[:]...)
	material = append(material, kind)
	material = append(material, name[:]...)
	var key [32]byte
	blake3.DeriveKey(ctxFileKey, material, key[:])
	block, err := aes.NewCipher(key[:])
	if err != nil {
		panic(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return aead
}

// chunkerKey keys the chunker's gear table, so cut points do not reveal
// content to someone who sees only blob sizes.
func (k *MasterKey) chunkerKey() []byte {
	out := make([]byte, 32)
	blake3.DeriveKey(ctxChunkerKey, k.ID[:], out)
	return out
}

// nonceAt is the nonce of the blob at offset in a pack. The header uses
// headerNonce, which no offset can produce.
func nonceAt(offset uint64) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n[4:], offset)
	return n
}

var headerNonce = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0}

// Hasher computes blob ids. Keyed BLAKE3 state is ~9 KiB, so hashers are
// pooled and reset rather than made per blob.
type Hasher struct {
	key  [32]byte
	pool sync.Pool
}

func newHasher(key [32]byte) *Hasher {
	h := &Hasher{key: key}
	h.pool.New = func() any {
		hh, err := blake3.NewKeyed(h.key[:])
		if err != nil {
			panic(err)
		}
		return hh
	}
	return h
}

// Sum returns the keyed BLAKE3 id of data.
func (h *Hasher) Sum(data []byte) ID {
	hh := h.pool.Get().(*blake3.Hasher)
	hh.Reset()
	_, _ = hh.Write(data)
	var id ID
	hh.Sum(id[:0])
	h.pool.Put(hh)
	return id
}

// sealFile encrypts a whole small file (index, snapshot) under its own key.
func (k *MasterKey) sealFile(kind byte, name ID, plain []byte) []byte {
	aead := k.fileCipher(kind, name)
	out := make([]byte, 0, len(plain)+aead.Overhead()+1)
	out = append(out, formatVersion)
	return aead.Seal(out, headerNonce, plain, []byte{kind})
}

// openFileInPlace is openFile decrypting into data itself: for index
// files, which may be large.
func (k *MasterKey) openFileInPlace(kind byte, name ID, data []byte) ([]byte, error) {
	if len(data) < 1 {
		return nil, fmt.Errorf("file is empty: %w", ErrDecrypt)
	}
	if data[0] != formatVersion {
		return nil, fmt.Errorf("unknown file format version %d (this stillpoint reads %d)", data[0], formatVersion)
	}
	aead := k.fileCipher(kind, name)
	plain, err := aead.Open(data[1:1], headerNonce, data[1:], []byte{kind})
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}

func (k *MasterKey) openFile(kind byte, name ID, data []byte) ([]byte, error) {
	if len(data) < 1 {
		return nil, fmt.Errorf("file is empty: %w", ErrDecrypt)
	}
	if data[0] != formatVersion {
		return nil, fmt.Errorf("unknown file format version %d (this stillpoint reads %d)", data[0], formatVersion)
	}
	aead := k.fileCipher(kind, name)
	plain, err := aead.Open(nil, headerNonce, data[1:], []byte{kind})
	if err != nil {
		return nil, ErrDecrypt
	}
	return plain, nil
}

// File kinds bound into the key derivation and the GCM additional data.
const (
	kindPack     byte = 'P'
	kindIndex    byte = 'I'
	kindSnapshot byte = 'S'
)

package repo

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/zeebo/blake3"
	"golang.org/x/crypto/argon2"
)

// Credential unlocks a repository: a password or the secret of a key file.
type Credential struct {
	Password string // used with argon2id
	KeyFile  []byte // 32 random bytes; high entropy, so no slow KDF
}

// KDF parameters for new password keys: argon2id with 32 MiB and 4 passes,
// well above OWASP's minimum (19 MiB, 2 passes). Costs about 0.1 s on a
// 2-core machine, once per command; the memory is its peak, so it is kept
// below what a backup itself needs. Existing keys keep their parameters.
const (
	argonTime    = 4
	argonMemory  = 32 * 1024
	argonThreads = 2
)

type keyEntry struct {
	KDF     string    `json:"kdf"` // "argon2id" or "keyfile"
	Salt    []byte    `json:"salt,omitempty"`
	Time    uint32    `json:"time,omitempty"`
	Memory  uint32    `json:"memory,omitempty"`
	Threads uint8     `json:"threads,omitempty"`
	Nonce   []byte    `json:"nonce"`
	Data    []byte    `json:"data"` // the sealed master key
	Created time.Time `json:"created"`
	Host    string    `json:"host,omitempty"`
	User    string    `json:"user,omitempty"` // who added it; keys written before it was recorded have none
}

func (c Credential) kek(e *keyEntry) ([]byte, error) {
	switch e.KDF {
	case "argon2id":
		if c.Password == "" {
			return nil, errNoMatch
		}
		k := argon2.IDKey([]byte(c.Password), e.Salt, e.Time, e.Memory, e.Threads, 32)
		// the KDF's memory is garbage now: collect it so the command reuses
		// it rather than growing on top of it
		runtime.GC()
		return k, nil
	case "keyfile":
		if len(c.KeyFile) == 0 {
			return nil, errNoMatch
		}
		out := make([]byte, 32)
		blake3.DeriveKey(ctxKeyFileKEK, c.KeyFile, out)
		return out, nil
	}
	return nil, fmt.Errorf("unknown key derivation %q", e.KDF)
}

var errNoMatch = errors.New("credential does not fit this key")

func newKeyEntry(c Credential, mk *MasterKey) (*keyEntry, error) {
	host, _ := os.Hostname()
	e := &keyEntry{Created: time.Now().UTC(), Host: host, User: currentUser()}
	if len(c.KeyFile) > 0 {
		e.KDF = "keyfile"
	} else if c.Password != "" {
		e.KDF = "argon2id"
		e.Salt = make([]byte, 16)
		_, _ = rand.Read(e.Salt)
		e.Time, e.Memory, e.Threads = argonTime, argonMemory, argonThreads
	} else {
		return nil, errors.New("no password and no key file given")
	}
	kek, err := c.kek(e)
	if err != nil {
		return nil, err
	}
	aead := gcm(kek)
	e.Nonce = make([]byte, aead.NonceSize())
	_, _ = rand.Read(e.Nonce)
	plain := append(append([]byte(nil), mk.Encrypt[:]...), mk.ID[:]...)
	e.Data = aead.Seal(nil, e.Nonce, plain, []byte("stillpoint master key"))
	return e, nil
}

func (e *keyEntry) open(c Credential) (*MasterKey, error) {
	kek, err := c.kek(e)
	if err != nil {
		return nil, err
	}
	plain, err := gcm(kek).Open(nil, e.Nonce, e.Data, []byte("stillpoint master key"))
	if err != nil || len(plain) != 64 {
		return nil, errNoMatch
	}
	mk := &MasterKey{}
	copy(mk.Encrypt[:], plain[:32])
	copy(mk.ID[:], plain[32:])
	return mk, nil
}

func gcm(key []byte) cipher.AEAD {
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err)
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return a
}

func newMasterKey() *MasterKey {
	mk := &MasterKey{}
	_, _ = rand.Read(mk.Encrypt[:])
	_, _ = rand.Read(mk.ID[:])
	return mk
}

// ErrWrongKey is returned when no key of the repository opens with the
// given password or key file.
var ErrWrongKey = errors.New("wrong password or key file")

func saveKey(ctx context.Context, be backend.Backend, e *keyEntry) (string, error) {
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return "", err
	}
	name := NewRandomID().String()
	return name, be.Save(ctx, backend.Handle{Kind: backend.Keys, Name: name}, data)
}

func openMasterKey(ctx context.Context, be backend.Backend, c Credential) (*MasterKey, error) {
	mk, _, err := openKey(ctx, be, c)
	return mk, err
}

// openKey tries c on every key and returns the master key with the name
// of the key that opened it.
func openKey(ctx context.Context, be backend.Backend, c Credential) (*MasterKey, string, error) {
	var names []string
	if err := be.List(ctx, backend.Keys, func(fi backend.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		return nil, "", fmt.Errorf("list keys: %w", err)
	}
	if len(names) == 0 {
		return nil, "", fmt.Errorf("repository %s has no keys: it is damaged or not a stillpoint repository", be.Location())
	}
	kinds := map[string]int{}
	for _, n := range names {
		data, err := backend.ReadAll(ctx, be, backend.Handle{Kind: backend.Keys, Name: n})
		if err != nil {
			if backend.IsNotFound(err) {
				continue // removed since the listing
			}
			return nil, "", err
		}
		var e keyEntry
		if err := json.Unmarshal(data, &e); err != nil {
			backend.Forget(be, backend.Handle{Kind: backend.Keys, Name: n})
			continue
		}
		kinds[e.KDF]++
		if mk, err := e.open(c); err == nil {
			return mk, n, nil
		}
		// a copy that does not open is not used again (the next run reads
		// the store), whether the copy or the credential was wrong
		backend.Forget(be, backend.Handle{Kind: backend.Keys, Name: n})
	}
	var have []string
	if kinds["argon2id"] > 0 {
		have = append(have, "a password")
	}
	if kinds["keyfile"] > 0 {
		have = append(have, "a key file")
	}
	which := fmt.Sprintf("none of the %d keys of %s opened", len(names), be.Location())
	if len(names) == 1 {
		which = fmt.Sprintf("the key of %s did not open", be.Location())
	}
	return nil, "", fmt.Errorf("%w: %s (the repository accepts %s)", ErrWrongKey, which, strings.Join(have, " or "))
}

// NewKeyFileSecret returns a fresh key file secret.
func NewKeyFileSecret() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

// EncodeKeyFile renders a key file's text.
func EncodeKeyFile(repoID string, secret []byte) []byte {
	return fmt.Appendf(nil, "# stillpoint key for repository %s\n# Keep a copy of this file somewhere safe: without it the backups cannot be read.\n%s\n",
		repoID, base64.StdEncoding.EncodeToString(secret))
}

// DecodeKeyFile reads a key file's secret.
func DecodeKeyFile(data []byte) ([]byte, error) {
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		b, err := base64.StdEncoding.DecodeString(line)
		if err != nil || len(b) < 16 {
			return nil, errors.New("key file is damaged: its key line is not valid")
		}
		return b, nil
	}
	return nil, errors.New("key file holds no key")
}

package repo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"sort"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// Kinds of key, as KeyInfo.Kind says them.
const (
	KeyKindPassword = "password"
	KeyKindFile     = "key file"
)

// KeyInfo describes one file of keys/: one way to open the repository.
type KeyInfo struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Host    string    `json:"host,omitempty"`
	User    string    `json:"user,omitempty"`
	Kind    string    `json:"kind"`              // KeyKindPassword or KeyKindFile; "" when Damaged
	InUse   bool      `json:"in_use"`            // the key that opened this Keyring
	Damaged string    `json:"damaged,omitempty"` // why the file cannot be read
}

// Short is the id as commands print it.
func (k KeyInfo) Short() string { return shortName(k.ID) }

// Keyring manages the keys of a repository. It holds the master key, which
// never changes: every key wraps the same one, so adding or removing a key
// touches no data, index or snapshot, and needs no lock.
type Keyring struct {
	be    backend.Backend
	cfg   *Config
	mk    *MasterKey
	inUse string
}

// OpenKeyring opens the keys of the repository in be with cred.
func OpenKeyring(ctx context.Context, be backend.Backend, cred Credential) (*Keyring, error) {
	cfg, err := ReadConfig(ctx, be)
	if err != nil {
		return nil, err
	}
	retainWrites(be, cfg) // a new key is retained like the others
	mk, name, err := openKey(ctx, be, cred)
	if err != nil {
		return nil, err
	}
	return &Keyring{be: be, cfg: cfg, mk: mk, inUse: name}, nil
}

// RepositoryID is the id of the repository the keys open.
func (k *Keyring) RepositoryID() string { return k.cfg.ID }

// InUse is the id of the key that opened the keyring.
func (k *Keyring) InUse() string { return k.inUse }

// List returns every key, oldest first. A key file that cannot be read is
// listed with Damaged set, so that it can be removed.
func (k *Keyring) List(ctx context.Context) ([]KeyInfo, error) {
	entries, err := k.load(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]KeyInfo, 0, len(entries))
	for _, e := range entries {
		out = append(out, e.info)
	}
	return out, nil
}

type loadedKey struct {
	info KeyInfo
	raw  []byte
}

func (k *Keyring) load(ctx context.Context) ([]loadedKey, error) {
	var names []string
	if err := k.be.List(ctx, backend.Keys, func(fi backend.FileInfo) error {
		names = append(names, fi.Name)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	var out []loadedKey
	for _, n := range names {
		data, err := backend.ReadAll(ctx, k.be, backend.Handle{Kind: backend.Keys, Name: n})
		if backend.IsNotFound(err) {
			continue // removed since the listing
		}
		if err != nil {
			return nil, fmt.Errorf("read key %s: %w", shortName(n), err)
		}
		info := KeyInfo{ID: n, InUse: n == k.inUse}
		var e keyEntry
		switch err := json.Unmarshal(data, &e); {
		case err != nil:
			info.Damaged = "not a key: " + err.Error()
		case e.KDF == "argon2id":
			info.Kind = KeyKindPassword
		case e.KDF == "keyfile":
			info.Kind = KeyKindFile
		default:
			info.Damaged = fmt.Sprintf("unknown key derivation %q", e.KDF)
		}
		info.Created, info.Host, info.User = e.Created, e.Host, e.User
		out = append(out, loadedKey{info: info, raw: data})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i].info, out[j].info
		if !a.Created.Equal(b.Created) {
			return a.Created.Before(b.Created)
		}
		return a.ID < b.ID
	})
	return out, nil
}

// Add writes a new key that wraps the same master key with cred.
func (k *Keyring) Add(ctx context.Context, cred Credential) (KeyInfo, error) {
	e, err := newKeyEntry(cred, k.mk)
	if err != nil {
		return KeyInfo{}, err
	}
	name, err := saveKey(ctx, k.be, e)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("save key: %w", err)
	}
	info := KeyInfo{ID: name, Created: e.Created, Host: e.Host, User: e.User, Kind: KeyKindPassword}
	if e.KDF == "keyfile" {
		info.Kind = KeyKindFile
	}
	return info, nil
}

// ErrKeyInUse is returned by Remove for the key that opened the keyring,
// unless forced.
var ErrKeyInUse = errors.New("key is in use")

// Remove deletes the key whose id starts with prefix. It refuses, and
// removes nothing, when the prefix names no key or several, when the key is
// the last one that can open the repository, or when it is the key in use
// and force is false.
func (k *Keyring) Remove(ctx context.Context, prefix string, force bool) (KeyInfo, error) {
	keys, err := k.load(ctx)
	if err != nil {
		return KeyInfo{}, err
	}
	target, err := findKey(keys, prefix)
	if err != nil {
		return KeyInfo{}, err
	}
	if !hasOtherKey(keys, target.info.ID) {
		return KeyInfo{}, fmt.Errorf("key %s is the last key of the repository: without it nothing could open the repository again; add another key first (`stillpoint key add`)", target.info.Short())
	}
	if target.info.InUse && !force {
		return KeyInfo{}, fmt.Errorf("%w: key %s is the one this command was opened with; give --force to remove it anyway, or use `stillpoint key passwd` to replace it", ErrKeyInUse, target.info.Short())
	}
	return target.info, k.remove(ctx, target)
}

// remove deletes a key file, and writes it back when the repository was
// left without a key that opens it (another process removed the other
// keys at the same moment).
func (k *Keyring) remove(ctx context.Context, target loadedKey) error {
	if err := k.be.Remove(ctx, backend.Handle{Kind: backend.Keys, Name: target.info.ID}); err != nil {
		return fmt.Errorf("remove key %s: %w", target.info.Short(), err)
	}
	left, err := k.load(ctx)
	if err == nil && hasOtherKey(left, "") {
		return nil
	}
	// the removed key is self-contained: its bytes under a new name open
	// the repository as before
	name := NewRandomID().String()
	if serr := k.be.Save(ctx, backend.Handle{Kind: backend.Keys, Name: name}, target.raw); serr != nil {
		return fmt.Errorf("key %s was removed and no other key is left (%v), and writing it back failed: %w", target.info.Short(), err, serr)
	}
	if err != nil {
		return fmt.Errorf("key %s was removed, but the keys left could not be read (%w); it is written back as %s", target.info.Short(), err, shortName(name))
	}
	return fmt.Errorf("another process removed the other keys at the same time: key %s is written back as %s, so the repository can still be opened", target.info.Short(), shortName(name))
}

// Passwd replaces the key in use: it adds a key for cred, then removes
// the key in use. In that order, a crash in between leaves two keys that
// open the repository, never none.
func (k *Keyring) Passwd(ctx context.Context, cred Credential) (added, removed KeyInfo, err error) {
	keys, err := k.load(ctx)
	if err != nil {
		return KeyInfo{}, KeyInfo{}, err
	}
	var old *loadedKey
	for i := range keys {
		if keys[i].info.ID == k.inUse {
			old = &keys[i]
		}
	}
	if old == nil {
		return KeyInfo{}, KeyInfo{}, fmt.Errorf("the key in use (%s) is gone from the repository: another process removed it; nothing changed", shortName(k.inUse))
	}
	added, err = k.Add(ctx, cred)
	if err != nil {
		return KeyInfo{}, KeyInfo{}, err
	}
	if err := k.remove(ctx, *old); err != nil {
		return added, KeyInfo{}, fmt.Errorf("new key %s added, but the old one could not be removed: %w", added.Short(), err)
	}
	k.inUse = added.ID
	added.InUse = true
	return added, old.info, nil // old.info.InUse: it was the key in use
}

// findKey resolves an id prefix to exactly one key.
func findKey(keys []loadedKey, prefix string) (loadedKey, error) {
	prefix = strings.ToLower(strings.TrimSpace(prefix))
	if prefix == "" {
		return loadedKey{}, errors.New("no key id given (`stillpoint key list` shows them)")
	}
	var found []loadedKey
	for _, k := range keys {
		if strings.HasPrefix(k.info.ID, prefix) {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return loadedKey{}, fmt.Errorf("no key has an id starting with %q (`stillpoint key list` shows them); nothing removed", prefix)
	case 1:
		return found[0], nil
	}
	ids := make([]string, len(found))
	for i, k := range found {
		ids[i] = k.info.ID[:min(len(k.info.ID), len(prefix)+4)]
	}
	return loadedKey{}, fmt.Errorf("key id %q is ambiguous: it starts %d keys (%s); give more of it; nothing removed", prefix, len(found), strings.Join(ids, ", "))
}

// hasOtherKey tells whether a readable key other than id is among keys.
func hasOtherKey(keys []loadedKey, id string) bool {
	for _, k := range keys {
		if k.info.ID != id && k.info.Damaged == "" {
			return true
		}
	}
	return false
}

// currentUser names who adds a key, for key list.
func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	for _, env := range []string{"USER", "USERNAME"} {
		if v := os.Getenv(env); v != "" {
			return v
		}
	}
	return ""
}

// WriteKeyFile writes a key file's text to path with mode 0600. It never
// replaces an existing file: that could be the only copy of another key.
func WriteKeyFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s already exists: a key file is never overwritten (it may be the only copy of a key); choose another path", path)
		}
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// Package backend stores the repository's files. It is a store of
// write-once files named by the layer above; it knows nothing of encryption,
// packs or snapshots.
//
// Rules every implementation keeps:
//   - Save writes a whole file or nothing: a reader never sees a partial file,
//     and a crash during Save leaves either no file or the complete one.
//   - Save never overwrites: saving a name that exists returns ErrExists.
//   - A file saved and acknowledged is durable (fsynced, or the service's
//     equivalent).
//   - Save does not keep data after it returns: the caller reuses it.
//   - All methods are safe for concurrent use.
package backend

import (
	"context"
	"errors"
)

// Kind is a folder of the repository.
type Kind string

// The kinds of files in a repository.
const (
	Config    Kind = "config"
	Keys      Kind = "keys"
	Packs     Kind = "data"
	Indexes   Kind = "index"
	Snapshots Kind = "snapshots"
	Locks     Kind = "locks"
	// Marks are prune's marks of packs to delete (docs/format.md, Prune).
	// Repositories made before prune existed lack the folder: a listing of
	// a missing folder is empty, and Save makes it.
	Marks Kind = "gc"
	// Drills are the results of restore drills, one small file each
	// (docs/format.md, Drill results); missing in older repositories too.
	Drills Kind = "drills"
)

// Kinds lists every kind, in the order a repository is created.
var Kinds = []Kind{Config, Keys, Packs, Indexes, Snapshots, Locks, Marks, Drills}

// Handle names one file.
type Handle struct {
	Kind Kind
	Name string
}

func (h Handle) String() string { return string(h.Kind) + "/" + h.Name }

// FileInfo is one entry of a listing.
type FileInfo struct {
	Name string
	Size int64
}

// Errors with a meaning callers act on.
var (
	ErrNotFound = errors.New("file not found")
	ErrExists   = errors.New("file already exists")
	// ErrDenied: the store refused the request for want of permission
	// (S3 AccessDenied), as for a removal with append-only credentials.
	ErrDenied = errors.New("permission denied")
)

// Backend is the storage of a repository.
type Backend interface {
	// Location describes where the files are, for messages.
	Location() string
	// Save stores data under h. See the package rules.
	Save(ctx context.Context, h Handle, data []byte) error
	// Load reads length bytes at offset (length 0: to the end). A file shorter
	// than offset+length yields io.ErrUnexpectedEOF.
	Load(ctx context.Context, h Handle, offset, length int64) ([]byte, error)
	// LoadInto reads len(buf) bytes at offset into buf, so that a reader of
	// many packs can reuse one buffer. A file shorter than offset+len(buf)
	// yields io.ErrUnexpectedEOF; buf's content is then undefined.
	LoadInto(ctx context.Context, h Handle, offset int64, buf []byte) error
	// Stat returns the size of h, or ErrNotFound.
	Stat(ctx context.Context, h Handle) (FileInfo, error)
	// List calls fn for every file of kind k, in no particular order.
	List(ctx context.Context, k Kind, fn func(FileInfo) error) error
	// Remove deletes h; removing a missing file is not an error.
	Remove(ctx context.Context, h Handle) error
	// Close releases resources.
	Close() error
}

// Creator is implemented by backends that must prepare their folders once.
type Creator interface {
	Create(ctx context.Context) error
}

// RemovalSyncer is implemented by backends whose removals become durable
// only when asked (a local directory must be fsynced). Prune calls it
// between removals whose order matters.
type RemovalSyncer interface {
	SyncRemovals(ctx context.Context, k Kind) error
}

// SyncRemovals makes the removals of files of kind k durable, on backends
// that need to be asked; on the others a removal is durable when it returns.
func SyncRemovals(ctx context.Context, b Backend, k Kind) error {
	if s, ok := b.(RemovalSyncer); ok {
		return s.SyncRemovals(ctx, k)
	}
	return nil
}

// IsNotFound tells whether err means a missing file.
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// ReadAll is a helper that loads a whole file.
func ReadAll(ctx context.Context, b Backend, h Handle) ([]byte, error) {
	return b.Load(ctx, h, 0, 0)
}

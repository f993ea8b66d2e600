package backend

import "context"

// What the repository tells a backend that keeps copies (the cache,
// internal/backend/cache) beyond the Handle: which packs hold trees, and
// which copy turned out to be bad. A backend that keeps no copies ignores
// both.

type treePackKey struct{}

// WithTreePack marks the requests made with ctx as ones for a pack of tree
// blobs (a pack holds blobs of one type only: docs/format.md, Packs). The
// repository marks a tree pack's Save and the Loads of tree blobs.
func WithTreePack(ctx context.Context) context.Context {
	return context.WithValue(ctx, treePackKey{}, true)
}

// IsTreePack tells whether ctx was marked by WithTreePack.
func IsTreePack(ctx context.Context) bool {
	v, _ := ctx.Value(treePackKey{}).(bool)
	return v
}

// Forgetter is implemented by backends that keep copies of files: Forget
// drops the copy of h, so that the next Load reads the store. The
// repository calls it when what it loaded does not decrypt or decode, so
// that a damaged copy is never used twice.
type Forgetter interface {
	Forget(h Handle)
}

// Forget drops b's copy of h where b keeps copies; it reports whether b
// does (and so whether a second Load may give other bytes).
func Forget(b Backend, h Handle) bool {
	f, ok := b.(Forgetter)
	if ok {
		f.Forget(h)
	}
	return ok
}

package mount

import "time"

// Options configure a mount.
type Options struct {
	// CacheSize bounds the bytes of blobs kept for reads (0: DefaultCacheSize).
	CacheSize int64
	// AllowOther lets other users than the one mounting see the files (as
	// their modes allow). Others than root need user_allow_other in
	// /etc/fuse.conf for it.
	AllowOther bool
	// RefreshEvery is how old the snapshot list may get before a listing
	// reads it again (0: DefaultRefresh).
	RefreshEvery time.Duration
	// Name is shown as the file system's source in mount tables.
	Name string
	// Warn receives what went wrong while serving (a damaged blob, a
	// snapshot list that could not be read); nil drops it.
	Warn func(msg string)
	// Debug logs every FUSE request and reply to stderr.
	Debug bool
	// Ready is called once the file system is mounted; may be nil.
	Ready func()
}

// DefaultRefresh: new snapshots appear within this time of a listing.
const DefaultRefresh = 5 * time.Second

package view

// WindowsMeta is the metadata of a Windows file or directory that Stat
// does not carry.
type WindowsMeta struct {
	SD      []byte // security descriptor, self-relative; nil when unreadable
	SDParts uint8  // which parts SD holds (winmeta.PartOwner ...)
	Streams []Stream
}

// Stream is an alternate data stream.
type Stream struct {
	Name string
	Size int64
}

// WindowsMetaView is a View that can read Windows metadata. The archiver
// asks for it by type assertion; a view of another platform's files need
// not have it.
type WindowsMetaView interface {
	// WindowsMeta returns the security descriptor and the streams of path;
	// nil and no error where there is none to read.
	WindowsMeta(path string) (*WindowsMeta, error)
	// OpenStream opens an alternate data stream of path for reading.
	OpenStream(path, name string) (File, error)
}

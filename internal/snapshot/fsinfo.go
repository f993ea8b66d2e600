package snapshot

// FSInfo describes the filesystem that holds a path.
type FSInfo struct {
	Mountpoint string `json:"mountpoint"`
	FSType     string `json:"fs_type"`
	Device     string `json:"device"`        // mount source, e.g. /dev/sda1
	DevNum     string `json:"dev,omitempty"` // major:minor
	ReadOnly   bool   `json:"read_only,omitempty"`
}

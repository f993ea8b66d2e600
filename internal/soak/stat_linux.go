package soak

import (
	"io/fs"
	"syscall"
)

// statID identifies one version of a file's content on disk.
type statID struct {
	valid            bool
	dev, ino         uint64
	size             int64
	mtimeNs, ctimeNs int64
}

func identity(info fs.FileInfo) statID {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return statID{}
	}
	return statID{valid: true, dev: uint64(st.Dev), ino: st.Ino, size: st.Size,
		mtimeNs: st.Mtim.Nano(), ctimeNs: st.Ctim.Nano()}
}

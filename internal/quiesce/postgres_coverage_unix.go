//go:build unix

package quiesce

import (
	"fmt"
	"os"
	"syscall"
)

// dbSameDevice reports whether a and b are on one filesystem and, on btrfs,
// one subvolume (each subvolume has its own st_dev): one volume snapshot
// then holds both at the same instant.
func dbSameDevice(a, b string) (bool, error) {
	da, err := dbDeviceOf(a)
	if err != nil {
		return false, err
	}
	db, err := dbDeviceOf(b)
	if err != nil {
		return false, err
	}
	return da == db, nil
}

func dbDeviceOf(p string) (uint64, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("%s: no device number", p)
	}
	return uint64(st.Dev), nil //nolint:unconvert // Dev is int32 on some platforms
}

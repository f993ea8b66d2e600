package view

import (
	"os"

	"golang.org/x/sys/unix"
)

// openNoAtime opens for reading without updating atime where the kernel
// allows it (O_NOATIME needs file ownership or CAP_FOWNER).
func openNoAtime(p string) (*os.File, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOATIME|unix.O_NOFOLLOW, 0)
	if err == nil {
		return f, nil
	}
	return os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
}

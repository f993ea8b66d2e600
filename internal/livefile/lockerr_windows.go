package livefile

import (
	"errors"

	"golang.org/x/sys/windows"
)

// lockViolation: Windows refused the open or the read because another
// program opened the file without sharing it (ERROR_SHARING_VIOLATION) or
// holds a byte-range lock on it (ERROR_LOCK_VIOLATION).
func lockViolation(err error) bool {
	return errors.Is(err, windows.ERROR_SHARING_VIOLATION) || errors.Is(err, windows.ERROR_LOCK_VIOLATION)
}

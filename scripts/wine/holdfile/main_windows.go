// Command holdfile is the Wine tier's locking application (scripts/wine-tests):
// it opens a file with share mode 0 (FILE_SHARE_NONE), so every other open of
// it fails with ERROR_SHARING_VIOLATION, creates READY to say it holds it, and
// keeps it open until RELEASE exists or a minute has passed.
//
//	holdfile FILE READY RELEASE
package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

const errSharingViolation = syscall.Errno(32) // ERROR_SHARING_VIOLATION

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: holdfile FILE READY RELEASE")
		os.Exit(2)
	}
	name, err := syscall.UTF16PtrFromString(os.Args[1])
	if err != nil {
		fail(err)
	}
	h, err := syscall.CreateFile(name, syscall.GENERIC_READ|syscall.GENERIC_WRITE, 0, nil,
		syscall.OPEN_EXISTING, syscall.FILE_ATTRIBUTE_NORMAL, 0)
	if err != nil {
		fail(fmt.Errorf("open %s with share mode 0: %w", os.Args[1], err))
	}
	defer syscall.CloseHandle(h)
	// the hold is real only if a second open fails as it would for any reader
	if _, err := os.Open(os.Args[1]); err == nil {
		fail(fmt.Errorf("%s opened again while held with share mode 0", os.Args[1]))
	} else if !errors.Is(err, errSharingViolation) {
		fail(fmt.Errorf("a second open of %s: %w, want ERROR_SHARING_VIOLATION", os.Args[1], err))
	}
	if err := os.WriteFile(os.Args[2], []byte("held\n"), 0o644); err != nil {
		fail(err)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(os.Args[3]); err == nil {
			return
		}
	}
	fail(fmt.Errorf("%s did not appear within a minute; released %s", os.Args[3], os.Args[1]))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "holdfile:", err)
	os.Exit(1)
}

//go:build unix

package quiesce

import "syscall"

func killPgid(pgid int) error { return syscall.Kill(-pgid, syscall.SIGKILL) }

//go:build unix

package main

import (
	"os"
	"syscall"
)

// dumpSignals make the proxy print its counts and go on.
var dumpSignals = []os.Signal{syscall.SIGUSR1}

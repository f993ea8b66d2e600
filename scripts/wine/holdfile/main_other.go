//go:build !windows

// holdfile is a Windows program (see main_windows.go); elsewhere it only says so.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "holdfile: a Windows program, run by scripts/wine-tests under Wine")
	os.Exit(2)
}

//go:build !unix

package main

import "os"

// dumpSignals: none on this platform; the counts are served over HTTP.
var dumpSignals []os.Signal

//go:build !windows

package faultproxy_test

import "syscall"

var errConnReset error = syscall.ECONNRESET

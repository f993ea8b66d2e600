package faultproxy_test

import "golang.org/x/sys/windows"

var errConnReset error = windows.WSAECONNRESET

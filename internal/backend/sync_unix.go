//go:build !windows

package backend

func syncDirErr(err error) error { return err }

//go:build !windows

package service

import "errors"

func installWindows(Config) (*Installed, error) {
	return nil, errors.New("a Windows service can only be installed on Windows")
}

func uninstallWindows() ([]string, error) {
	return nil, errors.New("a Windows service can only be removed on Windows")
}

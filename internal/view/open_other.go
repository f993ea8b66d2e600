//go:build !linux && !windows

package view

import "os"

func openFile(p string) (File, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	return &osFile{f}, nil
}

package pathmap

import "path/filepath"

// Native is the rules of the platform the program runs on.
var Native = Windows

// Abs returns the canonical absolute OS path of p (Clean), resolving a
// relative path against the current directory.
func Abs(p string) (string, error) {
	if !Windows.IsAbs(p) {
		a, err := filepath.Abs(p)
		if err != nil {
			return "", err
		}
		p = a
	}
	return Windows.Clean(p)
}

//go:build !linux

package snapshot

// Flush does nothing here: no provider of this platform needs it yet.
func (p *Plan) Flush() error { return nil }

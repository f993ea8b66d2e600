package snapshot

import (
	"context"
	"runtime"

	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// None is the provider of last resort: it reads the live filesystem.
type None struct{}

// Name implements Provider.
func (None) Name() string { return "none" }

// Detect implements Provider: it always fits, at consistency Live.
func (None) Detect(path string) (Fit, error) {
	return Fit{Provider: "none", OK: true, Consistency: Live, Reason: "reads the live files"}, nil
}

// Create implements Provider.
func (None) Create(_ context.Context, sources []string, _ Label) (Snapshot, error) {
	return &liveSnapshot{sources: append([]string(nil), sources...)}, nil
}

type liveSnapshot struct{ sources []string }

func (s *liveSnapshot) Provider() string         { return "none" }
func (s *liveSnapshot) Consistency() Consistency { return Live }
func (s *liveSnapshot) Sources() []string        { return s.sources }
func (s *liveSnapshot) View() view.View          { return &view.Live{} }
func (s *liveSnapshot) Notes() []string          { return nil }
func (s *liveSnapshot) Release() error           { return nil }

// noProviderYet is the reason other platforms give until they have one.
func noProviderYet() string {
	return "no snapshot provider for " + runtime.GOOS + " yet; reading live"
}

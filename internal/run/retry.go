package run

import (
	"fmt"
	"strings"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/retryq"
)

// RetrySentence says in words what a run did to its job's retry queue:
// "unable to back up 3 files (next attempt within 15 minutes)" for the
// files it queued, and after a follow-up "2 files backed up on retry" for
// those it stored. "" when there is nothing to say.
func RetrySentence(ch retryq.Change, now time.Time, followUp bool) string {
	var parts []string
	if followUp && len(ch.Resolved) > 0 {
		parts = append(parts, fmt.Sprintf("%s backed up on retry", files(int64(len(ch.Resolved)))))
	}
	if len(ch.Queued) > 0 {
		next := ch.Queued[0].Next
		for _, e := range ch.Queued {
			if e.Next.Before(next) {
				next = e.Next
			}
		}
		parts = append(parts, fmt.Sprintf("unable to back up %s (next attempt within %s)", files(int64(len(ch.Queued))), within(next.Sub(now))))
	}
	return strings.Join(parts, "; ")
}

// within words a wait, rounded up: "1 minute", "15 minutes", "2 hours".
func within(d time.Duration) string {
	minutes := int64((d + time.Minute - 1) / time.Minute)
	switch {
	case minutes <= 1:
		return "1 minute"
	case minutes < 90:
		return fmt.Sprintf("%d minutes", minutes)
	}
	hours := (minutes + 59) / 60
	return fmt.Sprintf("%d hours", hours)
}

package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/stillpoint-backup/stillpoint/internal/backend/metered"
	"github.com/stillpoint-backup/stillpoint/internal/report"
)

// envRequestStats names a file to which every command appends one JSON
// line with the requests it made to the repository's store (README, S3):
// for benchmarks and tests of commands whose output has no room for them.
const envRequestStats = "STILLPOINT_REQUEST_STATS"

func writeRequestStats(cmd *cobra.Command, g *globals) {
	path := os.Getenv(envRequestStats)
	if path == "" || g.access.Meter == nil {
		return
	}
	line, _ := json.Marshal(map[string]any{"command": cmd.CommandPath(), "requests": g.access.Meter.Counts()})
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err == nil {
		_, err = f.Write(append(line, '\n'))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "stillpoint: $%s: %v\n", envRequestStats, err)
	}
}

// requestsSentence is the summary's line about the store's requests.
func requestsSentence(c metered.Counts) string {
	s := fmt.Sprintf("%d requests (", c.Total)
	for i, op := range metered.Ops {
		if i > 0 {
			s += ", "
		}
		s += fmt.Sprintf("%d %s", c.Requests[op], op)
	}
	return s + fmt.Sprintf("), %s sent, %s received", report.Bytes(c.BytesSent), report.Bytes(c.BytesReceived))
}

package repo

import (
	"encoding/json"
	"fmt"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// formatVersion is the repository format this code reads and writes.
const formatVersion = 1

// Config is the repository's plaintext description, stored in /config.
// It holds no secret.
type Config struct {
	Version     int           `json:"version"`
	ID          string        `json:"id"`
	Chunker     ChunkerParams `json:"chunker"`
	Compression string        `json:"compression"` // off, fastest, default, better
	PackSize    int           `json:"pack_size"`
	// Immutable, when set, has every file but locks, marks and drill
	// results written with a retention date (S3 object lock; docs/format.md,
	// Immutable repositories). Absent in other repositories.
	Immutable *Immutability `json:"immutable,omitempty"`
}

// Immutability is the retention of an immutable repository: Days after a
// file is written (and after prune extends it), in Mode.
type Immutability struct {
	Days int                   `json:"days"`
	Mode backend.RetentionMode `json:"mode"`
}

// ChunkerParams are the content-defined chunker's sizes.
type ChunkerParams struct {
	Algorithm string `json:"algorithm"`
	Min       int    `json:"min"`
	Avg       int    `json:"avg"`
	Max       int    `json:"max"`
}

// Defaults chosen by measurement (docs/benchmarks.md): ~1 MiB average
// chunks keep the index small and dedup good for changed files; packs of
// 8 MiB keep file counts low without making a retry expensive.
var DefaultConfig = Config{
	Version:     formatVersion,
	Chunker:     ChunkerParams{Algorithm: "jc-v1.0.0", Min: 256 << 10, Avg: 1 << 20, Max: 4 << 20},
	Compression: "fastest",
	PackSize:    8 << 20,
}

func parseConfig(data []byte) (*Config, error) {
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("repository config is damaged: %w", err)
	}
	if c.Version != formatVersion {
		return nil, fmt.Errorf("repository format version %d is not supported by this stillpoint (it reads version %d)", c.Version, formatVersion)
	}
	if c.ID == "" || c.Chunker.Min <= 0 || c.Chunker.Avg <= c.Chunker.Min || c.Chunker.Max <= c.Chunker.Avg || c.PackSize <= 0 {
		return nil, fmt.Errorf("repository config is damaged: invalid values")
	}
	if _, err := compressionLevel(c.Compression); err != nil {
		return nil, err
	}
	if i := c.Immutable; i != nil {
		if _, err := backend.ParseRetentionMode(string(i.Mode)); err != nil || i.Days < 1 || i.Days > MaxImmutableDays {
			return nil, fmt.Errorf("repository config is damaged: immutable: %d days, mode %q", i.Days, i.Mode)
		}
	}
	return &c, nil
}

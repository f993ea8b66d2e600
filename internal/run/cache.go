package run

import (
	"os"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/cache"
	"github.com/stillpoint-backup/stillpoint/internal/backend/metered"
)

// EnvNoCache turns the local cache of remote repositories off, as
// --no-cache does.
const EnvNoCache = "STILLPOINT_NO_CACHE"

// s3ListPage is the number of keys an S3 listing returns per request.
const s3ListPage = 1000

// cacheDirFlag is --cache-dir.
var cacheDirFlag string

// SetCacheDir makes dir the cache directory of this process (--cache-dir),
// in place of $STILLPOINT_CACHE_DIR and the default.
func SetCacheDir(dir string) { cacheDirFlag = dir }

// NewMeter is a meter for Access.Meter.
func NewMeter() *metered.Meter { return metered.NewMeter(s3ListPage) }

// metered counts b's requests into the Access's meter, if any.
func (a Access) metered(b backend.Backend) backend.Backend {
	if a.Meter == nil {
		return b
	}
	return metered.New(b, a.Meter)
}

// cacheOff tells whether the cache is turned off.
func (a Access) cacheOff() bool {
	if a.NoCache {
		return true
	}
	v, set := os.LookupEnv(EnvNoCache)
	if !set {
		return false
	}
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "0", "false", "no", "off":
		return false
	}
	return true
}

// withCache puts the local cache (docs/format.md, Cache) over a remote
// repository's backend. A local repository has none: its files are on a
// disk already, and a copy would only be read from another one.
func (a Access) withCache(b backend.Backend) (backend.Backend, error) {
	if a.cacheOff() {
		return b, nil
	}
	return cache.New(b, cache.Options{Dir: CacheDir()})
}

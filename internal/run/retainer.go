package run

import (
	"github.com/stillpoint-backup/stillpoint/internal/backend"
)

// An S3 repository's object lock calls (backend.Retainer) go through the
// same layers as its other requests: the cache (which passes them on), the
// policy's retries, limits and deadlines, and the meter. The retention of
// Saves is set on the store itself, so every write carries it.

var _ backend.RetainerWrapper = remoteRepo{}

// Retainer implements backend.RetainerWrapper.
func (r remoteRepo) Retainer() (backend.Retainer, bool) { return backend.AsRetainer(r.Backend) }

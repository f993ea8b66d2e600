package backend_test

import (
	"testing"
	"time"

	"github.com/stillpoint-backup/stillpoint/internal/backend"
	"github.com/stillpoint-backup/stillpoint/internal/backend/backendtest"
)

func TestConformanceLocal(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend { return backend.NewLocal(t.TempDir() + "/repo") })
}

func TestConformanceMem(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend { return backend.NewMem() })
}

// The wrappers must be invisible when nothing fails.
func TestConformanceFaultyWithoutFaults(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		f := backend.NewFaulty(backend.NewLocal(t.TempDir()+"/repo"), 1)
		f.Add(backend.Fault{Ops: backend.OpAll, Delay: 50 * time.Microsecond}) // slow, never failing
		return f
	})
}

func TestConformanceRetry(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backend.Backend {
		r := backend.NewRetry(backend.NewFaulty(backend.NewLocal(t.TempDir()+"/repo"), 1))
		r.Backoff = time.Millisecond // loads beyond the end are retried too
		return r
	})
}

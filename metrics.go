package wrenn

import (
	"context"
	"time"
)

// A running sandbox's use of its host, sampled by its host agent every
// MetricsInterval and kept at three resolutions, each for a window:
//
//	every sample (500 ms)   the last 10 minutes
//	30 s averages           the last 2 hours
//	5 min averages          the last 24 hours
//
// A paused sandbox keeps what was sampled while it ran; a resumed one adds
// to it.

// MetricsInterval is how often a host agent samples each running sandbox.
const MetricsInterval = 500 * time.Millisecond

// MetricPoint is one sample of a sandbox, or the average of the samples
// of one step of a coarser resolution (Time is then the step's start).
type MetricPoint struct {
	Time time.Time
	// CPUPct is the CPU time its VMM took, as a percentage of its vCPUs'
	// time together: 100 is every vCPU busy.
	CPUPct float64
	// MemBytes is the resident memory of its VMM process.
	MemBytes int64
	// DiskBytes is what its copy-on-write root disk takes on the host's
	// disk (allocated blocks, not the disk's length).
	DiskBytes int64
}

// MetricsRanges are the windows a sandbox's metrics may be asked for, by
// their names in the API.
var MetricsRanges = map[string]time.Duration{
	"5m": 5 * time.Minute, "10m": 10 * time.Minute,
	"1h": time.Hour, "2h": 2 * time.Hour,
	"6h": 6 * time.Hour, "12h": 12 * time.Hour, "24h": 24 * time.Hour,
}

// DefaultMetricsRange is the window of a request that names none.
const DefaultMetricsRange = "10m"

// Metrics reports what running and paused sandboxes use of their host. It
// is an optional capability of an Agent, found by type assertion.
type Metrics interface {
	// SandboxMetrics returns sandbox id's points of the last window,
	// oldest first, at the finest resolution that keeps that window: every
	// sample up to 10 minutes, 30 s averages up to 2 hours, 5 min averages
	// beyond. A sandbox the agent does not hold is ENotFound.
	SandboxMetrics(ctx context.Context, id string, window time.Duration) ([]MetricPoint, error)
}

package client

import (
	"context"
	"net/http"
	"net/url"
	"time"
)

// SandboxMetrics is one sandbox's samples over a range.
type SandboxMetrics struct {
	SandboxID string        `json:"sandbox_id"`
	Range     string        `json:"range"`
	Points    []MetricPoint `json:"points"`
}

// MetricPoint is one sample, or one step's average, of a sandbox's VMM.
type MetricPoint struct {
	TimestampUnix int64   `json:"timestamp_unix"`
	CPUPct        float64 `json:"cpu_pct"`    // of all its vCPUs together
	MemBytes      int64   `json:"mem_bytes"`  // resident memory
	DiskBytes     int64   `json:"disk_bytes"` // allocated by its root disk
}

// Time is the point's timestamp.
func (p MetricPoint) Time() time.Time { return time.Unix(p.TimestampUnix, 0) }

// SandboxMetrics returns a running or paused sandbox's CPU, memory and
// disk samples over rng: "5m", "10m" (the default, for ""), "1h", "2h",
// "6h", "12h" or "24h".
func (c *Client) SandboxMetrics(ctx context.Context, id, rng string) (*SandboxMetrics, error) {
	var m SandboxMetrics
	if err := c.do(ctx, http.MethodGet, c.url(sandboxPath(id, "/metrics"), optional("range", rng)), nil, &m); err != nil {
		return nil, err
	}
	return &m, nil
}

// SandboxStats is the team's running sandboxes now, their peaks over 30
// days and a series over a range.
type SandboxStats struct {
	Range   string `json:"range"`
	Current struct {
		RunningCount     int        `json:"running_count"`
		VCPUsReserved    int        `json:"vcpus_reserved"`
		MemoryMBReserved int        `json:"memory_mb_reserved"`
		SampledAt        *time.Time `json:"sampled_at"`
	} `json:"current"`
	Peaks struct {
		RunningCount int `json:"running_count"`
		VCPUs        int `json:"vcpus"`
		MemoryMB     int `json:"memory_mb"`
	} `json:"peaks"`
	// Series holds parallel arrays, one entry per step, oldest first.
	Series struct {
		Labels   []time.Time `json:"labels"`
		Running  []int       `json:"running"`
		VCPUs    []int       `json:"vcpus"`
		MemoryMB []int       `json:"memory_mb"`
	} `json:"series"`
}

// SandboxStats returns the team's stats over rng: "5m", "1h" (the
// default, for ""), "6h", "24h" or "30d".
func (c *Client) SandboxStats(ctx context.Context, rng string) (*SandboxStats, error) {
	var s SandboxStats
	if err := c.do(ctx, http.MethodGet, c.url("/v1/sandboxes/stats", optional("range", rng)), nil, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// Usage is the team's reserved CPU and memory per UTC day.
type Usage struct {
	From   string       `json:"from"` // YYYY-MM-DD
	To     string       `json:"to"`
	Points []UsagePoint `json:"points"`
}

// UsagePoint is one day of Usage.
type UsagePoint struct {
	Date         string  `json:"date"`           // YYYY-MM-DD
	CPUMinutes   float64 `json:"cpu_minutes"`    // vCPU-minutes
	RAMMBMinutes float64 `json:"ram_mb_minutes"` // MiB-minutes
}

// SandboxUsage returns the team's daily usage from from to to, both
// YYYY-MM-DD and included; "" leaves either to the server (to today, from
// 30 days before to).
func (c *Client) SandboxUsage(ctx context.Context, from, to string) (*Usage, error) {
	q := optional("from", from)
	if to != "" {
		q.Set("to", to)
	}
	var u Usage
	if err := c.do(ctx, http.MethodGet, c.url("/v1/sandboxes/usage", q), nil, &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// optional is a query of one parameter, or none if v is empty.
func optional(name, v string) url.Values {
	q := url.Values{}
	if v != "" {
		q.Set(name, v)
	}
	return q
}

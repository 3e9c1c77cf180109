package httpapi

import (
	"math"
	"net/http"

	"github.com/wrennhq/wrenn"
)

// The metrics endpoints (issue 11): one sandbox's samples, and its team's
// stats and usage.

// metricPoint is the contract's MetricPoint.
type metricPoint struct {
	TimestampUnix int64   `json:"timestamp_unix"`
	CPUPct        float64 `json:"cpu_pct"`
	MemBytes      int64   `json:"mem_bytes"`
	DiskBytes     int64   `json:"disk_bytes"`
}

type sandboxMetricsResponse struct {
	SandboxID string        `json:"sandbox_id"`
	Range     string        `json:"range"`
	Points    []metricPoint `json:"points"`
}

func (s *Server) sandboxMetrics(w http.ResponseWriter, r *http.Request) {
	rng := r.URL.Query().Get("range")
	id := r.PathValue("id")
	pts, err := s.control.SandboxMetrics(r.Context(), caller(r).TeamID, id, rng)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if rng == "" {
		rng = wrenn.DefaultMetricsRange
	}
	out := sandboxMetricsResponse{SandboxID: id, Range: rng, Points: make([]metricPoint, len(pts))}
	for i, p := range pts {
		out.Points[i] = metricPoint{TimestampUnix: p.Time.Unix(), CPUPct: math.Round(p.CPUPct*100) / 100,
			MemBytes: p.MemBytes, DiskBytes: p.DiskBytes}
	}
	writeJSON(w, http.StatusOK, out)
}

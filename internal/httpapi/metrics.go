package httpapi

import (
	"math"
	"net/http"
	"time"

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

// sandboxStats is the contract's SandboxStats.
type sandboxStats struct {
	Range   string `json:"range"`
	Current struct {
		RunningCount     int       `json:"running_count"`
		VCPUsReserved    int       `json:"vcpus_reserved"`
		MemoryMBReserved int       `json:"memory_mb_reserved"`
		SampledAt        time.Time `json:"sampled_at"`
	} `json:"current"`
	Peaks struct {
		RunningCount int `json:"running_count"`
		VCPUs        int `json:"vcpus"`
		MemoryMB     int `json:"memory_mb"`
	} `json:"peaks"`
	Series struct {
		Labels   []time.Time `json:"labels"`
		Running  []int       `json:"running"`
		VCPUs    []int       `json:"vcpus"`
		MemoryMB []int       `json:"memory_mb"`
	} `json:"series"`
}

func (s *Server) sandboxStats(w http.ResponseWriter, r *http.Request) {
	st, err := s.control.TeamStats(r.Context(), caller(r).TeamID, r.URL.Query().Get("range"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var out sandboxStats
	out.Range = st.Range
	c := &out.Current
	c.RunningCount, c.VCPUsReserved, c.MemoryMBReserved, c.SampledAt = st.Current.Running, st.Current.VCPUs, st.Current.MemoryMB, st.Current.At
	out.Peaks.RunningCount, out.Peaks.VCPUs, out.Peaks.MemoryMB = st.Peaks.Running, st.Peaks.VCPUs, st.Peaks.MemoryMB
	n := len(st.Series)
	se := &out.Series
	se.Labels, se.Running, se.VCPUs, se.MemoryMB = make([]time.Time, n), make([]int, n), make([]int, n), make([]int, n)
	for i, p := range st.Series {
		se.Labels[i], se.Running[i], se.VCPUs[i], se.MemoryMB[i] = p.At, p.Running, p.VCPUs, p.MemoryMB
	}
	writeJSON(w, http.StatusOK, out)
}

// usageResponse is the contract's UsageResponse.
type usageResponse struct {
	From   string       `json:"from"`
	To     string       `json:"to"`
	Points []usagePoint `json:"points"`
}

type usagePoint struct {
	Date         string  `json:"date"`
	CPUMinutes   float64 `json:"cpu_minutes"`
	RAMMBMinutes float64 `json:"ram_mb_minutes"`
}

func (s *Server) sandboxUsage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	u, err := s.control.TeamUsage(r.Context(), caller(r).TeamID, q.Get("from"), q.Get("to"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := usageResponse{From: u.From, To: u.To, Points: make([]usagePoint, len(u.Days))}
	for i, d := range u.Days {
		out.Points[i] = usagePoint{Date: d.Day, CPUMinutes: math.Round(d.CPUMinutes*1000) / 1000,
			RAMMBMinutes: math.Round(d.RAMMBMinutes*1000) / 1000}
	}
	writeJSON(w, http.StatusOK, out)
}

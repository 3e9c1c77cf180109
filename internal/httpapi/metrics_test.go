package httpapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

type metricsResp struct {
	SandboxID string `json:"sandbox_id"`
	Range     string `json:"range"`
	Points    []struct {
		TimestampUnix int64   `json:"timestamp_unix"`
		CPUPct        float64 `json:"cpu_pct"`
		MemBytes      int64   `json:"mem_bytes"`
		DiskBytes     int64   `json:"disk_bytes"`
	} `json:"points"`
}

// TestSandboxMetrics: the range picks the window the agent is asked for;
// a paused sandbox still has metrics; a bad range is 400; another team's,
// a destroyed or unknown sandbox is 404.
func TestSandboxMetrics(t *testing.T) {
	agent := fakeHost()
	var asked time.Duration
	at := time.Unix(1_800_000_000, 500_000_000)
	agent.SandboxMetricsFn = func(_ context.Context, id string, window time.Duration) ([]wrenn.MetricPoint, error) {
		asked = window
		return []wrenn.MetricPoint{{Time: at, CPUPct: 12.3456, MemBytes: 1 << 20, DiskBytes: 4096}}, nil
	}
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: agent})
	key := apiKey(e.newKey(e.signup("m@example.com").Token))
	other := apiKey(e.newKey(e.signup("o@example.com").Token))
	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", key, map[string]any{}, &sb)
	path := "/v1/sandboxes/" + sb.ID + "/metrics"

	var m metricsResp
	e.must(200, "GET", path, key, nil, &m)
	if m.SandboxID != sb.ID || m.Range != "10m" || asked != 10*time.Minute || len(m.Points) != 1 {
		t.Fatalf("default range: %+v, agent asked for %s", m, asked)
	}
	if p := m.Points[0]; p.TimestampUnix != at.Unix() || p.CPUPct != 12.35 || p.MemBytes != 1<<20 || p.DiskBytes != 4096 {
		t.Fatalf("point = %+v", p)
	}
	for rng, want := range wrenn.MetricsRanges {
		e.must(200, "GET", path+"?range="+rng, key, nil, &m)
		if m.Range != rng || asked != want {
			t.Fatalf("range %s: answered %q, agent asked for %s", rng, m.Range, asked)
		}
	}
	e.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", key, nil, nil)
	e.must(200, "GET", path+"?range=1h", key, nil, &m)

	for _, tc := range []struct {
		name, path string
		h          hdr
		status     int
	}{
		{"bad range", path + "?range=3h", key, 400},
		{"empty range", path + "?range=", key, 200},
		{"another team's", path, other, 404},
		{"unknown", "/v1/sandboxes/sb-aaaaaaaaaaaaaaaa/metrics", key, 404},
		{"no key", path, nil, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, body := e.do("GET", tc.path, tc.h, nil); got != tc.status {
				t.Fatalf("status %d, want %d: %s", got, tc.status, body)
			}
		})
	}
	if got, _ := e.do("POST", path, key, nil); got != 405 {
		t.Fatalf("POST metrics: %d, want 405", got)
	}
	e.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	if got, _ := e.do("GET", path, key, nil); got != 404 {
		t.Fatalf("metrics of a destroyed sandbox: %d, want 404", got)
	}
}

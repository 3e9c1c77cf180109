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

type statsResp struct {
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

type usageResp struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Points []struct {
		Date         string  `json:"date"`
		CPUMinutes   float64 `json:"cpu_minutes"`
		RAMMBMinutes float64 `json:"ram_mb_minutes"`
	} `json:"points"`
}

// TestTeamStatsAndUsage: stats count what runs now and what was recorded,
// per step of each range; usage has a point per day; bad ranges and dates
// are 400; /v1/sandboxes/stats and /usage are not taken for sandbox IDs.
func TestTeamStatsAndUsage(t *testing.T) {
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: fakeHost()})
	key := apiKey(e.newKey(e.signup("s@example.com").Token))
	other := apiKey(e.newKey(e.signup("s-other@example.com").Token))
	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", key, map[string]any{"vcpus": 2, "memory_mb": 1024}, &sb)
	now := time.Now().UTC()
	if _, err := e.db.RecordTeamSamples(context.Background(), now.Truncate(time.Minute), time.Minute); err != nil {
		t.Fatal(err)
	}

	var st statsResp
	e.must(200, "GET", "/v1/sandboxes/stats", key, nil, &st)
	if st.Range != "1h" || st.Current.RunningCount != 1 || st.Current.VCPUsReserved != 2 || st.Current.MemoryMBReserved != 1024 ||
		st.Current.SampledAt.Before(now.Add(-time.Minute)) {
		t.Fatalf("stats: %+v", st)
	}
	if st.Peaks.RunningCount != 1 || st.Peaks.VCPUs != 2 || st.Peaks.MemoryMB != 1024 {
		t.Fatalf("peaks: %+v", st.Peaks)
	}
	for rng, n := range map[string]int{"5m": 5, "1h": 60, "6h": 72, "24h": 96, "30d": 120} {
		e.must(200, "GET", "/v1/sandboxes/stats?range="+rng, key, nil, &st)
		se := st.Series
		if st.Range != rng || len(se.Labels) != n || len(se.Running) != n || len(se.VCPUs) != n || len(se.MemoryMB) != n {
			t.Fatalf("range %s: %d labels, want %d", rng, len(se.Labels), n)
		}
		// The sample is in the last step, or the one before if a step
		// began since.
		if max(se.Running[n-1], se.Running[n-2]) != 1 || max(se.VCPUs[n-1], se.VCPUs[n-2]) != 2 ||
			max(se.MemoryMB[n-1], se.MemoryMB[n-2]) != 1024 || se.Running[0] != 0 {
			t.Fatalf("range %s: series %+v", rng, se)
		}
	}
	e.must(200, "GET", "/v1/sandboxes/stats", other, nil, &st)
	if st.Current.RunningCount != 0 || st.Peaks.RunningCount != 0 || st.Series.Running[len(st.Series.Running)-1] != 0 {
		t.Fatalf("another team's stats: %+v", st)
	}

	var u usageResp
	e.must(200, "GET", "/v1/sandboxes/usage", key, nil, &u)
	today := now.Format(time.DateOnly)
	if len(u.Points) != 31 || u.To != today || u.From != now.AddDate(0, 0, -30).Format(time.DateOnly) {
		t.Fatalf("usage: from %s to %s, %d points", u.From, u.To, len(u.Points))
	}
	if p := u.Points[30]; p.Date != today || p.CPUMinutes != 2 || p.RAMMBMinutes != 1024 || u.Points[0].CPUMinutes != 0 {
		t.Fatalf("usage of today: %+v", p)
	}
	e.must(200, "GET", "/v1/sandboxes/usage?from=2026-01-30&to=2026-03-01", key, nil, &u)
	if len(u.Points) != 31 || u.Points[0].Date != "2026-01-30" || u.Points[30].Date != "2026-03-01" {
		t.Fatalf("usage over February: %+v", u)
	}

	for _, tc := range []struct {
		name, method, path string
		status             int
	}{
		{"bad stats range", "GET", "/v1/sandboxes/stats?range=2h", 400},
		{"bad date", "GET", "/v1/sandboxes/usage?from=2026-13-01", 400},
		{"not a date", "GET", "/v1/sandboxes/usage?to=yesterday", 400},
		{"from after to", "GET", "/v1/sandboxes/usage?from=2026-02-02&to=2026-02-01", 400},
		{"too long", "GET", "/v1/sandboxes/usage?from=2024-01-01&to=2026-01-01", 400},
		{"stats is not a sandbox", "DELETE", "/v1/sandboxes/stats", 405},
		{"usage is not a sandbox", "POST", "/v1/sandboxes/usage", 405},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, body := e.do(tc.method, tc.path, key, nil); got != tc.status {
				t.Fatalf("status %d, want %d: %s", got, tc.status, body)
			}
		})
	}
	// The sandbox is still there.
	e.must(200, "GET", "/v1/sandboxes/"+sb.ID, key, nil, nil)
}

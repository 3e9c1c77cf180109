package e2e

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

type metricPoint struct {
	TimestampUnix int64   `json:"timestamp_unix"`
	CPUPct        float64 `json:"cpu_pct"`
	MemBytes      int64   `json:"mem_bytes"`
	DiskBytes     int64   `json:"disk_bytes"`
}

type sandboxMetrics struct {
	SandboxID string        `json:"sandbox_id"`
	Range     string        `json:"range"`
	Points    []metricPoint `json:"points"`
}

// TestMetrics drives issue 11's metrics through the public API against a
// real VM: the CPU share rises while the guest burns CPU, memory and
// disk are plausible, a paused sandbox's metrics stay readable and stop
// growing, also across a restart of the server and its agent, and a
// resumed one keeps its old points and adds new ones; bad
// ranges are 400, another team's and a destroyed sandbox's 404. The
// team's stats and usage (recorded every second here) count the sandbox
// while it runs and not while it is paused.
func TestMetrics(t *testing.T) {
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir, "WRENN_STATS_STEP=1s")
	key := s.account("metrics@example.com")
	other := s.account("metrics-other@example.com")
	sb := s.create(key, map[string]any{"template": "minimal", "vcpus": 1, "memory_mb": 512, "timeout_sec": 600})
	path := "/v1/sandboxes/" + sb.ID + "/metrics"
	get := func(rng string) sandboxMetrics {
		t.Helper()
		var m sandboxMetrics
		q := ""
		if rng != "" {
			q = "?range=" + rng
		}
		s.must(200, "GET", path+q, key, nil, &m)
		if m.SandboxID != sb.ID {
			t.Fatalf("metrics of %q, want %q", m.SandboxID, sb.ID)
		}
		return m
	}

	// Idle: a few samples, 500 ms apart.
	time.Sleep(3 * time.Second)
	idle := get("")
	if idle.Range != "10m" || len(idle.Points) < 3 {
		t.Fatalf("after 3 s: range %q, %d points; want 10m and at least 3", idle.Range, len(idle.Points))
	}
	for _, p := range idle.Points {
		// A restored 512 MiB guest touches tens of MiB; its overlay disk
		// starts near empty and may not pass its 512 MiB root disk much.
		if p.MemBytes < 8<<20 || p.MemBytes > 1<<30 || p.DiskBytes <= 0 || p.DiskBytes > 1<<30 || p.CPUPct < 0 || p.CPUPct > 100 {
			t.Fatalf("implausible point %+v", p)
		}
	}
	idleCPU := maxCPU(idle.Points, 0)

	// Burn: one vCPU busy for 6 s.
	burnStart := time.Now().Unix()
	if r := s.exec(key, sb.ID, "timeout 6 sh -c 'while :; do :; done'; true"); r.ExitCode != 0 {
		t.Fatalf("burn: %+v", r)
	}
	burned := get("5m")
	busy := maxCPU(burned.Points, burnStart+1)
	t.Logf("cpu_pct: idle at most %.1f, at most %.1f while burning", idleCPU, busy)
	if busy < 50 || busy < idleCPU+20 {
		t.Fatalf("cpu_pct while burning reached %.1f (idle %.1f); want >= 50 and well above idle", busy, idleCPU)
	}
	for _, rng := range []string{"1h", "2h", "6h", "12h", "24h"} {
		if m := get(rng); m.Range != rng || len(m.Points) == 0 {
			t.Fatalf("range %s: %q, %d points", rng, m.Range, len(m.Points))
		}
	}

	checkStats(t, s, key, 1)
	checkStats(t, s, other, 0)
	var u usage
	s.must(200, "GET", "/v1/sandboxes/usage", key, nil, &u)
	today := u.Points[len(u.Points)-1]
	if len(u.Points) != 31 || today.Date != time.Now().UTC().Format(time.DateOnly) || today.CPUMinutes <= 0 ||
		today.RAMMBMinutes < 500*today.CPUMinutes || today.RAMMBMinutes > 520*today.CPUMinutes {
		t.Fatalf("usage: %d points, today %+v", len(u.Points), today)
	}

	// Paused: readable, and nothing new.
	s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", key, nil, nil)
	paused := get("10m")
	time.Sleep(1500 * time.Millisecond)
	later := get("10m")
	if len(paused.Points) < len(burned.Points) || len(later.Points) != len(paused.Points) ||
		last(later.Points) != last(paused.Points) {
		t.Fatalf("paused: %d points, then %d (last %+v, then %+v); had %d while running",
			len(paused.Points), len(later.Points), last(paused.Points), last(later.Points), len(burned.Points))
	}

	// A new server and agent serve what the pause wrote.
	s.stop()
	s = startVMServer(t, dataDir, "WRENN_STATS_STEP=1s")
	if restarted := get("10m"); !slices.Equal(restarted.Points, paused.Points) {
		t.Fatalf("after a restart: %d points (last %s), want the paused %d (last %s)",
			len(restarted.Points), last(restarted.Points), len(paused.Points), last(paused.Points))
	}
	var st stats
	s.must(200, "GET", "/v1/sandboxes/stats", key, nil, &st)
	if st.Current.RunningCount != 0 || st.Peaks.RunningCount != 1 {
		t.Fatalf("stats while paused: %+v", st)
	}

	// Resumed: the old points stay, new ones come.
	s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/resume", key, nil, nil)
	resumedAt := time.Now().Unix()
	time.Sleep(3 * time.Second)
	resumed := get("10m")
	if resumed.Points[0] != paused.Points[0] {
		t.Fatalf("after resume the first point is %+v, was %+v", resumed.Points[0], paused.Points[0])
	}
	if n := len(resumed.Points); n < len(paused.Points)+3 || resumed.Points[n-1].TimestampUnix < resumedAt {
		t.Fatalf("after resume: %d points (had %d), last %+v", n, len(paused.Points), resumed.Points[n-1])
	}

	for _, tc := range []struct {
		name, path string
		h          hdr
		status     int
		code       string
	}{
		{"bad range", path + "?range=3h", key, 400, "invalid_request"},
		{"another team", path, other, 404, "not_found"},
		{"unknown sandbox", "/v1/sandboxes/sb-aaaaaaaaaaaaaaaa/metrics", key, 404, "not_found"},
	} {
		if got, body := s.do("GET", tc.path, tc.h, nil); got != tc.status || errorCode(t, body) != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, got, body, tc.status, tc.code)
		}
	}
	s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	if got, body := s.do("GET", path, key, nil); got != 404 {
		t.Errorf("metrics of a destroyed sandbox: %d %s, want 404", got, body)
	}
}

// maxCPU is the largest cpu_pct of the points at or after unix second from.
func maxCPU(pts []metricPoint, from int64) float64 {
	var m float64
	for _, p := range pts {
		if p.TimestampUnix >= from {
			m = max(m, p.CPUPct)
		}
	}
	return m
}

func last(pts []metricPoint) string {
	if len(pts) == 0 {
		return "none"
	}
	return fmt.Sprintf("%+v", pts[len(pts)-1])
}

type stats struct {
	Range   string `json:"range"`
	Current struct {
		RunningCount     int `json:"running_count"`
		VCPUsReserved    int `json:"vcpus_reserved"`
		MemoryMBReserved int `json:"memory_mb_reserved"`
	} `json:"current"`
	Peaks struct {
		RunningCount int `json:"running_count"`
		VCPUs        int `json:"vcpus"`
		MemoryMB     int `json:"memory_mb"`
	} `json:"peaks"`
	Series struct {
		Labels  []time.Time `json:"labels"`
		Running []int       `json:"running"`
	} `json:"series"`
}

type usage struct {
	From   string `json:"from"`
	To     string `json:"to"`
	Points []struct {
		Date         string  `json:"date"`
		CPUMinutes   float64 `json:"cpu_minutes"`
		RAMMBMinutes float64 `json:"ram_mb_minutes"`
	} `json:"points"`
}

// checkStats checks that the team of key has n 1-vCPU, 512 MiB sandboxes
// running now, at its peak and in the last minutes of the 5m series.
func checkStats(t *testing.T, s *server, key hdr, n int) {
	t.Helper()
	var st stats
	s.must(200, "GET", "/v1/sandboxes/stats?range=5m", key, nil, &st)
	c, r := st.Current, st.Series.Running
	if st.Range != "5m" || c.RunningCount != n || c.VCPUsReserved != n || c.MemoryMBReserved != 512*n ||
		st.Peaks.RunningCount != n || st.Peaks.MemoryMB != 512*n || len(r) != 5 || len(st.Series.Labels) != 5 ||
		max(r[3], r[4]) != n {
		t.Fatalf("stats: %+v", st)
	}
}

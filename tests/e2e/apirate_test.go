package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/store"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// The API rate (issue 14): authenticated GET /v1/sandboxes/{id} of a real
// sandbox, sent by a load generator in a process of its own
// (tests/e2e/loadgen) to a `wrenn server` in another, on each store
// engine. In the same run, alternating with it, the same load against two
// floors:
//
//   - "nethttp": a bare net/http server (loadgen -serve, a process of
//     its own) answering a fixed body of the same size: what any Go HTTP
//     server costs here;
//   - "unauth": the same route on the same server with no credential, a
//     401 in the envelope: routing, middleware and JSON, without the key
//     lookup, the store read and the record's encoding.
//
//	flock /tmp/wrenn-vm.lock env WRENN_IMAGES_DIR=/var/tmp/wrenn-test-images WRENN_REQUIRE_VMS=1 \
//	  go test -count=1 -run '^$' -bench APIRate -benchtime 3x ./tests/e2e/
//
// Each b.N is one round of the three loads; the figures are medians over
// rounds. WRENN_APIRATE_DURATION (default 5s) and WRENN_APIRATE_CONNS
// (default 32) set each load's length and connections.

// apiLoad is what one load run measured.
type apiLoad struct {
	loadResult
	// ServerCPU is the server process's user+system time over the
	// load's measured window and its warm-up.
	ServerCPU time.Duration
	// Sent counts every request of the run, warm-up included, for the
	// server's CPU per request.
	Sent int64
}

// loadResult is what tests/e2e/loadgen prints (its Result).
type loadResult struct {
	Requests   int64   `json:"requests"`
	Seconds    float64 `json:"seconds"`
	PerSecond  float64 `json:"per_second"`
	P50Micros  float64 `json:"p50_us"`
	P99Micros  float64 `json:"p99_us"`
	Unexpected int64   `json:"unexpected"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"first_error"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

func BenchmarkAPIRate(b *testing.B) {
	for _, engine := range storetest.Engines(b) {
		b.Run(engine, func(b *testing.B) {
			var env []string
			if engine == store.EnginePostgres {
				env = append(env, "DATABASE_URL="+storetest.MustCreateDatabase(b))
			}
			// Production's log level: the tests' default, debug, writes
			// a line per request.
			env = append(env, "WRENN_LOG_LEVEL=info")
			s, key := benchServer(b, env...)
			sb := s.create(key, map[string]any{"template": "minimal"})
			defer s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil)
			path := "/v1/sandboxes/" + sb.ID
			code, body := s.do("GET", path, key, nil)
			if code != 200 || !strings.Contains(string(body), sb.ID) {
				b.Fatalf("GET %s = %d %s", path, code, body)
			}
			floorURL, floorPID := startFloorServer(b, len(body))

			loads := []struct {
				name, url string
				headers   []string
				want      int
			}{
				{"nethttp", floorURL + path, nil, 200},
				{"unauth", s.url + path, nil, 401},
				{"authed", s.url + path, []string{"X-API-Key: " + key["X-API-Key"]}, 200},
			}
			// The server's own background work (the agent's health
			// checks, the reconciler, the warm pool), which the loads'
			// CPU per request includes.
			const idleFor = 3 * time.Second
			idle0 := processCPU(b, s.cmd.Process.Pid)
			time.Sleep(idleFor)
			idle := 100 * float64(processCPU(b, s.cmd.Process.Pid)-idle0) / float64(idleFor)

			got := map[string][]apiLoad{}
			for b.Loop() {
				for _, l := range loads {
					pid := s.cmd.Process.Pid
					if l.name == "nethttp" {
						pid = floorPID
					}
					got[l.name] = append(got[l.name], runLoad(b, pid, l.url, l.headers, l.want))
				}
			}
			// Reported after the loop, whose start clears metrics.
			b.ReportMetric(idle, "idle-server-cpu-%")
			for _, l := range loads {
				reportLoad(b, l.name, got[l.name])
			}
			ratio := func(name string) float64 {
				return medianOf(got["authed"], func(r apiLoad) float64 { return r.PerSecond }) /
					medianOf(got[name], func(r apiLoad) float64 { return r.PerSecond })
			}
			b.ReportMetric(ratio("unauth"), "authed/unauth")
			b.ReportMetric(ratio("nethttp"), "authed/nethttp")
		})
	}
}

// apiRateSettings are the loads' length and connections.
func apiRateSettings(b *testing.B) (time.Duration, int) {
	d, conns := 5*time.Second, 32
	if v := os.Getenv("WRENN_APIRATE_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			b.Fatalf("WRENN_APIRATE_DURATION: %v", err)
		}
	}
	if v := os.Getenv("WRENN_APIRATE_CONNS"); v != "" {
		var err error
		if conns, err = strconv.Atoi(v); err != nil {
			b.Fatalf("WRENN_APIRATE_CONNS: %v", err)
		}
	}
	return d, conns
}

// runLoad runs the load generator against url and measures the CPU time
// the server process pid spends meanwhile.
func runLoad(b *testing.B, pid int, url string, headers []string, want int) apiLoad {
	b.Helper()
	d, conns := apiRateSettings(b)
	args := []string{"-url", url, "-c", strconv.Itoa(conns), "-d", d.String(), "-warmup", "1s", "-want", strconv.Itoa(want)}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	cmd := exec.Command(loadgenBin(b), args...)
	cmd.Stderr = os.Stderr
	before := processCPU(b, pid)
	out, err := cmd.Output()
	spent := processCPU(b, pid) - before
	if err != nil {
		b.Fatalf("loadgen %s: %v", url, err)
	}
	var r apiLoad
	if err := json.Unmarshal(out, &r.loadResult); err != nil {
		b.Fatalf("loadgen said %q: %v", out, err)
	}
	if r.Errors > 0 || r.Unexpected > 0 || r.Requests == 0 {
		b.Fatalf("loadgen %s: %d answered, %d errors, %d unexpected statuses; first: %s", url, r.Requests, r.Errors, r.Unexpected, r.FirstError)
	}
	r.ServerCPU = spent
	// The warm-up's requests cost the server too: count them at the
	// measured rate.
	r.Sent = r.Requests + int64(r.PerSecond)
	return r
}

func reportLoad(b *testing.B, name string, rs []apiLoad) {
	b.ReportMetric(medianOf(rs, func(r apiLoad) float64 { return r.PerSecond }), name+"-req/s")
	b.ReportMetric(medianOf(rs, func(r apiLoad) float64 { return r.P50Micros }), name+"-p50-µs")
	b.ReportMetric(medianOf(rs, func(r apiLoad) float64 { return r.P99Micros }), name+"-p99-µs")
	b.ReportMetric(medianOf(rs, func(r apiLoad) float64 {
		return float64(r.ServerCPU.Microseconds()) / float64(r.Sent)
	}), name+"-server-cpu-µs/req")
	b.ReportMetric(medianOf(rs, func(r apiLoad) float64 {
		return r.CPUSeconds * 1e6 / float64(r.Requests)
	}), name+"-loadgen-cpu-µs/req")
}

func medianOf[T any](xs []T, f func(T) float64) float64 {
	vs := make([]float64, len(xs))
	for i, x := range xs {
		vs[i] = f(x)
	}
	slices.Sort(vs)
	return vs[len(vs)/2]
}

// processCPU is process pid's user+system time so far (cpuTicksOf, in
// clock ticks of 10 ms).
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", pid)); err != nil {
		b.Fatal(err)
	}
	return time.Duration(cpuTicksOf(pid)) * 10 * time.Millisecond
}

var (
	loadgenOnce sync.Once
	loadgenPath string
	loadgenErr  error
)

// loadgenBin builds tests/e2e/loadgen once, beside the wrenn binary.
func loadgenBin(tb testing.TB) string {
	tb.Helper()
	loadgenOnce.Do(func() {
		loadgenPath = filepath.Join(filepath.Dir(wrennBin), "loadgen")
		out, err := exec.Command("go", "build", "-o", loadgenPath, "github.com/wrennhq/wrenn/tests/e2e/loadgen").CombinedOutput()
		if err != nil {
			loadgenErr = fmt.Errorf("build loadgen: %v\n%s", err, out)
		}
	})
	if loadgenErr != nil {
		tb.Fatal(loadgenErr)
	}
	return loadgenPath
}

// startFloorServer runs the load generator's bare net/http server with a
// body of size bytes and returns its URL and process ID.
func startFloorServer(b *testing.B, size int) (string, int) {
	b.Helper()
	cmd := exec.Command(loadgenBin(b), "-serve", "127.0.0.1:0", "-body", strconv.Itoa(size))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		b.Fatalf("floor server said %q: %v", line, err)
	}
	return "http://" + addr, cmd.Process.Pid
}

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The benchmarks run real VMs (under TCG on hosts without working KVM):
//
//	scripts/bench -bench . -benchtime 20x ./tests/e2e
//
// Each reports medians (p50) of its own samples besides Go's mean.

func benchServer(b *testing.B, env ...string) (*server, hdr) {
	b.Helper()
	dataDir := shortTempDir(b)
	images := requireVMs(b)
	b.Cleanup(func() { killVMs(b, dataDir) })
	env = append([]string{envImagesDir + "=" + images, "WRENN_SOURCE_DIR=" + repoRoot()}, env...)
	s := startServer(b, dataDir, env...)
	if !slices.Contains(env, "WRENN_WARM_POOL=0") {
		s.waitPoolReady(b, 1)
	}
	key := s.account(fmt.Sprintf("bench%d@example.com", time.Now().UnixNano()))
	// Time the server, not the contract checks the tests make.
	s.client = &http.Client{Timeout: 10 * time.Minute}
	return s, key
}

func reportQuantiles(b *testing.B, name string, samples []time.Duration) {
	if len(samples) == 0 {
		return
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	q := func(p float64) float64 {
		return float64(samples[int(p*float64(len(samples)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.5), name+"-p50-ms")
	b.ReportMetric(q(0.9), name+"-p90-ms")
}

// BenchmarkCreateToFirstExec: POST /v1/sandboxes at the default sizes,
// then the first exec answering; destroy is not timed.
//
// "pool": the create takes the sandbox the agent's warm pool has ready; the
// benchmark waits, untimed, for the pool to refill between creates.
// "restore": no warm pool (WRENN_WARM_POOL=0), so each create restores the
// base's warm snapshot in a new VM, as creates do that come faster than the
// pool refills.
func BenchmarkCreateToFirstExec(b *testing.B) {
	b.Run("pool", func(b *testing.B) {
		s, key := benchServer(b)
		made := 1
		benchCreateExec(b, s, key, map[string]any{}, func() {
			made++
			s.waitPoolReady(b, made)
		})
	})
	b.Run("restore", func(b *testing.B) {
		s, key := benchServer(b, "WRENN_WARM_POOL=0")
		benchCreateExec(b, s, key, map[string]any{}, nil)
	})
}

// benchCreateExec times creating a sandbox as body asks and its first
// exec answering; destroy and then (if not nil) between are not timed.
func benchCreateExec(b *testing.B, s *server, key hdr, body map[string]any, between func()) {
	var samples []time.Duration
	for b.Loop() {
		start := time.Now()
		sb := s.create(key, body)
		if r := s.exec(key, sb.ID, "true"); r.ExitCode != 0 {
			b.Fatalf("exec: %+v", r)
		}
		samples = append(samples, time.Since(start))
		b.StopTimer()
		s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
		if between != nil {
			between()
		}
		b.StartTimer()
	}
	reportQuantiles(b, "create-exec", samples)
}

// BenchmarkExecRoundTrip: POST /v1/sandboxes/{id}/exec of `true` in a
// running sandbox, through the API, the agent RPC and envd.
//
// "restored" runs in a sandbox restored from the base's warm snapshot (its
// memory a private mapping of the snapshot's), "booted" in one that booted
// (1 GiB: not kept warm).
func BenchmarkExecRoundTrip(b *testing.B) {
	s, key := benchServer(b)
	for _, c := range []struct {
		name string
		body map[string]any
	}{{"restored", map[string]any{}}, {"booted", map[string]any{"memory_mb": 1024}}} {
		b.Run(c.name, func(b *testing.B) {
			sb := s.create(key, c.body)
			defer s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil)
			s.exec(key, sb.ID, "true") // warm
			execRoundTrips(b, s, key, sb.ID)
		})
	}
}

// execRoundTrips times an exec of `true` in sandbox id per iteration,
// reports the quantiles and returns the median.
func execRoundTrips(b *testing.B, s *server, key hdr, id string) time.Duration {
	var samples []time.Duration
	for b.Loop() {
		start := time.Now()
		if r := s.exec(key, id, "true"); r.ExitCode != 0 {
			b.Fatalf("exec: %+v", r)
		}
		samples = append(samples, time.Since(start))
	}
	reportQuantiles(b, "exec", samples) // sorts samples
	return samples[len(samples)/2]
}

// BenchmarkFileReadRoundTrip: POST /v1/sandboxes/{id}/files/read of a
// small file. It runs no process in the guest, so it measures the path
// itself: API, agent RPC, envd and back.
func BenchmarkFileReadRoundTrip(b *testing.B) {
	s, key := benchServer(b)
	sb := s.create(key, map[string]any{})
	b.Cleanup(func() { s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil) })
	var samples []time.Duration
	for b.Loop() {
		start := time.Now()
		s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/files/read", key, map[string]string{"path": "/etc/hostname"}, nil)
		samples = append(samples, time.Since(start))
	}
	reportQuantiles(b, "read", samples)
}

// BenchmarkFilesList10k: POST /v1/sandboxes/{id}/files/list of a guest
// directory of 10,000 files (issue 11's target: 300 ms).
func BenchmarkFilesList10k(b *testing.B) {
	s, key := benchServer(b)
	sb := s.create(key, map[string]any{})
	b.Cleanup(func() { s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil) })
	if r := s.exec(key, sb.ID, "mkdir -p /root/many && cd /root/many && seq 10000 | xargs touch"); r.ExitCode != 0 {
		b.Fatalf("make the files: %+v", r)
	}
	var samples []time.Duration
	for b.Loop() {
		start := time.Now()
		var out struct{ Entries []json.RawMessage }
		s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/files/list", key, map[string]any{"path": "/root/many"}, &out)
		samples = append(samples, time.Since(start))
		if len(out.Entries) != 10000 {
			b.Fatalf("%d entries, want 10000", len(out.Entries))
		}
	}
	reportQuantiles(b, "list", samples)
}

// peakRSS returns a process's peak resident set in MiB since the last
// resetPeak.
func peakRSS(b *testing.B, pid int) float64 {
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(st), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.Atoi(f[1])
			return float64(kb) / 1024
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

// resetPeak restarts a process's peak RSS count (clear_refs 5).
func resetPeak(b *testing.B, pid int) {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkStreamedFiles moves 1 GiB each way through the streaming file
// endpoints, with the control plane and the host agent in separate
// processes, and measures in the same run the floor: the guest's own
// disk, dd writing 1 GiB (fsync'd) and reading it back with a cold page
// cache. It reports each direction's MB/s, its ratio to the floor, and
// the peak memory of agent and control plane during the transfers.
func BenchmarkStreamedFiles(b *testing.B) {
	a := startApart(b, "bench-token")
	s, agent := a.s, a.agent
	key := s.account("files@example.com")
	sb := s.create(key, map[string]any{"memory_mb": 1024})
	b.Cleanup(func() { s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil) })
	const size = 1 << 30
	mbps := func(d time.Duration) float64 { return size / 1e6 / d.Seconds() }
	dd := func(cmd string) float64 {
		r := s.exec(key, sb.ID, cmd)
		m := ddTook.FindStringSubmatch(r.Stderr)
		if r.ExitCode != 0 || m == nil {
			b.Fatalf("%s: %+v", cmd, r)
		}
		secs, _ := strconv.ParseFloat(m[1], 64)
		return size / 1e6 / secs
	}
	const dropCaches = "sync; echo 3 > /proc/sys/vm/drop_caches; "
	var up, down, ddW, ddR []float64
	var agentPeak, serverPeak float64
	b.SetBytes(2 * size)
	for b.Loop() {
		b.StopTimer()
		s.exec(key, sb.ID, "rm -f /root/big.bin /root/dd.bin")
		ddW = append(ddW, dd("dd if=/dev/zero of=/root/dd.bin bs=1M count=1024 conv=fsync"))
		ddR = append(ddR, dd(dropCaches+"dd if=/root/dd.bin of=/dev/null bs=1M"))
		s.exec(key, sb.ID, "rm -f /root/dd.bin; "+dropCaches)
		b.StartTimer()

		resetPeak(b, agent.cmd.Process.Pid)
		resetPeak(b, s.cmd.Process.Pid)
		t0 := time.Now()
		upload(b, s, key, sb.ID, "stream/write", "/root/big.bin", size)
		up = append(up, mbps(time.Since(t0)))
		b.StopTimer()
		s.exec(key, sb.ID, dropCaches)
		b.StartTimer()
		t0 = time.Now()
		if _, n := download(b, s, key, sb.ID, "stream/read", "/root/big.bin"); n != size {
			b.Fatalf("downloaded %d bytes", n)
		}
		down = append(down, mbps(time.Since(t0)))
		agentPeak = max(agentPeak, peakRSS(b, agent.cmd.Process.Pid))
		serverPeak = max(serverPeak, peakRSS(b, s.cmd.Process.Pid))
	}
	med := func(v []float64) float64 { slices.Sort(v); return v[len(v)/2] }
	b.ReportMetric(med(up), "upload-MB/s")
	b.ReportMetric(med(down), "download-MB/s")
	b.ReportMetric(med(ddW), "dd-write-MB/s")
	b.ReportMetric(med(ddR), "dd-read-MB/s")
	b.ReportMetric(med(up)/med(ddW), "upload/dd")
	b.ReportMetric(med(down)/med(ddR), "download/dd")
	b.ReportMetric(agentPeak, "agent-peak-MiB")
	b.ReportMetric(serverPeak, "server-peak-MiB")
}

// ddTook finds the seconds in dd's closing line ("... copied, 9.8 s, ...").
var ddTook = regexp.MustCompile(`copied, ([0-9.]+) s,`)

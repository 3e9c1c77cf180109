package e2e

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// abuses are what a noisy neighbour runs, each in the background of its
// own sandbox, for as long as the sandbox lives.
var abuses = []struct{ name, script string }{
	{"fork-bomb", `f() { f | f & }; f`},
	{"memory-hog", `while :; do python3 -c 'b = []
while True: b.append(bytearray(64 << 20))'; done`},
	{"disk-filler", `while :; do dd if=/dev/zero of=/fill bs=1M 2>/dev/null; sync; rm -f /fill; done`},
	{"cpu-burner", `for i in $(seq $(nproc)); do (while :; do :; done) & done; wait`},
}

// BenchmarkNoisyNeighbour: the exec round trip of a quiet sandbox, idle
// and then while another sandbox on the same host runs each abuse (a fork
// bomb, a memory hog past its RAM, a disk filler, a CPU burner on all its
// vCPUs). The quiet sandbox has the default sizes, the noisy one 2 vCPUs:
// as many as this 2-core host has. Besides the quiet sandbox's p50 it
// reports that p50 over the idle one ("vs-idle"), the least free disk seen
// on the host while the abuse ran, and whether the noisy sandbox still
// answered at the end; a noisy sandbox that reads "running" but no longer
// answers fails the benchmark.
//
// "limits" runs with each sandbox's QEMU in its own cgroup (the default);
// "no-limits" with WRENN_CGROUP_PARENT=off, for comparison.
//
//	go test -run '^$' -bench NoisyNeighbour -benchtime 20x ./tests/e2e
func BenchmarkNoisyNeighbour(b *testing.B) {
	b.Run("limits", func(b *testing.B) { benchNoisy(b) })
	b.Run("no-limits", func(b *testing.B) { benchNoisy(b, "WRENN_CGROUP_PARENT=off") })
}

func benchNoisy(b *testing.B, env ...string) {
	s, key := benchServer(b, env...)
	quiet := s.create(key, map[string]any{})
	defer s.do("DELETE", "/v1/sandboxes/"+quiet.ID, key, nil)
	s.exec(key, quiet.ID, "true") // warm

	roundTrips := func(b *testing.B) time.Duration { return execRoundTrips(b, s, key, quiet.ID) }

	var idle time.Duration
	b.Run("idle", func(b *testing.B) { idle = roundTrips(b) })
	for _, a := range abuses {
		b.Run(a.name, func(b *testing.B) {
			b.StopTimer()
			noisy := s.create(key, map[string]any{"vcpus": 2})
			defer s.do("DELETE", "/v1/sandboxes/"+noisy.ID, key, nil)
			s.exec(key, noisy.ID, "sh", "-c", "nohup sh -c '"+shellQuote(a.script)+"' >/dev/null 2>&1 &")
			time.Sleep(10 * time.Second) // let it take hold

			stop := make(chan struct{})
			var wg sync.WaitGroup
			minFree := ^uint64(0)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					var st unix.Statfs_t
					if unix.Statfs(s.dataDir, &st) == nil {
						minFree = min(minFree, st.Bavail*uint64(st.Bsize))
					}
					select {
					case <-stop:
						return
					case <-time.After(200 * time.Millisecond):
					}
				}
			}()
			b.StartTimer()
			p50 := roundTrips(b)
			b.StopTimer()
			close(stop)
			wg.Wait()
			if idle > 0 {
				b.ReportMetric(float64(p50)/float64(idle), "vs-idle")
			}
			b.ReportMetric(float64(minFree>>20), "min-free-disk-MiB")

			var got sandbox
			s.must(200, "GET", "/v1/sandboxes/"+noisy.ID, key, nil, &got)
			answered := 0.0
			if got.Status == "running" {
				code, body := s.do("POST", "/v1/sandboxes/"+noisy.ID+"/exec", key,
					map[string]any{"cmd": "true", "timeout_sec": 20})
				if code != 200 {
					b.Fatalf("the noisy sandbox reads running but its exec answered %d %s", code, body)
				}
				answered = 1
			} else if got.Status != "error" {
				b.Fatalf("the noisy sandbox reads %q", got.Status)
			}
			b.ReportMetric(answered, "noisy-answered")
		})
	}
}

// shellQuote makes s safe inside single quotes.
func shellQuote(s string) string {
	out := ""
	for _, r := range s {
		if r == '\'' {
			out += `'\''`
			continue
		}
		out += string(r)
	}
	return out
}

package e2e

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"
	"time"
)

// Fleet benchmarks (issue 13): create → first exec on a fleet of three
// joined hosts against one host, and how long a host's loss takes to be
// noticed. The hosts are the placement test's (newFleetAgent): real
// `wrenn agent --join` processes, each in a network namespace of its own,
// on this one machine.

// benchFleet is a control plane with no agent of its own and the agents
// joined to it.
type benchFleet struct{ *testFleet }

// startBenchFleet starts a fleet (startFleet: agents first, first+1, …,
// each a network namespace and address range of its own, with env over
// the harness's defaults); it returns once the hosts are online and a
// create would find the base templates.
func startBenchFleet(b *testing.B, first, n int, env []string, serverEnv ...string) *benchFleet {
	b.Helper()
	f := &benchFleet{startFleet(b, first, n, env, serverEnv...)}
	s := f.s
	if slices.Contains(env, "WRENN_WARM_POOL=1") {
		// Every pool ready, so that the first create takes a member
		// (and its agent makes one more ready), as every later one does.
		for _, a := range f.agents {
			for deadline := time.Now().Add(2 * time.Minute); poolReady(a.proc.logs.String(), "minimal") < 1; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatalf("agent %d's warm pool made nothing ready within 2 minutes\n%s", a.i, a.proc.logs)
				}
			}
		}
	}
	// The server learns the base templates from the agents it dials.
	sb := f.create(map[string]any{})
	s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, f.key, nil, nil)
	// Time the server, not the contract checks the tests make.
	s.client = &http.Client{Timeout: 10 * time.Minute}
	return f
}

// waitStatus waits until host i reads status, polling every 10 ms, and
// returns when it first did.
func (f *benchFleet) waitStatus(i int, status string, within time.Duration) time.Time {
	f.t.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(10 * time.Millisecond) {
		if f.hostStatus(i) == status {
			return time.Now()
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("host %d is %s, not %s, after %v\n%s", i, f.hostStatus(i), status, within, f.agents[i].proc.logs)
		}
	}
}

// poolReady counts the sandboxes the fleet's warm pools have made ready.
func (f *benchFleet) poolReady() int {
	n := 0
	for _, a := range f.agents {
		n += poolReady(a.proc.logs.String(), "minimal")
	}
	return n
}

// BenchmarkFleetCreateToFirstExec: POST /v1/sandboxes at the default
// sizes, then `exec true` answering (destroy not timed), on three setups
// in the same run, one create on each per iteration (a different one
// first each time) so that the machine's noise falls on all three alike:
//
//   - "fleet": a control plane and three joined hosts (placement, then the
//     agent link over mutual TLS to the chosen host);
//   - "one-joined": a control plane and one joined host, the same code path
//     with one host to place on: what the fleet costs over one host;
//   - "single": `wrenn server` with its own agent, as without a fleet (no
//     placement, no mutual TLS): what the fleet costs over not having one.
//
// "restore": no warm pools, each create restores the base's snapshot in a
// new VM (as the placement test's agents run); "pool": a warm pool of
// one on every agent, refilled (untimed) between creates.
func BenchmarkFleetCreateToFirstExec(b *testing.B) {
	for _, pool := range []string{"0", "1"} {
		name := map[string]string{"0": "restore", "1": "pool"}[pool]
		b.Run(name, func(b *testing.B) {
			env := []string{"WRENN_WARM_POOL=" + pool}
			single, singleKey := benchServer(b, env...)
			one := startBenchFleet(b, 0, 1, env)
			three := startBenchFleet(b, 1, 3, env)
			type setup struct {
				name    string
				s       *server
				key     hdr
				ready   func() int
				samples []time.Duration
			}
			setups := []*setup{
				{name: "fleet", s: three.s, key: three.key, ready: three.poolReady},
				{name: "one-joined", s: one.s, key: one.key, ready: one.poolReady},
				{name: "single", s: single, key: singleKey, ready: func() int { return poolReady(single.logs.String(), "minimal") }},
			}
			// waitPool waits until st's agents' pools are full again: as
			// many made ready as taken, plus one an agent.
			waitPool := func(st *setup) {
				if pool == "0" {
					return
				}
				want := map[string]int{"fleet": 3, "one-joined": 1, "single": 1}[st.name] + len(st.samples)
				if st.name != "single" {
					want++ // the fleets' first create, made while waiting for templates
				}
				for deadline := time.Now().Add(2 * time.Minute); st.ready() < want; time.Sleep(20 * time.Millisecond) {
					if time.Now().After(deadline) {
						b.Fatalf("%s: the warm pools made %d sandboxes ready, want %d", st.name, st.ready(), want)
					}
				}
			}
			for _, st := range setups {
				waitPool(st)
			}
			round := 0
			for b.Loop() {
				// Each in turn, first in turn; each host settled (its pool
				// refilled) before the next is timed.
				for k := range setups {
					st := setups[(round+k)%len(setups)]
					start := time.Now()
					sb := st.s.create(st.key, map[string]any{})
					if r := st.s.exec(st.key, sb.ID, "true"); r.ExitCode != 0 {
						b.Fatalf("%s: exec: %+v", st.name, r)
					}
					st.samples = append(st.samples, time.Since(start))
					b.StopTimer()
					st.s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, st.key, nil, nil)
					waitPool(st)
					b.StartTimer()
				}
				round++
			}
			p50 := map[string]float64{}
			for _, st := range setups {
				p50[st.name] = median(st.samples)
				reportQuantiles(b, st.name, st.samples)
			}
			b.ReportMetric(p50["fleet"]/p50["one-joined"], "fleet/one-joined")
			b.ReportMetric(p50["fleet"]/p50["single"], "fleet/single")
		})
	}
}

// median returns the median of samples in milliseconds.
func median(samples []time.Duration) float64 {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(samples))
	return float64(s[len(s)/2].Microseconds()) / 1000
}

// BenchmarkHostLossNoticed: one joined host at the defaults (a heartbeat
// every 2 s, WRENN_HOST_DEAD_AFTER 10 s, the server checking every
// dead_after/10); each iteration kills its agent with SIGKILL and times
// until GET /v1/hosts/{id} reads unreachable (polled every 10 ms), then
// restarts the agent, untimed, and waits until the host is online, and
// 2–4 s more, so that kills fall anywhere in the heartbeat cycle. Besides
// the time from the kill it reports the host's silence at the kill and
// when noticed (from its last_heartbeat_at), which the bound is about.
func BenchmarkHostLossNoticed(b *testing.B) {
	f := startBenchFleet(b, 0, 1, []string{"WRENN_HEARTBEAT_INTERVAL=2s"})
	a := f.agents[0]
	lastBeat := func() time.Time {
		var h struct {
			LastHeartbeatAt time.Time `json:"last_heartbeat_at"`
		}
		f.s.must(200, "GET", "/v1/hosts/"+a.hostID, f.jwt, nil, &h)
		return h.LastHeartbeatAt
	}
	var noticed, silentAtKill, silentNoticed []time.Duration
	for b.Loop() {
		b.StopTimer()
		time.Sleep(2*time.Second + time.Duration(rand.Int64N(int64(2*time.Second))))
		b.StartTimer()
		start := time.Now()
		a.proc.kill()
		at := f.waitStatus(0, "unreachable", 30*time.Second)
		noticed = append(noticed, at.Sub(start))
		b.StopTimer()
		beat := lastBeat()
		silentAtKill = append(silentAtKill, start.Sub(beat))
		silentNoticed = append(silentNoticed, at.Sub(beat))
		a.start()
		f.waitStatus(0, "online", 30*time.Second)
		b.StartTimer()
	}
	b.Logf("per kill: noticed after %v; silent at the kill %v; silent when noticed %v", noticed, silentAtKill, silentNoticed)
	reportQuantiles(b, "noticed", noticed)
	b.ReportMetric(float64(slices.Min(noticed).Milliseconds()), "noticed-min-ms")
	b.ReportMetric(float64(slices.Max(noticed).Milliseconds()), "noticed-max-ms")
	b.ReportMetric(median(silentAtKill), "silent-at-kill-p50-ms")
	b.ReportMetric(median(silentNoticed), "silent-when-noticed-p50-ms")
	b.ReportMetric(float64(slices.Max(silentNoticed).Milliseconds()), "silent-when-noticed-max-ms")
}

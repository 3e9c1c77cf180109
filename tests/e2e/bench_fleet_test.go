package e2e

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
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
type benchFleet struct {
	s      *server
	jwt    hdr
	key    hdr
	agents []*fleetAgent
}

// startBenchFleet starts a server with a fleet listener and no agent,
// and joins agents first, first+1, … (newFleetAgent's indexes: each is a
// network namespace and address range of its own) with env over the
// harness's defaults; it returns once the hosts are online and a create
// would find the base templates.
func startBenchFleet(b *testing.B, first, n int, env []string, serverEnv ...string) *benchFleet {
	b.Helper()
	_, port, _ := strings.Cut(freeAddr(b), ":")
	s := startServer(b, shortTempDir(b), append([]string{"WRENN_AGENT_ADDR=none", "WRENN_FLEET_LISTEN=:" + port}, serverEnv...)...)
	var pin string
	for deadline := time.Now().Add(10 * time.Second); pin == "" && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := fleetListenLine.FindStringSubmatch(s.logs.String()); m != nil {
			pin = m[1]
		}
	}
	if pin == "" {
		b.Fatalf("the server does not say its fleet CA\n%s", s.logs)
	}
	var admin session
	s.must(201, "POST", "/v1/auth/signup", nil, map[string]string{"email": "admin@example.com", "password": "sandbox-tests"}, &admin)
	f := &benchFleet{s: s, jwt: bearer(admin.Token)}
	var k apiKey
	s.must(201, "POST", "/v1/api-keys", f.jwt, map[string]string{"name": "bench"}, &k)
	f.key = hdr{"X-API-Key": *k.Key}
	for i := first; i < first+n; i++ {
		var created struct {
			Host struct {
				ID string `json:"id"`
			} `json:"host"`
			Token string `json:"registration_token"`
		}
		s.must(201, "POST", "/v1/hosts", f.jwt, map[string]string{"type": "regular"}, &created)
		a := newFleetAgent(b, i)
		a.env = env
		a.start("--join", "https://"+a.gateway+":"+port, "--token", created.Token, "--ca-sha256", pin)
		a.hostID = created.Host.ID
		f.agents = append(f.agents, a)
	}
	for _, a := range f.agents {
		f.waitStatus(a, "online", 15*time.Second)
	}
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
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, out := s.do("POST", "/v1/sandboxes", f.key, map[string]any{})
		if code == 201 {
			var sb sandbox
			if err := json.Unmarshal(out, &sb); err != nil {
				b.Fatal(err)
			}
			s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, f.key, nil, nil)
			break
		}
		if code != 400 || !strings.Contains(string(out), "does not exist") || time.Now().After(deadline) {
			b.Fatalf("first create = %d: %s", code, out)
		}
	}
	// Time the server, not the contract checks the tests make.
	s.client = &http.Client{Timeout: 10 * time.Minute}
	return f
}

// hostStatus is GET /v1/hosts/{id}'s status.
func (f *benchFleet) hostStatus(id string) string {
	var h struct {
		Status string `json:"status"`
	}
	f.s.must(200, "GET", "/v1/hosts/"+id, f.jwt, nil, &h)
	return h.Status
}

// waitStatus waits until a's host reads status, polling every 10 ms, and
// returns when it first did.
func (f *benchFleet) waitStatus(a *fleetAgent, status string, within time.Duration) time.Time {
	b := a.t
	b.Helper()
	for deadline := time.Now().Add(within); ; time.Sleep(10 * time.Millisecond) {
		if f.hostStatus(a.hostID) == status {
			return time.Now()
		}
		if time.Now().After(deadline) {
			b.Fatalf("host %s is %s, not %s, after %v\n%s", a.hostID, f.hostStatus(a.hostID), status, within, a.proc.logs)
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
		at := f.waitStatus(a, "unreachable", 30*time.Second)
		noticed = append(noticed, at.Sub(start))
		b.StopTimer()
		beat := lastBeat()
		silentAtKill = append(silentAtKill, start.Sub(beat))
		silentNoticed = append(silentNoticed, at.Sub(beat))
		a.start()
		f.waitStatus(a, "online", 30*time.Second)
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

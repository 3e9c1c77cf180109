package e2e

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/fleet"
	"github.com/wrennhq/wrenn/internal/store"
)

// The fleet tests' common set-up (issue 13): a control plane with no
// agent of its own, its fleet CA's fingerprint, an admin (JWT) and an API
// key, and agents joined to it (newFleetAgent), each a host of its own.

// testFleet is a control plane and the agents joined to it.
type testFleet struct {
	t      testing.TB
	s      *server // where its requests go
	pin    string  // the fleet CA's SHA-256
	jwt    hdr     // the admin's
	key    hdr     // an API key of the admin's team
	agents []*fleetAgent
}

// startFleet starts a server with no agent of its own, a fleet listener
// on a free port on every address (each agent reaches it through its
// link to the root namespace) and serverEnv, joins hosts agents to it (newFleetAgent's
// indexes first, first+1, …) with agentEnv over the harness's defaults,
// and returns once every host reads online.
func startFleet(t testing.TB, first, hosts int, agentEnv []string, serverEnv ...string) *testFleet {
	t.Helper()
	_, port, _ := strings.Cut(freeAddr(t), ":")
	s := startServer(t, shortTempDir(t), append([]string{"WRENN_AGENT_ADDR=none", "WRENN_FLEET_LISTEN=:" + port}, serverEnv...)...)
	f := newTestFleet(t, s)
	for i := first; i < first+hosts; i++ {
		f.join(i, agentEnv, port)
	}
	for i := range f.agents {
		f.waitHost(i, "online", 15*time.Second)
	}
	return f
}

// newTestFleet waits for s to say its fleet CA, signs the platform admin
// up on it and makes an API key: a fleet with no host yet.
func newTestFleet(t testing.TB, s *server) *testFleet {
	t.Helper()
	f := &testFleet{t: t, s: s, pin: fleetCA(t, s)}
	var admin session
	s.must(201, "POST", "/v1/auth/signup", nil, map[string]string{"email": "admin@example.com", "password": "sandbox-tests"}, &admin)
	f.jwt = bearer(admin.Token)
	var k apiKey
	s.must(201, "POST", "/v1/api-keys", f.jwt, map[string]string{"name": "e2e"}, &k)
	f.key = hdr{"X-API-Key": *k.Key}
	return f
}

// join registers a host and starts agent i on it with env, joined to the
// control planes listening on ports (one --join, comma-separated).
func (f *testFleet) join(i int, env []string, ports ...string) *fleetAgent {
	f.t.Helper()
	id, token := f.addHost()
	a := newFleetAgent(f.t, i)
	a.env = slices.Clone(env)
	var urls []string
	for _, p := range ports {
		urls = append(urls, "https://"+a.gateway+":"+p)
	}
	return f.start(a, id, token, "--join", strings.Join(urls, ","))
}

// addHost registers a host (POST /v1/hosts): its ID and registration
// token, for start.
func (f *testFleet) addHost() (id, token string) {
	f.t.Helper()
	var created struct {
		Host struct {
			ID string `json:"id"`
		} `json:"host"`
		Token string `json:"registration_token"`
	}
	f.s.must(201, "POST", "/v1/hosts", f.jwt, map[string]string{"type": "regular"}, &created)
	return created.Host.ID, created.Token
}

// start starts agent a as host id (addHost's) with joinArgs, the host's
// token and the fleet's CA, and adds it to the fleet.
func (f *testFleet) start(a *fleetAgent, id, token string, joinArgs ...string) *fleetAgent {
	f.t.Helper()
	a.start(append(joinArgs, "--token", token, "--ca-sha256", f.pin)...)
	a.hostID = id
	f.agents = append(f.agents, a)
	return a
}

// on is the fleet with its requests sent to s (another replica).
func (f *testFleet) on(s *server) *testFleet {
	g := *f
	g.s = s
	return &g
}

// tag gives host i tag.
func (f *testFleet) tag(i int, tag string) {
	f.t.Helper()
	f.s.must(204, "POST", "/v1/hosts/"+f.agents[i].hostID+"/tags", f.jwt, map[string]string{"tag": tag}, nil)
}

// hostStatus is host i's status (GET /v1/hosts/{id}).
func (f *testFleet) hostStatus(i int) string {
	f.t.Helper()
	var h struct {
		Status string `json:"status"`
	}
	f.s.must(200, "GET", "/v1/hosts/"+f.agents[i].hostID, f.jwt, nil, &h)
	return h.Status
}

// waitHost waits until host i reads want, polling every 100 ms, fails
// past within, and returns how long it took.
func (f *testFleet) waitHost(i int, want string, within time.Duration) time.Duration {
	f.t.Helper()
	start := time.Now()
	for f.hostStatus(i) != want {
		if time.Since(start) > within {
			f.t.Fatalf("host %d (%s) is %s %v on, want %s\n%s", i, f.agents[i].hostID, f.hostStatus(i), within, want, f.agents[i].proc.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return time.Since(start)
}

// hostOf says which agent holds a sandbox, by its host-side address, cut
// from that agent's own range.
func (f *testFleet) hostOf(sb sandbox) int {
	f.t.Helper()
	ip, err := netip.ParseAddr(sb.HostIP)
	if err != nil {
		f.t.Fatalf("sandbox %s host_ip %q: %v", sb.ID, sb.HostIP, err)
	}
	for i, a := range f.agents {
		if a.cidr.Contains(ip) {
			return i
		}
	}
	f.t.Fatalf("sandbox %s host_ip %s is in no agent's range", sb.ID, ip)
	return -1
}

// create makes a sandbox of body. The server learns the base templates
// from the agents it dials: a first create may come before it has, so a
// 400 saying the template does not exist is tried again for 20 s.
func (f *testFleet) create(body map[string]any) sandbox {
	f.t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, out := f.s.do("POST", "/v1/sandboxes", f.key, body)
		if code == 201 {
			var sb sandbox
			if err := json.Unmarshal(out, &sb); err != nil {
				f.t.Fatal(err)
			}
			return sb
		}
		if code != 400 || !strings.Contains(string(out), "does not exist") || time.Now().After(deadline) {
			f.t.Fatalf("create %v = %d: %s", body, code, out)
		}
	}
}

// createOn creates a sandbox from template (256 MiB, no timeout) on host
// i, by its tag tagOf(i), and fails if it lands elsewhere.
func (f *testFleet) createOn(i int, template string) sandbox {
	f.t.Helper()
	sb := f.create(map[string]any{"template": template, "memory_mb": 256, "timeout_sec": 0, "host_tags": []string{tagOf(i)}})
	if h := f.hostOf(sb); h != i {
		f.t.Fatalf("a create tagged %s landed on host %d", tagOf(i), h)
	}
	return sb
}

// fleetCA waits for the fleet CA's fingerprint in s's log.
func fleetCA(t testing.TB, s *server) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if m := fleetListenLine.FindStringSubmatch(s.logs.String()); m != nil {
			return m[1]
		}
	}
	t.Fatalf("the server does not say its fleet CA\n%s", s.logs)
	return ""
}

// agentLink is a client of the agent link as the server's own, with the
// fleet CA and hosts of its store db: it dials an agent as the server does.
func agentLink(t testing.TB, db *store.DB) *fleet.Link {
	t.Helper()
	ca, err := fleet.LoadCA(t.Context(), db, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	return fleet.NewLink(fleet.LinkConfig{Store: db, Registry: fleet.New(fleet.Config{Hosts: db, Roles: db, Now: time.Now, Logger: quiet}),
		CA: ca, Now: time.Now, Logger: quiet})
}

package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agent"
	"github.com/wrennhq/wrenn/internal/store"
)

// A fleet (issue 13, placement): a real `wrenn server` with no agent of
// its own and three real `wrenn agent --join` processes on this machine,
// each in a network namespace of its own as if it were a separate host
// (a veth link to the root namespace, where the server listens), and with
// its own data dir, network-slot names and address range, VM user IDs and
// control group. Sandboxes created through the public API land on all
// three.

// fleetAgent is one joined agent of the test fleet.
type fleetAgent struct {
	t       testing.TB
	i       int
	hostID  string
	dataDir string
	netns   string // its network namespace, its host's network
	gateway string // the root namespace's end of its link
	listen  string
	cidr    netip.Prefix
	proc    *agentProc
	env     []string // more environment for the agent (over the defaults), if any
}

// newFleetAgent is agent i of the fleet, not started. At cleanup it is
// stopped, its VMs killed and its control group removed.
func newFleetAgent(t testing.TB, i int) *fleetAgent {
	a := &fleetAgent{t: t, i: i, dataDir: shortTempDir(t), netns: fmt.Sprintf("wrnhost%d", i),
		gateway: fmt.Sprintf("10.%d.0.1", 231+i), listen: fmt.Sprintf("10.%d.0.2:7070", 231+i),
		cidr: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/24", 221+i))}
	// The host's network: a namespace with a /30 link to the root one
	// (deleting the namespace deletes the link). Cleanups run last first:
	// this one after the agent's, below.
	root := fmt.Sprintf("wrhv%d", i)
	for _, args := range [][]string{
		{"netns", "add", a.netns},
		{"link", "add", root, "type", "veth", "peer", "name", "eth0", "netns", a.netns},
		{"addr", "add", a.gateway + "/30", "dev", root},
		{"link", "set", root, "up"},
		{"-n", a.netns, "addr", "add", strings.TrimSuffix(a.listen, ":7070") + "/30", "dev", "eth0"},
		{"-n", a.netns, "link", "set", "eth0", "up"},
		{"-n", a.netns, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
		if args[0] == "netns" {
			t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", a.netns).Run() })
		}
	}
	t.Cleanup(func() {
		if a.proc != nil {
			a.proc.stop()
		}
		killVMs(t, a.dataDir)
		_ = os.Remove(filepath.Join("/sys/fs/cgroup", a.cgroup()))
		// An agent killed and not started again leaves its sandboxes'
		// network slots for the next one to adopt: there is none. (Their
		// host-side links and the agent's nft table are in its host's
		// namespace, which goes with it.)
		slots, _ := filepath.Glob(filepath.Join("/run/netns", a.netName()+"-*"))
		for _, ns := range slots {
			_ = exec.Command("ip", "netns", "del", filepath.Base(ns)).Run()
		}
	})
	return a
}

// netName is the agent's WRENN_NET_NAME, the prefix of its slots' names.
func (a *fleetAgent) netName() string { return fmt.Sprintf("wrnfleet%d", a.i) }

func (a *fleetAgent) cgroup() string { return fmt.Sprintf("wrennfleet%d", a.i) }

// start runs `wrenn agent` (with args: --join and its token the first
// time) with its own network slots and waits until it serves.
func (a *fleetAgent) start(args ...string) {
	t := a.t
	t.Helper()
	images := requireVMs(t)
	// nsenter, not `ip netns exec`: only the network namespace changes,
	// so the namespaces of its sandboxes are seen from the root one.
	cmd := exec.Command("nsenter", append([]string{"--net=/run/netns/" + a.netns, "--", wrennBin,
		"agent", "--data-dir", a.dataDir, "--listen", a.listen}, args...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), envImagesDir+"="+images, "WRENN_SOURCE_DIR="+repoRoot(), "WRENN_HEARTBEAT_INTERVAL=1s",
		"WRENN_WARM_POOL=0",
		"WRENN_NET_NAME="+a.netName(), "WRENN_NET_LINK_PREFIX=wrf"+string(rune('a'+a.i)), "WRENN_NET_CIDR="+a.cidr.String(),
		"WRENN_CGROUP_PARENT="+a.cgroup(), fmt.Sprintf("WRENN_VM_UID_BASE=%d", 600000+a.i*100000))
	cmd.Env = append(cmd.Env, a.env...)
	p, addr := launchAgent(t, cmd, joinedLine)
	a.proc = p
	select {
	case p.addr = <-addr:
	case err := <-p.done:
		p.exited = true
		t.Fatalf("wrenn agent %d exited: %v\n%s", a.i, err, p.logs)
	case <-time.After(10 * time.Minute):
		t.Fatalf("wrenn agent %d did not listen\n%s", a.i, p.logs)
	}
}

// TestFleetPlacement: each joined host reports what its agent admits;
// creates spread over three joined hosts, each sandbox real (an exec
// answers) and on the host its address says; a tagged create lands on the
// tagged host; a drained host gets nothing new; destroys clear every host;
// a host whose agent dies answers its sandboxes' calls with a 502 that
// says so, and creates go elsewhere; back with a higher
// WRENN_CPU_OVERCOMMIT, it reports the larger capacity.
func TestFleetPlacement(t *testing.T) {
	requireVMs(t)
	f := startFleet(t, 0, 3, nil, "WRENN_HOST_DEAD_AFTER=5s")
	s, jwt, key, agents := f.s, f.jwt, f.key, f.agents
	// Each agent reported what its admission admits (here the defaults:
	// cores × 4, memory less 1 GiB), which placement counts against.
	capacityOf := func(a *fleetAgent) (vcpus, memoryMB *int) {
		var h struct {
			VCPUs    *int `json:"capacity_vcpus"`
			MemoryMB *int `json:"capacity_memory_mb"`
		}
		s.must(200, "GET", "/v1/hosts/"+a.hostID, jwt, nil, &h)
		return h.VCPUs, h.MemoryMB
	}
	machineMB, err := agent.MachineResources().MemoryMB()
	if err != nil {
		t.Fatal(err)
	}
	deref := func(p *int) any {
		if p == nil {
			return nil
		}
		return *p
	}
	for i, a := range agents {
		if v, m := capacityOf(a); v == nil || m == nil || *v != runtime.NumCPU()*4 || *m != machineMB-1024 {
			t.Fatalf("host %d reports capacity %v vCPUs, %v MiB; want %d, %d", i, deref(v), deref(m), runtime.NumCPU()*4, machineMB-1024)
		}
	}
	hostOf := f.hostOf
	body := map[string]any{"template": "minimal", "memory_mb": 256, "timeout_sec": 0}
	create := func(body map[string]any) sandbox {
		t.Helper()
		sb := s.create(key, body)
		if r := s.exec(key, sb.ID, "echo", "hello "+sb.ID); r.ExitCode != 0 || r.Stdout != "hello "+sb.ID+"\n" {
			t.Fatalf("exec in %s: %+v", sb.ID, r)
		}
		return sb
	}
	// The server learns the base templates from the agents it dials: the
	// first create may come before it has.
	sbs := []sandbox{f.create(body)}
	// 12 here, and 17 at most below: three agents on a 2-core machine
	// admit 8 vCPUs each (2 cores × 4).
	n := 12
	for len(sbs) < n {
		sbs = append(sbs, create(body))
	}
	per := make([]int, len(agents))
	for _, sb := range sbs {
		per[hostOf(sb)]++
	}
	t.Logf("%d creates per host: %v", n, per)
	// The record agrees with the address: each sandbox's host_id is the
	// agent whose range it has.
	db, err := store.Open(t.Context(), store.Config{SQLitePath: filepath.Join(s.dataDir, "wrenn.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs, err := db.SandboxesByStatus(t.Context(), wrenn.StatusRunning)
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]string{}
	for _, r := range recs {
		recorded[r.ID] = r.HostID
	}
	for _, sb := range sbs {
		if got, want := recorded[sb.ID], agents[hostOf(sb)].hostID; got != want {
			t.Fatalf("sandbox %s records host %q; its address is host %s's", sb.ID, got, want)
		}
	}
	for i, c := range per {
		if c < n/3-2 || c > n/3+2 {
			t.Fatalf("host %d got %d of %d creates (%v), want %d±2", i, c, n, per, n/3)
		}
	}

	// A tag: creates asking for it land on the one host that has it; a
	// tag no host has is a 503 saying so.
	s.must(204, "POST", "/v1/hosts/"+agents[2].hostID+"/tags", jwt, map[string]string{"tag": "gpu"}, nil)
	for range 2 {
		sb := create(map[string]any{"template": "minimal", "memory_mb": 256, "timeout_sec": 0, "host_tags": []string{"gpu"}})
		if h := hostOf(sb); h != 2 {
			t.Fatalf("a create asking for tag gpu landed on host %d", h)
		}
		sbs = append(sbs, sb)
	}
	code, out := s.do("POST", "/v1/sandboxes", key, map[string]any{"template": "minimal", "host_tags": []string{"arm64"}})
	if code != 503 || errorCode(t, out) != "host_full" || !strings.Contains(string(out), "no available host has the tags arm64") {
		t.Fatalf("a create asking for a tag no host has = %d: %s", code, out)
	}

	// Draining: host 0 gets nothing new; its sandboxes still answer.
	s.must(200, "POST", "/v1/hosts/"+agents[0].hostID+"/drain", jwt, nil, nil)
	for range 3 {
		sb := create(body)
		if hostOf(sb) == 0 {
			t.Fatal("a create landed on a draining host")
		}
		sbs = append(sbs, sb)
	}
	for _, sb := range sbs {
		if hostOf(sb) == 0 {
			if r := s.exec(key, sb.ID, "true"); r.ExitCode != 0 {
				t.Fatalf("a draining host's sandbox: %+v", r)
			}
		}
	}
	s.must(200, "POST", "/v1/hosts/"+agents[0].hostID+"/undrain", jwt, nil, nil)

	// Destroy: every host is left with no sandbox, as its agent says over
	// the agent link and its processes show.
	var onB sandbox // one kept on host 1, for its host's loss below
	for _, sb := range sbs {
		if onB.ID == "" && hostOf(sb) == 1 {
			onB = sb
			continue
		}
		s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	}
	link := agentLink(t, db)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for i, a := range agents {
		rpc, err := link.DialAgent(ctx, a.hostID)
		if err != nil {
			t.Fatal(err)
		}
		held, err := rpc.ListSandboxes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := 0
		if i == 1 {
			want = 1
		}
		if len(held) != want || (want == 1 && held[0].ID != onB.ID) {
			t.Fatalf("host %d holds %+v after the destroys, want %d", i, held, want)
		}
		if q := len(snapshotHost(t, a.dataDir).qemus); q != want {
			t.Fatalf("host %d runs %d VMs after the destroys, want %d", i, q, want)
		}
	}

	// Host 1's agent dies: once the host is unreachable its sandbox's
	// calls are a 502 that says so, not a hang, and creates go elsewhere.
	agents[1].proc.kill()
	f.waitHost(1, "unreachable", 10*time.Second)
	start := time.Now()
	code, out = s.do("POST", "/v1/sandboxes/"+onB.ID+"/exec", key, map[string]any{"cmd": "true"})
	if code != 502 || errorCode(t, out) != "host_agent_error" || !strings.Contains(string(out), "unreachable") || time.Since(start) > 5*time.Second {
		t.Fatalf("exec on an unreachable host's sandbox = %d after %v: %s", code, time.Since(start), out)
	}
	for range 2 {
		sb := create(body)
		if hostOf(sb) == 1 {
			t.Fatal("a create landed on an unreachable host")
		}
		s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	}
	// The agent back (its credentials, no token) adopts the VM it left
	// running; its host is online again and the sandbox answers. It comes
	// back with a higher WRENN_CPU_OVERCOMMIT, which its heartbeats
	// report: it does not register again.
	agents[1].env = append(agents[1].env, "WRENN_CPU_OVERCOMMIT=12")
	agents[1].start()
	f.waitHost(1, "online", 15*time.Second)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		v, m := capacityOf(agents[1])
		if v != nil && *v == runtime.NumCPU()*12 && m != nil && *m == machineMB-1024 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host 1 reports capacity %v vCPUs, %v MiB after its agent came back with WRENN_CPU_OVERCOMMIT=12; want %d, %d",
				deref(v), deref(m), runtime.NumCPU()*12, machineMB-1024)
		}
	}
	// Its sandbox read missing while the host was lost (host loss,
	// TestFleetHostLoss): running again once its reconciler sees the host
	// hold it.
	status := func() string {
		var sb sandbox
		s.must(200, "GET", "/v1/sandboxes/"+onB.ID, key, nil, &sb)
		return sb.Status
	}
	for deadline := time.Now().Add(15 * time.Second); status() != "running"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the sandbox is %s 15s after its host came back", status())
		}
	}
	if r := s.exec(key, onB.ID, "echo", "back"); r.ExitCode != 0 || r.Stdout != "back\n" {
		t.Fatalf("exec after the host came back: %+v", r)
	}
	s.must(204, "DELETE", "/v1/sandboxes/"+onB.ID, key, nil, nil)
}

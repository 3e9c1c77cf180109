package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWarmPool: a create at the default sizes takes the sandbox the agent's
// warm pool has ready and gives it an identity of its own; the pool
// refills; a new agent ends the member a killed one left and adopts the
// claimed sandboxes; a stopped agent ends its member.
func TestWarmPool(t *testing.T) {
	ap := startApart(t, "pool-token")
	s, dataDir := ap.s, ap.dataDir
	key := s.account("pool@example.com")

	// ready waits until agent a has made n pool members ready, and
	// returns the run directory of the unclaimed one.
	ready := func(a *agentProc, n int) string {
		t.Helper()
		var dir string
		eventually(t, 2*time.Minute, func() string {
			if got := poolReady(a.logs.String(), "minimal"); got < n {
				return "pool members ready: " + strconv.Itoa(got)
			}
			dirs := unclaimed(t, dataDir)
			if len(dirs) != 1 {
				return "unclaimed pool members: " + strings.Join(dirs, " ")
			}
			dir = dirs[0]
			return ""
		})
		return dir
	}
	identity := func(id string) {
		t.Helper()
		r := s.exec(key, id, "sh -c 'hostname; date +%s'")
		f := strings.Fields(r.Stdout)
		if len(f) != 2 || f[0] != id {
			t.Fatalf("sandbox %s: hostname and clock: %+v", id, r)
		}
		if secs, _ := strconv.ParseInt(f[1], 10, 64); time.Since(time.Unix(secs, 0)).Abs() > 5*time.Second {
			t.Errorf("sandbox %s: guest clock %s, host %s", id, time.Unix(secs, 0), time.Now())
		}
	}

	member := ready(ap.agent, 1)
	a := s.create(key, map[string]any{})
	if got := runDirOf(t, dataDir, a.ID); got != member {
		t.Fatalf("the create did not take the ready sandbox %s: runs in %s", member, got)
	}
	identity(a.ID)
	member = ready(ap.agent, 2) // refilled
	b := s.create(key, map[string]any{})
	if got := runDirOf(t, dataDir, b.ID); got != member {
		t.Fatalf("the second create did not take the refilled sandbox %s: runs in %s", member, got)
	}
	identity(b.ID)
	if a.GuestIP == "" || a.HostIP == b.HostIP {
		t.Errorf("two claimed sandboxes share a network slot: %+v %+v", a, b)
	}

	// A crash leaves the ready member; the next agent ends it, keeps the
	// claimed sandboxes, and makes a member of its own.
	left := ready(ap.agent, 3)
	ap.restartAgent()
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("the killed agent's pool member %s was not removed: %v", left, err)
	}
	if pids := qemuPIDs(left); len(pids) != 0 {
		t.Errorf("the killed agent's pool member still runs: %v", pids)
	}
	if fresh := ready(ap.agent, 1); fresh == left {
		t.Errorf("the new agent kept the old pool member")
	}
	identity(a.ID)
	identity(b.ID)

	s.must(204, "DELETE", "/v1/sandboxes/"+a.ID, key, nil, nil)
	s.must(204, "DELETE", "/v1/sandboxes/"+b.ID, key, nil, nil)
	ap.agent.stop()
	if st := snapshotHost(t, dataDir); st.poolQemus != 0 || st.poolDirs != 0 || len(st.qemus) != 0 {
		t.Errorf("a stopped agent left %d pool VMs, %d pool run dirs and VMs %q", st.poolQemus, st.poolDirs, st.qemus)
	}
}

// unclaimed lists the run directories of warm pool members no create has
// taken.
func unclaimed(t testing.TB, dataDir string) []string {
	t.Helper()
	records, _ := filepath.Glob(filepath.Join(dataDir, "sandboxes", poolPrefix+"*", "state.json"))
	var dirs []string
	for _, r := range records {
		if b, err := os.ReadFile(r); err == nil && strings.Contains(string(b), `"pool":true`) {
			dirs = append(dirs, filepath.Dir(r))
		}
	}
	return dirs
}

// TestWarmPoolBurst: bursts of concurrent creates, the first beyond what
// the pool holds and the second from a pool that has learnt the burst,
// give each sandbox its own identity (hostname), clock, entropy and
// network slot, with the egress policy it asked for; the pool grows to the
// burst, the second burst finds every member ready, and nothing is left
// behind.
func TestWarmPoolBurst(t *testing.T) {
	requireVMs(t)
	startWorld(t)
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir, "WRENN_DNS_UPSTREAM="+worldDNS, "WRENN_CPU_OVERCOMMIT=16")
	key := s.account("burst@example.com")
	before := snapshotHost(t, dataDir)
	const n = 6
	bodies := make([]map[string]any, n)
	for i := range bodies {
		bodies[i] = map[string]any{"allow_internet_access": i%2 == 0}
	}
	check := func(what string, rs []burstResult) {
		t.Helper()
		seen := map[string]string{}
		unique := func(kind, v, id string) {
			if other, ok := seen[kind+v]; ok {
				t.Errorf("%s: %s and %s have the same %s %q", what, other, id, kind, v)
			}
			seen[kind+v] = id
		}
		for _, r := range rs {
			if r.err != nil {
				t.Fatalf("%s: %v", what, r.err)
			}
			id := r.sb.ID
			if dir := filepath.Base(runDirOf(t, dataDir, id)); !strings.HasPrefix(dir, poolPrefix) {
				t.Errorf("%s: %s did not come from the pool: runs in %s", what, id, dir)
			}
			out := s.exec(key, id, "sh", "-c", "hostname; date +%s; head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n'; echo; cat /proc/sys/kernel/random/boot_id")
			f := strings.Fields(out.Stdout)
			if len(f) != 4 || f[0] != id {
				t.Fatalf("%s: %s: hostname, clock, entropy: %+v", what, id, out)
			}
			if secs, _ := strconv.ParseInt(f[1], 10, 64); time.Since(time.Unix(secs, 0)).Abs() > 5*time.Second {
				t.Errorf("%s: %s: guest clock %s, host %s", what, id, time.Unix(secs, 0), time.Now())
			}
			unique("urandom", f[2], id)
			unique("boot_id", f[3], id)
			unique("host_ip", r.sb.HostIP, id)
			want := "world public.test"
			if !r.sb.AllowInternetAccess {
				want = "fail"
			}
			s.probe(t, key, id, what+" "+id, []probe{{"http:http://public.test/", want}})
		}
	}

	offset := len(s.logs.String())
	first := s.burst(key, bodies)
	check("first burst", first)
	s.destroyAll(t, key, first)
	offset = s.waitPoolLevel(t, "minimal", offset, n) // it learnt the burst

	handed := strings.Count(s.logs.String(), "handed to a waiting create")
	second := s.burst(key, bodies)
	if got := strings.Count(s.logs.String(), "handed to a waiting create") - handed; got != 0 {
		t.Errorf("%d creates of a burst the pool had learnt waited for a member", got)
	}
	check("second burst", second)
	s.destroyAll(t, key, second)
	s.waitPoolLevel(t, "minimal", offset, n)
	eventually(t, 30*time.Second, func() string { return before.diff(snapshotHost(t, dataDir)) })
}

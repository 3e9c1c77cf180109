package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc"
)

// envChaosKills sets how many times TestChaos kills the agent; fewer than
// the default is refused.
const envChaosKills = "WRENN_CHAOS_KILLS"

// chaosOp is one lifecycle operation TestChaos cuts short.
type chaosOp struct {
	name string
	from string // the status its target starts in; "" for none (create)
	// ok is the status its target has when the operation succeeded
	// ("absent": there is no record; a destroyed sandbox's is kept, and
	// reads stopped); cut short, the target must be in its state before,
	// or error.
	ok      string
	success int // the status code of success
}

var chaosOps = []chaosOp{
	{name: "create", from: "", ok: "running", success: 201},
	{name: "pause", from: "running", ok: "paused", success: 200},
	{name: "resume", from: "paused", ok: "running", success: 200},
	{name: "snapshot", from: "running", ok: "stopped", success: 201},
	{name: "destroy", from: "running", ok: "stopped", success: 204}, // its record kept a while
}

// chaos is TestChaos's world: a control plane and an agent in processes
// of their own, and a way to ask the agent directly what it holds.
type chaos struct {
	t   *testing.T
	a   *apart
	key hdr
	rpc *agentrpc.Client
	n   int // names snapshots
	// survivor runs throughout.
	survivor string
}

// TestChaos (issue 9) kills the host agent with SIGKILL at random points
// inside create, pause, resume, snapshot and destroy, and starts a new one
// each time. After each kill: the operation's sandbox is in its state
// before the operation, in error, or (if the client was told it
// succeeded) in its state after; the control plane's records and the
// agent agree; and the host holds exactly what they say (VMs, run
// directories, templates). At the end, with every sandbox and template
// removed, the host is as it was: processes, namespaces, links, files,
// open files and records. A sandbox that runs throughout survives every
// restart with its VM and its files.
func TestChaos(t *testing.T) {
	kills := 50
	if v := os.Getenv(envChaosKills); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < kills {
			t.Fatalf("%s=%q: want a number of at least %d", envChaosKills, v, kills)
		}
		kills = n
	}
	// Disagreements between the records and the host are settled after
	// one second, not ten: here nothing else is in flight.
	a := startApartEnv(t, "chaos-token", "WRENN_SETTLE_GRACE=1s", "WRENN_RECONCILE_INTERVAL=250ms")
	c := &chaos{t: t, a: a, key: a.s.account("chaos@example.com"), rpc: agentrpc.Dial(a.sock, a.token)}
	s := a.s

	survivor := s.create(c.key, map[string]any{})
	c.survivor = survivor.ID
	s.exec(c.key, survivor.ID, "sh -c 'echo kept > /root/state'")
	survivorPID := qemuPID(t, a.dataDir, survivor.ID)
	before, beforeFDs := settledHost(t, a.dataDir, s.cmd.Process.Pid)

	// How long each operation takes uncut, to spread the kills over it.
	took := map[string]time.Duration{}
	for _, op := range chaosOps {
		target := c.prepare(op.from)
		start := time.Now()
		code, _ := c.run(op, target)
		took[op.name] = time.Since(start)
		if code != op.success {
			t.Fatalf("%s uncut: %d", op.name, code)
		}
		c.cleanUp()
	}
	t.Logf("chaos: uncut %v", took)

	outcomes := map[string]int{}
	for i := range kills {
		op := chaosOps[i%len(chaosOps)]
		target := c.prepare(op.from)
		delay := time.Duration(rand.Int64N(int64(took[op.name])*3/2 + 1))
		done := make(chan [2]string, 1)
		go func() {
			code, id := c.run(op, target)
			done <- [2]string{strconv.Itoa(code), id}
		}()
		time.Sleep(delay)
		a.agent.kill()
		res := <-done
		code, _ := strconv.Atoi(res[0])
		if res[1] != "" {
			target = res[1]
		}
		a.agent = startAgent(t, a.dataDir, a.sock, a.token)
		switch code {
		case op.success, http.StatusBadGateway:
		default:
			t.Fatalf("kill %d, %s after %s: answered %d", i, op.name, delay, code)
		}
		allowed := []string{op.ok}
		if code != op.success {
			allowed = []string{cmp.Or(op.from, "absent"), "error"}
		}
		got := c.converge(i, op, target, allowed)
		outcomes[fmt.Sprintf("%s %d → %s", op.name, code, got)]++
		c.cleanUp()
	}
	keys := make([]string, 0, len(outcomes))
	for k := range outcomes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("chaos: %-32s %d", k, outcomes[k])
	}

	if got := qemuPID(t, a.dataDir, survivor.ID); got != survivorPID {
		t.Errorf("the survivor's VM was replaced: pid %d → %d", survivorPID, got)
	}
	if r := s.exec(c.key, survivor.ID, "cat /root/state"); r.Stdout != "kept\n" {
		t.Errorf("the survivor after %d agent kills: %+v", kills, r)
	}
	eventually(t, time.Minute, func() string {
		if d := before.diff(snapshotHost(t, a.dataDir)); d != "" {
			return d
		}
		if fds := openFiles(t, s.cmd.Process.Pid); !slices.Equal(fds, beforeFDs) {
			return fmt.Sprintf("server's open files: before %q, after %q", beforeFDs, fds)
		}
		return ""
	})
	s.must(204, "DELETE", "/v1/sandboxes/"+survivor.ID, c.key, nil, nil)
	var left []sandbox
	s.must(200, "GET", "/v1/sandboxes", c.key, nil, &left)
	if len(left) != 0 {
		t.Errorf("records left: %+v", left)
	}
}

// prepare makes a sandbox in status from ("" makes none) and returns its ID.
func (c *chaos) prepare(from string) string {
	c.t.Helper()
	s := c.a.s
	switch from {
	case "":
		return ""
	case "running", "paused":
		sb := s.create(c.key, map[string]any{})
		s.exec(c.key, sb.ID, "sh -c 'echo chaos > /root/mark'")
		if from == "paused" {
			s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", c.key, nil, nil)
		}
		return sb.ID
	}
	c.t.Fatalf("cannot prepare a sandbox %s", from)
	return ""
}

// run runs op on the sandbox id and returns the status code and, for a
// create that succeeded, the new sandbox's ID. It is called beside the
// kill: it never fails the test itself.
func (c *chaos) run(op chaosOp, id string) (int, string) {
	var method, path string
	var body any
	switch op.name {
	case "create":
		method, path, body = "POST", "/v1/sandboxes", map[string]any{}
	case "pause", "resume":
		method, path = "POST", "/v1/sandboxes/"+id+"/"+op.name
	case "snapshot":
		c.n++
		method, path, body = "POST", "/v1/snapshots", map[string]any{"sandbox_id": id, "name": "chaos-" + strconv.Itoa(c.n)}
	case "destroy":
		method, path = "DELETE", "/v1/sandboxes/"+id
	}
	code, out, err := c.a.s.send(method, path, c.key, body)
	if err != nil {
		return 0, ""
	}
	if op.name == "create" && code == op.success {
		var sb sandbox
		if json.Unmarshal(out, &sb) == nil {
			return code, sb.ID
		}
	}
	return code, ""
}

// converge waits until the records and the agent agree and the host holds
// what they say, and checks that target ended in one of allowed; it
// returns target's status. It fails the test with what still disagrees
// after a minute.
func (c *chaos) converge(i int, op chaosOp, target string, allowed []string) string {
	c.t.Helper()
	deadline := time.Now().Add(time.Minute)
	status, agreedSince := "", time.Time{}
	for {
		var problem string
		status, problem = c.agreement(target)
		if problem == "" && !slices.Contains(allowed, status) {
			problem = fmt.Sprintf("the %s sandbox %s is %s, want one of %v", op.name, target, status, allowed)
		}
		switch {
		case problem != "":
			agreedSince = time.Time{}
		case agreedSince.IsZero():
			agreedSince = time.Now()
		case time.Since(agreedSince) > time.Second: // several reconciler passes
			return status
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("kill %d, during %s: after a minute: %s\nagent log:\n%s", i, op.name, problem, tail(c.a.agent.logs.String(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// agreement compares the records with what the agent holds and with the
// host, and returns target's status ("absent" without a record) and what
// disagrees, or "".
func (c *chaos) agreement(target string) (string, string) {
	var records []sandbox
	c.a.s.must(200, "GET", "/v1/sandboxes?status=pending,running,paused,stopped,error", c.key, nil, &records)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	held, err := c.rpc.ListSandboxes(ctx)
	if err != nil {
		return "", "list the agent's sandboxes: " + err.Error()
	}
	onHost := map[string]wrenn.SandboxState{}
	for _, st := range held {
		onHost[st.ID] = st
	}
	status := "absent"
	var problems []string
	running, paused := 0, 0
	for _, r := range records {
		if r.ID == target {
			status = r.Status
		}
		st, ok := onHost[r.ID]
		delete(onHost, r.ID)
		switch {
		case r.Status == "running" && ok && st.Running && !st.Unresponsive:
			running++
		case r.Status == "paused" && ok && st.Paused:
			paused++
		case (r.Status == "error" || r.Status == "stopped") && !ok:
		default:
			problems = append(problems, fmt.Sprintf("%s is %s, the agent holds %+v (%v)", r.ID, r.Status, st, ok))
		}
	}
	for id, st := range onHost {
		problems = append(problems, fmt.Sprintf("the agent holds %s (%+v), which has no live record", id, st))
	}

	var tmpls []struct {
		Name string `json:"name"`
	}
	c.a.s.must(200, "GET", "/v1/snapshots?type=snapshot", c.key, nil, &tmpls)
	snaps, err := c.rpc.ListSnapshots(ctx)
	if err != nil {
		return "", "list the agent's snapshots: " + err.Error()
	}
	var recorded, files []string
	for _, t := range tmpls {
		recorded = append(recorded, t.Name)
	}
	for _, s := range snaps {
		files = append(files, s.Name)
	}
	slices.Sort(recorded)
	slices.Sort(files)
	if !slices.Equal(recorded, files) {
		problems = append(problems, fmt.Sprintf("templates recorded %q, on the host %q", recorded, files))
	}
	if hidden, _ := filepath.Glob(filepath.Join(c.a.dataDir, "templates", "*", ".*")); len(hidden) != 0 {
		problems = append(problems, fmt.Sprintf("unfinished templates %q", hidden))
	}

	// Run directories by their records: each running sandbox's holds one
	// VM, each paused one's none, the pool's at most maxPoolMembers (it
	// follows demand) with one VM each; nothing else.
	dirs, _ := filepath.Glob(filepath.Join(c.a.dataDir, "sandboxes", "*"))
	members, vms := 0, 0
	for _, dir := range dirs {
		var rec struct {
			ID   string `json:"id"`
			Pool bool   `json:"pool"`
		}
		b, err := os.ReadFile(filepath.Join(dir, "state.json"))
		if err != nil || json.Unmarshal(b, &rec) != nil {
			problems = append(problems, fmt.Sprintf("run directory %s has no record", filepath.Base(dir)))
			continue
		}
		n := len(qemuPIDs(dir))
		vms += n
		want := 1
		switch {
		case rec.Pool:
			members++
		case slices.ContainsFunc(records, func(r sandbox) bool { return r.ID == rec.ID && r.Status == "paused" }):
			want = 0
		case !slices.ContainsFunc(records, func(r sandbox) bool { return r.ID == rec.ID && r.Status == "running" }):
			problems = append(problems, fmt.Sprintf("run directory %s holds %s, which is neither running nor paused", filepath.Base(dir), rec.ID))
		}
		if n != want {
			problems = append(problems, fmt.Sprintf("run directory %s (%s) has %d VMs, want %d", filepath.Base(dir), rec.ID, n, want))
		}
	}
	if members > maxPoolMembers {
		problems = append(problems, fmt.Sprintf("%d pool members", members))
	}
	if len(dirs)-members != running+paused {
		problems = append(problems, fmt.Sprintf("%d run directories of sandboxes for %d running and %d paused", len(dirs)-members, running, paused))
	}
	host := snapshotHost(c.t, c.a.dataDir)
	if all := len(host.qemus) + host.poolQemus; all != vms {
		problems = append(problems, fmt.Sprintf("%d VMs, %d of them in run directories", all, vms))
	}
	return status, strings.Join(problems, "; ")
}

// cleanUp removes every sandbox but the survivor and every template, so
// that each kill starts from a host holding little.
func (c *chaos) cleanUp() {
	c.t.Helper()
	s := c.a.s
	var records []sandbox
	s.must(200, "GET", "/v1/sandboxes", c.key, nil, &records)
	for _, r := range records {
		if r.ID != c.survivor {
			s.must(204, "DELETE", "/v1/sandboxes/"+r.ID, c.key, nil, nil)
		}
	}
	var tmpls []struct {
		Name string `json:"name"`
	}
	s.must(200, "GET", "/v1/snapshots?type=snapshot", c.key, nil, &tmpls)
	for _, t := range tmpls {
		s.must(204, "DELETE", "/v1/snapshots/"+t.Name, c.key, nil, nil)
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

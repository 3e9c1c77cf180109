package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/store"
)

// hostLossGrace is the server's WRENN_MISSING_GRACE in TestFleetHostLoss:
// long enough for a killed agent to be started again within it, short
// enough to wait past.
const hostLossGrace = 30 * time.Second

// TestFleetHostLoss (issue 13, host loss): a real server and two joined
// agents, each in a network namespace of its own, with real VMs. kill -9
// of one agent: within 10 s its host is unreachable and its running
// sandbox reads missing (its paused one stays paused, the other host's
// runs on), and a call on it is a 502 that says so. The agent started
// again within the grace: the sandbox is running again, the same VM with
// its files. Killed again: a missing sandbox destroyed meanwhile is
// stopped at once, and past the grace the other is error. The agent
// started again after that ends both VMs on the host: no QEMU and no run
// directory of theirs is left.
func TestFleetHostLoss(t *testing.T) {
	requireVMs(t)
	chrome := requireChromium(t)
	// Two hosts, tagged so that each create says where it goes.
	f := startFleet(t, 0, 2, nil, "WRENN_HOST_DEAD_AFTER=5s", "WRENN_MISSING_GRACE="+hostLossGrace.String())
	s, key, agents := f.s, f.key, f.agents
	for i, tag := range []string{"kept", "lost"} {
		f.tag(i, tag)
	}
	lost := agents[1]
	sandboxStatus := func(id string) string {
		var sb sandbox
		s.must(200, "GET", "/v1/sandboxes/"+id, key, nil, &sb)
		return sb.Status
	}
	// waitFor polls until what reads want, failing after within.
	waitFor := func(what string, read func() string, want string, within time.Duration) time.Duration {
		t.Helper()
		start := time.Now()
		for got := read(); got != want; got = read() {
			if time.Since(start) > within {
				t.Fatalf("%s is %s after %v, want %s\nserver:\n%s", what, got, within, want, s.logs)
			}
			time.Sleep(100 * time.Millisecond)
		}
		return time.Since(start)
	}
	on := func(tag string) map[string]any {
		return map[string]any{"template": "minimal", "memory_mb": 256, "timeout_sec": 0, "host_tags": []string{tag}}
	}
	// The server learns the base templates from the agents it dials: the
	// first create may come before it has.
	running := f.create(on("lost"))
	if r := s.exec(key, running.ID, "sh", "-c", "echo kept-through-loss > /root/mark"); r.ExitCode != 0 {
		t.Fatalf("write a file: %+v", r)
	}
	paused := s.create(key, on("lost"))
	s.must(200, "POST", "/v1/sandboxes/"+paused.ID+"/pause", key, nil, nil)
	other := s.create(key, on("kept"))
	// The console, logged in, to show the sandbox while it is missing.
	requireConsoleBuilt(t, s)
	shots := os.Getenv(envConsoleShots)
	if shots == "" {
		shots = t.TempDir()
	}
	b := newBrowser(t, chrome, s.url, shots)
	b.navigate("/login")
	b.typeInto("#auth-email", "admin@example.com")
	b.typeInto("#auth-password", "sandbox-tests")
	b.click("#auth-submit")
	b.wait("the sandbox list after login", `document.querySelector('#sandboxes-table')`)

	// kill -9: unreachable and missing within 10 s.
	lost.proc.kill()
	killed := time.Now()
	waitFor("the lost host", func() string { return f.hostStatus(1) }, "unreachable", 10*time.Second)
	waitFor("its running sandbox", func() string { return sandboxStatus(running.ID) }, "missing", 10*time.Second-time.Since(killed))
	t.Logf("unreachable and missing %v after the kill", time.Since(killed).Round(100*time.Millisecond))
	if st := sandboxStatus(paused.ID); st != "paused" {
		t.Fatalf("the lost host's paused sandbox is %s", st)
	}
	if st := sandboxStatus(other.ID); st != "running" {
		t.Fatalf("the other host's sandbox is %s", st)
	}
	var list []sandbox
	code, out := s.do("GET", "/v1/sandboxes", key, nil)
	if code != 200 || json.Unmarshal(out, &list) != nil || !slices.ContainsFunc(list, func(sb sandbox) bool {
		return sb.ID == running.ID && sb.Status == "missing"
	}) {
		t.Fatalf("the list does not show the missing sandbox: %d %s", code, out)
	}
	code, out = s.do("POST", "/v1/sandboxes/"+running.ID+"/exec", key, map[string]any{"cmd": "true"})
	if code != 502 || errorCode(t, out) != "host_agent_error" || !strings.Contains(string(out), "sandbox is missing: its host "+lost.hostID+" is unreachable") {
		t.Fatalf("exec in a missing sandbox = %d: %s", code, out)
	}
	code, out = s.do("POST", "/v1/sandboxes/"+running.ID+"/resume", key, nil)
	if code != 409 {
		t.Fatalf("resume of a missing sandbox = %d: %s", code, out)
	}
	if r := s.exec(key, other.ID, "true"); r.ExitCode != 0 {
		t.Fatalf("the other host's sandbox: %+v", r)
	}
	// The console shows it missing, and why, instead of its terminal.
	b.navigate("/sandboxes/" + running.ID)
	b.waitStatus("missing")
	b.wait("the missing sandbox's notice", `document.querySelector('#sandbox-missing') && !document.querySelector('#terminal')`)
	if got := b.text("#sandbox-missing"); !strings.Contains(got, "its host stopped answering") {
		t.Fatalf("the console says %q of a missing sandbox", got)
	}
	b.shot("hostloss-missing")

	// Back within the grace: running again, the same VM, files and all.
	lost.start()
	back := waitFor("the sandbox after its agent's restart", func() string { return sandboxStatus(running.ID) }, "running", hostLossGrace)
	t.Logf("running again %v after the restart began, %v after the kill", back.Round(100*time.Millisecond),
		time.Since(killed).Round(100*time.Millisecond))
	if f.hostStatus(1) != "online" {
		t.Fatalf("the host is %s with its sandbox running again", f.hostStatus(1))
	}
	if r := s.exec(key, running.ID, "cat", "/root/mark"); r.ExitCode != 0 || r.Stdout != "kept-through-loss\n" {
		t.Fatalf("exec after the host came back: %+v", r)
	}
	doomed := s.create(key, on("lost"))

	// Lost again, past the grace: a missing sandbox destroyed meanwhile
	// is stopped at once; the other one is error after the grace.
	lost.proc.kill()
	killed = time.Now()
	waitFor("the sandbox to destroy", func() string { return sandboxStatus(doomed.ID) }, "missing", 10*time.Second)
	s.must(204, "DELETE", "/v1/sandboxes/"+doomed.ID, key, nil, nil)
	code, out = s.do("GET", "/v1/sandboxes/"+doomed.ID, key, nil)
	if code != 200 || !strings.Contains(string(out), `"status":"stopped"`) {
		t.Fatalf("a destroyed missing sandbox reads %d %s", code, out)
	}
	waitFor("the sandbox past the grace", func() string { return sandboxStatus(running.ID) }, "error", 10*time.Second+hostLossGrace+5*time.Second)
	t.Logf("error %v after the kill (grace %v)", time.Since(killed).Round(100*time.Millisecond), hostLossGrace)
	if st := sandboxStatus(paused.ID); st != "paused" {
		t.Fatalf("the lost host's paused sandbox is %s after the grace", st)
	}
	// Both VMs still run: the host is gone, not the machine.
	for _, id := range []string{running.ID, doomed.ID} {
		if !slices.ContainsFunc(snapshotHost(t, lost.dataDir).qemus, func(q string) bool { return strings.Contains(q, id) }) {
			t.Fatalf("the VM of %s died with its agent: the test shows nothing", id)
		}
	}

	// The agent back after the grace ends what the control plane gave
	// up on: no QEMU, no run directory, and its agent holds only the
	// paused sandbox.
	lost.start()
	waitFor("the lost host", func() string { return f.hostStatus(1) }, "online", 15*time.Second)
	db, err := store.Open(t.Context(), store.Config{SQLitePath: filepath.Join(s.dataDir, "wrenn.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	link := agentLink(t, db)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	rpc, err := link.DialAgent(ctx, lost.hostID)
	if err != nil {
		t.Fatal(err)
	}
	left := func() string {
		held, err := rpc.ListSandboxes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, h := range held {
			ids = append(ids, h.ID)
		}
		st := snapshotHost(t, lost.dataDir)
		for _, id := range []string{running.ID, doomed.ID} {
			for _, q := range st.qemus {
				if strings.Contains(q, id) {
					ids = append(ids, "qemu of "+id)
				}
			}
			if slices.Contains(st.runDirs, id) {
				ids = append(ids, "run dir of "+id)
			}
		}
		return strings.Join(ids, ", ")
	}
	waitFor("what the returned host holds", left, paused.ID, 20*time.Second)
	if n := len(snapshotHost(t, lost.dataDir).qemus); n != 0 {
		t.Fatalf("the returned host runs %d VMs, want none (its one sandbox is paused)", n)
	}
	if !strings.Contains(s.logs.String(), "the host answers again") {
		t.Errorf("the server does not report the host's return\n%s", s.logs)
	}
	// The paused sandbox resumes on its host; the error one is destroyed.
	s.must(200, "POST", "/v1/sandboxes/"+paused.ID+"/resume", key, nil, nil)
	if r := s.exec(key, paused.ID, "true"); r.ExitCode != 0 {
		t.Fatalf("the paused sandbox after its host's return: %+v", r)
	}
	for _, id := range []string{running.ID, paused.ID, other.ID} {
		s.must(204, "DELETE", "/v1/sandboxes/"+id, key, nil, nil)
	}
}

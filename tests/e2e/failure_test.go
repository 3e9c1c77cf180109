package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// qemuPID finds the QEMU process of sandbox id.
func qemuPID(t testing.TB, dataDir, id string) int {
	t.Helper()
	pids := qemuPIDs(runDirOf(t, dataDir, id))
	if len(pids) != 1 {
		t.Fatalf("sandbox %s has QEMU processes %v, want one", id, pids)
	}
	return pids[0]
}

// TestFailures: a VM killed from outside turns its sandbox into error and
// frees what it held; killing the host agent leaves the other sandboxes
// running, and a new agent adopts them; restarting the control plane loses
// nothing.
func TestFailures(t *testing.T) {
	a := startApart(t, "failure-token")
	s, dataDir := a.s, a.dataDir
	key := s.account("fail@example.com")

	victim := s.create(key, map[string]any{})
	survivor := s.create(key, map[string]any{})
	s.exec(key, survivor.ID, "sh -c 'echo kept > /root/state'")

	// Kill the victim's VM behind everyone's back.
	victimDir := runDirOf(t, dataDir, victim.ID)
	if err := syscall.Kill(qemuPID(t, dataDir, victim.ID), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() string {
		var sb sandbox
		s.must(200, "GET", "/v1/sandboxes/"+victim.ID, key, nil, &sb)
		if sb.Status != "error" {
			return "victim is " + sb.Status
		}
		if _, err := os.Stat(victimDir); !os.IsNotExist(err) {
			return "victim's run dir is still there"
		}
		return ""
	})
	if got, _ := s.do("POST", "/v1/sandboxes/"+victim.ID+"/exec", key, map[string]any{"cmd": "true"}); got != 409 {
		t.Errorf("exec in an errored sandbox = %d, want 409", got)
	}
	s.must(204, "DELETE", "/v1/sandboxes/"+victim.ID, key, nil, nil)

	// Kill the agent: the survivor's VM keeps running; the API says 502.
	pid := qemuPID(t, dataDir, survivor.ID)
	a.agent.kill()
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("the survivor's VM died with the agent: %v", err)
	}
	if got, body := s.do("POST", "/v1/sandboxes/"+survivor.ID+"/exec", key, map[string]any{"cmd": "true"}); got != 502 {
		t.Errorf("exec with the agent down = %d %s, want 502", got, body)
	}
	a.agent = startAgent(t, dataDir, a.sock, a.token) // stopped at cleanup
	if r := s.exec(key, survivor.ID, "cat /root/state"); r.Stdout != "kept\n" {
		t.Fatalf("after the agent restart: %+v", r)
	}
	if got := qemuPID(t, dataDir, survivor.ID); got != pid {
		t.Errorf("the survivor's VM was replaced: pid %d → %d", pid, got)
	}

	// Restart the control plane: the sandbox is still there and usable.
	s.stop()
	s = a.startServer()
	var sb sandbox
	s.must(200, "GET", "/v1/sandboxes/"+survivor.ID, key, nil, &sb)
	if sb.Status != "running" {
		t.Fatalf("after a control plane restart the survivor is %s", sb.Status)
	}
	if r := s.exec(key, survivor.ID, "cat /root/state"); r.Stdout != "kept\n" {
		t.Fatalf("after the control plane restart: %+v", r)
	}
	s.must(204, "DELETE", "/v1/sandboxes/"+survivor.ID, key, nil, nil)
}

// TestLeaks: 50 create/exec/destroy cycles, every fifth with a pause and
// resume, leave the host as it was:
// processes, network namespaces, interfaces, run directories and the
// agent's open file descriptors.
func TestLeaks(t *testing.T) {
	if testing.Short() {
		t.Skip("50 VM cycles")
	}
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir)
	key := s.account("leak@example.com")
	// One cycle first, so lazily opened things (connections, pools) exist
	// before the baseline.
	warm := s.create(key, map[string]any{})
	s.must(204, "DELETE", "/v1/sandboxes/"+warm.ID, key, nil, nil)
	s.waitPoolReady(t, 2) // the create took the pool's sandbox: refilled
	fds := func() []string {
		dir := fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range ents {
			target, _ := os.Readlink(filepath.Join(dir, e.Name()))
			// The store's connection pool grows to its bound when reads
			// overlap (each SQLite connection holds the db and its WAL):
			// that is the pool, not a sandbox's leak.
			if strings.Contains(target, "wrenn.db") {
				continue
			}
			out = append(out, e.Name()+"→"+target)
		}
		return out
	}
	var before hostState
	var beforeFDs []string
	eventually(t, 30*time.Second, func() string {
		before, beforeFDs = snapshotHost(t, dataDir), fds()
		time.Sleep(time.Second)
		if d := before.diff(snapshotHost(t, dataDir)); d != "" {
			return "host not settled: " + d
		}
		// What the agent holds open settles too: a pool member starting
		// or a sandbox's metrics probe still open is not the baseline.
		if now := fds(); !slices.Equal(fdKinds(beforeFDs), fdKinds(now)) {
			return fmt.Sprintf("agent fds not settled: %v, then %v", beforeFDs, now)
		}
		return ""
	})
	for i := range 50 {
		sb := s.create(key, map[string]any{})
		if r := s.exec(key, sb.ID, "echo "+strconv.Itoa(i)); r.Stdout != strconv.Itoa(i)+"\n" {
			t.Fatalf("cycle %d: %+v", i, r)
		}
		if i%5 == 0 { // pause and resume leak nothing either
			s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", key, nil, nil)
			s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/resume", key, nil, nil)
		}
		s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	}
	s.client.CloseIdleConnections()
	eventually(t, 30*time.Second, func() string {
		if d := before.diff(snapshotHost(t, dataDir)); d != "" {
			return d
		}
		if n := fds(); len(n) != len(beforeFDs) {
			return fmt.Sprintf("agent fds: %d before %v, %d after %v", len(beforeFDs), beforeFDs, len(n), n)
		}
		return ""
	})
}

// fdKinds is what fds point at, socket numbers left out, sorted: the
// shape of what a process holds open, not which connections.
func fdKinds(fds []string) []string {
	out := make([]string, len(fds))
	for i, fd := range fds {
		_, target, _ := strings.Cut(fd, "→")
		if strings.HasPrefix(target, "socket:") {
			target = "socket"
		}
		out[i] = target
	}
	slices.Sort(out)
	return out
}

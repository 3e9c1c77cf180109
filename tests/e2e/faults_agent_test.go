package e2e

import (
	"testing"
	"time"
)

// TestUnresponsiveGuest (issue 9, bug 7): a fork bomb stops a guest from
// answering. The agent's health checks notice, end its VM once the grace
// period has passed, and the sandbox reads error; the host gets its CPU
// back and another sandbox is untouched.
func TestUnresponsiveGuest(t *testing.T) {
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir)
	key := s.account("bomb@example.com")
	bystander := s.create(key, map[string]any{})
	// Little memory, so the bomb chokes the guest sooner.
	victim := s.create(key, map[string]any{"memory_mb": 128})
	victimDir := runDirOf(t, dataDir, victim.ID)

	// Detached and silent, so the exec itself returns at once.
	bomb := `setsid sh -c 'b() { b | b & }; b' </dev/null >/dev/null 2>&1 &`
	if r := s.exec(key, victim.ID, bomb); r.ExitCode != 0 {
		t.Fatalf("starting the fork bomb: %+v", r)
	}
	eventually(t, 5*time.Minute, func() string {
		var sb sandbox
		s.must(200, "GET", "/v1/sandboxes/"+victim.ID, key, nil, &sb)
		if sb.Status != "error" {
			return "the fork-bombed sandbox is " + sb.Status
		}
		if pids := qemuPIDs(victimDir); len(pids) != 0 {
			return "its VM still runs"
		}
		return ""
	})
	if got, _ := s.do("POST", "/v1/sandboxes/"+victim.ID+"/exec", key, map[string]any{"cmd": "true"}); got != 409 {
		t.Errorf("exec in the ended sandbox = %d, want 409", got)
	}
	if r := s.exec(key, bystander.ID, "echo fine"); r.Stdout != "fine\n" {
		t.Errorf("the other sandbox: %+v", r)
	}
	s.must(204, "DELETE", "/v1/sandboxes/"+victim.ID, key, nil, nil)
	s.must(204, "DELETE", "/v1/sandboxes/"+bystander.ID, key, nil, nil)
}

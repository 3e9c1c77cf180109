package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// TestUnresponsiveGuest (issue 9, bug 7; issue 10): a guest that stops
// answering is noticed by the agent's health checks, its VM is ended once
// the grace period has passed and the sandbox reads error; another sandbox
// is untouched. A frozen VM (its QEMU stopped) is the guest that certainly
// does not answer. A fork bomb is the guest a user makes: with the VMM
// confined to its sandbox's share it may or may not stop answering, but
// it never reads running while it does not answer.
func TestUnresponsiveGuest(t *testing.T) {
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir)
	key := s.account("bomb@example.com")
	bystander := s.create(key, map[string]any{})

	frozen := s.create(key, map[string]any{})
	frozenDir := runDirOf(t, dataDir, frozen.ID)
	for _, pid := range qemuPIDs(frozenDir) {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 3*time.Minute, func() string {
		var sb sandbox
		s.must(200, "GET", "/v1/sandboxes/"+frozen.ID, key, nil, &sb)
		if sb.Status != "error" {
			return "the frozen sandbox is " + sb.Status
		}
		if pids := qemuPIDs(frozenDir); len(pids) != 0 {
			return "its VM still runs"
		}
		return ""
	})
	if got, _ := s.do("POST", "/v1/sandboxes/"+frozen.ID+"/exec", key, map[string]any{"cmd": "true"}); got != 409 {
		t.Errorf("exec in the ended sandbox = %d, want 409", got)
	}

	// Little memory, so the bomb chokes the guest sooner.
	victim := s.create(key, map[string]any{"memory_mb": 128})
	victimDir := runDirOf(t, dataDir, victim.ID)
	// Detached and silent, so the exec itself returns at once.
	bomb := `setsid sh -c 'b() { b | b & }; b' </dev/null >/dev/null 2>&1 &`
	if r := s.exec(key, victim.ID, bomb); r.ExitCode != 0 {
		t.Fatalf("starting the fork bomb: %+v", r)
	}
	// Within the health checks' grace a guest that stopped answering may
	// still read running (its exec refused while the agent waits to see
	// whether it recovers); after it, it reads error or it answers.
	var outcome string
	eventually(t, 3*time.Minute, func() string {
		var sb sandbox
		s.must(200, "GET", "/v1/sandboxes/"+victim.ID, key, nil, &sb)
		switch sb.Status {
		case "error":
			if pids := qemuPIDs(victimDir); len(pids) != 0 {
				return "it reads error but its VM still runs"
			}
			outcome = "error"
			return ""
		case "running":
			code, body := s.do("POST", "/v1/sandboxes/"+victim.ID+"/exec", key, map[string]any{"cmd": "true", "timeout_sec": 60})
			if code == 200 {
				outcome = "running, and answering"
				return ""
			}
			return fmt.Sprintf("it reads running but its exec answered %d %s", code, body)
		}
		return "it reads " + sb.Status
	})
	t.Logf("the fork-bombed sandbox: %s", outcome)

	if r := s.exec(key, bystander.ID, "echo fine"); r.Stdout != "fine\n" {
		t.Errorf("the other sandbox: %+v", r)
	}
	for _, id := range []string{frozen.ID, victim.ID, bystander.ID} {
		s.must(204, "DELETE", "/v1/sandboxes/"+id, key, nil, nil)
	}
}

package e2e

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// TestQuotaAndAdmission drives team quotas and host admission through a
// real server and real VMs: a team at its running-sandbox limit gets a 429
// that names the limit and can create again once it destroys one; a paused
// sandbox does not count, and resuming it checks again; a size over the
// operator's maximum is a 400; and the host refuses, with a 503 naming the
// vCPUs, a sandbox that does not fit beside what it runs, pool member
// included, and admits it once there is room.
func TestQuotaAndAdmission(t *testing.T) {
	dataDir := shortTempDir(t)
	// Three vCPUs allocatable, whatever the cores: 3.5/cores × cores, floored.
	overcommit := fmt.Sprint(3.5 / float64(runtime.NumCPU()))
	s := startVMServer(t, dataDir, "WRENN_QUOTA_SANDBOXES=2", "WRENN_CPU_OVERCOMMIT="+overcommit)
	key := s.account("quota@example.com")
	refused := func(want int, body map[string]any, path, code, msg string) {
		t.Helper()
		got, out := s.do("POST", path, key, body)
		if got != want || errorCode(t, out) != code || !strings.Contains(errorMessage(t, out), msg) {
			t.Fatalf("POST %s %v = %d %s, want %d %s %q", path, body, got, out, want, code, msg)
		}
	}

	a := s.create(key, map[string]any{})
	b := s.create(key, map[string]any{})
	refused(429, map[string]any{}, "/v1/sandboxes", "quota_exceeded", "team quota: 2 running sandboxes")
	refused(400, map[string]any{"vcpus": 9}, "/v1/sandboxes", "invalid_request", "between 1 and 8 (this server's maximum)")
	refused(400, map[string]any{"memory_mb": 9000}, "/v1/sandboxes", "invalid_request", "between 128 and 8192 (this server's maximum)")
	s.must(204, "DELETE", "/v1/sandboxes/"+a.ID, key, nil, nil)
	c := s.create(key, map[string]any{})
	if r := s.exec(key, c.ID, "echo", "room"); r.Stdout != "room\n" {
		t.Fatalf("exec in the sandbox made after a destroy: %+v", r)
	}

	s.must(200, "POST", "/v1/sandboxes/"+b.ID+"/pause", key, nil, nil)
	d := s.create(key, map[string]any{}) // b holds no CPU or memory now
	refused(429, nil, "/v1/sandboxes/"+b.ID+"/resume", "quota_exceeded", "team quota: 2 running sandboxes")
	s.must(204, "DELETE", "/v1/sandboxes/"+c.ID, key, nil, nil)
	s.must(200, "POST", "/v1/sandboxes/"+b.ID+"/resume", key, nil, nil)

	// b and d run, one vCPU each, and the warm pool may hold one more: a
	// 2-vCPU sandbox of another team does not fit in three.
	other := s.account("other@example.com")
	got, out := s.do("POST", "/v1/sandboxes", other, map[string]any{"vcpus": 2})
	if got != 503 || errorCode(t, out) != "host_full" || !strings.Contains(errorMessage(t, out), "the sandbox needs 2 vCPUs") {
		t.Fatalf("a sandbox the host cannot fit: %d %s", got, out)
	}
	s.must(204, "DELETE", "/v1/sandboxes/"+b.ID, key, nil, nil)
	s.must(204, "DELETE", "/v1/sandboxes/"+d.ID, key, nil, nil)
	e := s.create(other, map[string]any{"vcpus": 2})
	s.must(204, "DELETE", "/v1/sandboxes/"+e.ID, other, nil, nil)
}

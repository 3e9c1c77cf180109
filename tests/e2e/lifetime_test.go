package e2e

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

type lifetime struct {
	ID         string            `json:"id"`
	Status     string            `json:"status"`
	TimeoutSec int               `json:"timeout_sec"`
	AutoPause  bool              `json:"auto_pause"`
	Metadata   map[string]string `json:"metadata"`
}

// TestLifetimes drives issue 11's lifetimes with real VMs: a command
// longer than the sandbox's inactivity timeout runs to its end; a capsule
// its timeout paused is brought back, files intact, by the next exec; a
// destroyed sandbox reads stopped; create's envs and metadata.
func TestLifetimes(t *testing.T) {
	s := startVMServer(t, shortTempDir(t), "WRENN_RECONCILE_INTERVAL=500ms")
	key := s.account("lifetimes@example.com")

	// Every list here asks by status: a GET of one sandbox is activity.
	statusOf := func(id string) string {
		t.Helper()
		var list []lifetime
		s.must(200, "GET", "/v1/capsules?status=running,paused,stopped,error", key, nil, &list)
		for _, sb := range list {
			if sb.ID == id {
				return sb.Status
			}
		}
		return "absent"
	}

	t.Run("a command outlives the timeout", func(t *testing.T) {
		sb := s.create(key, map[string]any{"timeout_sec": 5})
		var r execResult
		s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/exec", key,
			map[string]any{"cmd": "sleep 20; echo done", "timeout_sec": 60}, &r)
		if r.Stdout != "done\n" || r.ExitCode != 0 {
			t.Fatalf("sleep 20 in a sandbox with timeout_sec 5: %+v", r)
		}
		if st := statusOf(sb.ID); st != "running" {
			t.Errorf("after the command: %s, want running", st)
		}
		// Idle now: it goes, and reads stopped.
		eventually(t, 30*time.Second, func() string {
			if st := statusOf(sb.ID); st != "stopped" {
				return "idle sandbox is " + st
			}
			return ""
		})
	})

	t.Run("auto-pause and resume on exec", func(t *testing.T) {
		var sb lifetime
		s.must(201, "POST", "/v1/capsules", key, map[string]any{"timeout_sec": 3}, &sb)
		if !sb.AutoPause {
			t.Fatalf("capsule without auto_pause: %+v", sb)
		}
		if r := s.exec(key, sb.ID, "sh -c 'echo kept > /root/state; sleep 1000 >/dev/null 2>&1 &'"); r.ExitCode != 0 {
			t.Fatalf("write state: %+v", r)
		}
		eventually(t, 60*time.Second, func() string {
			if st := statusOf(sb.ID); st != "paused" {
				return "idle capsule is " + st
			}
			return ""
		})
		var r execResult
		s.must(200, "POST", "/v1/capsules/"+sb.ID+"/exec", key,
			map[string]any{"cmd": "sh", "args": []string{"-c", "cat /root/state; pgrep -x sleep >/dev/null && echo alive"}}, &r)
		if r.Stdout != "kept\nalive\n" {
			t.Errorf("exec in an auto-paused capsule: %+v", r)
		}
		if st := statusOf(sb.ID); st != "running" {
			t.Errorf("after exec: %s, want running", st)
		}
		// Paused by a client, it stays paused.
		s.must(200, "POST", "/v1/capsules/"+sb.ID+"/pause", key, nil, nil)
		if code, body := s.do("POST", "/v1/capsules/"+sb.ID+"/exec", key, map[string]any{"cmd": "true"}); code != 409 {
			t.Errorf("exec in a paused capsule = %d %s, want 409", code, body)
		}
		s.must(204, "DELETE", "/v1/capsules/"+sb.ID, key, nil, nil)
	})

	t.Run("destroyed reads stopped", func(t *testing.T) {
		sb := s.create(key, map[string]any{})
		s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
		var got lifetime
		s.must(200, "GET", "/v1/sandboxes/"+sb.ID, key, nil, &got)
		if got.Status != "stopped" {
			t.Errorf("destroyed sandbox reads %s", got.Status)
		}
		var list []lifetime
		s.must(200, "GET", "/v1/sandboxes", key, nil, &list)
		for _, l := range list {
			if l.ID == sb.ID {
				t.Errorf("the default list holds a stopped sandbox")
			}
		}
		if code, _ := s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil); code != 404 {
			t.Errorf("destroy again = %d, want 404", code)
		}
	})

	t.Run("envs and metadata", func(t *testing.T) {
		var sb lifetime
		s.must(201, "POST", "/v1/sandboxes", key, map[string]any{
			"envs":     map[string]string{"GREETING": "hello there", "PATH_EXTRA": "/opt"},
			"metadata": map[string]string{"owner": "lifetimes", "run": "1"},
		}, &sb)
		if sb.Metadata["owner"] != "lifetimes" {
			t.Errorf("metadata: %+v", sb.Metadata)
		}
		if r := s.exec(key, sb.ID, `echo "$GREETING $PATH_EXTRA"`); r.Stdout != "hello there /opt\n" {
			t.Errorf("envs in exec: %+v", r)
		}
		var list []lifetime
		s.must(200, "GET", "/v1/sandboxes?metadata="+url.QueryEscape("owner=lifetimes&run=1"), key, nil, &list)
		if len(list) != 1 || list[0].ID != sb.ID {
			t.Errorf("metadata filter: %+v", list)
		}
		s.must(200, "GET", "/v1/sandboxes?metadata="+url.QueryEscape("owner=someone"), key, nil, &list)
		if len(list) != 0 {
			t.Errorf("metadata filter matched another owner: %+v", list)
		}
		if code, body := s.do("POST", "/v1/sandboxes", key, map[string]any{"envs": map[string]string{"A=B": "x"}}); code != 400 || !strings.Contains(string(body), "envs") {
			t.Errorf("bad env name = %d %s", code, body)
		}
		s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	})
}

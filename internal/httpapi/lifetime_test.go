package httpapi_test

import (
	"context"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

type lifetimeResp struct {
	ID         string            `json:"id"`
	Status     string            `json:"status"`
	TimeoutSec int               `json:"timeout_sec"`
	AutoPause  bool              `json:"auto_pause"`
	Metadata   map[string]string `json:"metadata"`
}

// TestCapsulesAlias: /v1/capsules serves the sandbox surface, with the
// later product's defaults for what inactivity does.
func TestCapsulesAlias(t *testing.T) {
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: fakeHost()})
	key := e.newKey(e.signup("c@example.com").Token)
	var sb, cap lifetimeResp
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{}, &sb)
	e.must(201, "POST", "/v1/capsules", apiKey(key), map[string]any{}, &cap)
	if sb.AutoPause || sb.TimeoutSec != 300 {
		t.Errorf("/v1/sandboxes defaults: %+v", sb)
	}
	if !cap.AutoPause || cap.TimeoutSec != 0 {
		t.Errorf("/v1/capsules defaults: %+v", cap)
	}
	var both []lifetimeResp
	e.must(200, "GET", "/v1/capsules", apiKey(key), nil, &both)
	if len(both) != 2 {
		t.Errorf("capsules lists %d, want 2", len(both))
	}
	// Either name reaches either sandbox.
	e.must(200, "GET", "/v1/capsules/"+sb.ID, apiKey(key), nil, nil)
	e.must(200, "POST", "/v1/capsules/"+sb.ID+"/exec", apiKey(key), map[string]any{"cmd": "echo", "args": []string{"x"}}, nil)
	var explicit lifetimeResp
	e.must(201, "POST", "/v1/capsules", apiKey(key), map[string]any{"auto_pause": false, "timeout_sec": 60}, &explicit)
	if explicit.AutoPause || explicit.TimeoutSec != 60 {
		t.Errorf("explicit: %+v", explicit)
	}
	e.must(204, "DELETE", "/v1/capsules/"+cap.ID, apiKey(key), nil, nil)
	if got, body := e.do("PUT", "/v1/capsules/"+cap.ID, apiKey(key), nil); got != 405 || errCode(t, body) != "method_not_allowed" {
		t.Errorf("PUT capsule = %d %s", got, body)
	}
}

// TestCreateEnvsAndMetadata: envs reach every command (a command's own
// win), metadata is returned and filters the list, and bad ones are 400s.
func TestCreateEnvsAndMetadata(t *testing.T) {
	var mu sync.Mutex
	var envs []map[string]string
	agent := fakeHost()
	agent.ExecFn = func(_ context.Context, _ string, req wrenn.ExecRequest) (*wrenn.ExecResult, error) {
		mu.Lock()
		envs = append(envs, req.Env)
		mu.Unlock()
		return &wrenn.ExecResult{}, nil
	}
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: agent})
	key := e.newKey(e.signup("m@example.com").Token)
	var a, b lifetimeResp
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{
		"envs": map[string]string{"A": "1", "B": "2"}, "metadata": map[string]string{"team": "x", "env": "prod"}}, &a)
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{"metadata": map[string]string{"team": "x"}}, &b)
	if a.Metadata["env"] != "prod" || b.Metadata["team"] != "x" {
		t.Errorf("metadata: %+v %+v", a, b)
	}
	e.must(200, "POST", "/v1/sandboxes/"+a.ID+"/exec", apiKey(key), map[string]any{"cmd": "env"}, nil)
	if len(envs) != 1 || envs[0]["A"] != "1" || envs[0]["B"] != "2" {
		t.Errorf("exec env: %v", envs)
	}
	var list []lifetimeResp
	for _, tc := range []struct {
		filter string
		want   int
	}{{"team=x", 2}, {"team=x&env=prod", 1}, {"team=y", 0}, {"", 2}} {
		e.must(200, "GET", "/v1/sandboxes?metadata="+url.QueryEscape(tc.filter), apiKey(key), nil, &list)
		if len(list) != tc.want {
			t.Errorf("metadata=%s lists %d, want %d", tc.filter, len(list), tc.want)
		}
	}
	for name, body := range map[string]any{
		"env name with =":  map[string]any{"envs": map[string]string{"A=B": "1"}},
		"empty env name":   map[string]any{"envs": map[string]string{"": "1"}},
		"NUL in metadata":  map[string]any{"metadata": map[string]string{"k": "a\x00b"}},
		"metadata not map": `{"metadata": ["a"]}`,
	} {
		if got, out := e.do("POST", "/v1/sandboxes", apiKey(key), body); got != 400 || errCode(t, out) != "invalid_request" {
			t.Errorf("%s: %d %s, want 400", name, got, out)
		}
	}
	if got, out := e.do("GET", "/v1/sandboxes?status=sleeping", apiKey(key), nil); got != 400 {
		t.Errorf("bad status filter: %d %s", got, out)
	}
}

// TestAutoPauseAndResume: a sandbox its timeout paused resumes by itself
// in the next operation; one a client paused does not.
func TestAutoPauseAndResume(t *testing.T) {
	agent := fakeHost()
	var resumes int
	resume := agent.ResumeSandboxFn
	agent.ResumeSandboxFn = func(ctx context.Context, spec wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
		resumes++
		return resume(ctx, spec)
	}
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: agent})
	key := e.newKey(e.signup("p@example.com").Token)
	var sb lifetimeResp
	e.must(201, "POST", "/v1/capsules", apiKey(key), map[string]any{"timeout_sec": 1}, &sb)
	rec, err := e.db.GetSandbox(t.Context(), teamOf(t, e, key), sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Add(2 * time.Second)
	e.ctl.AutoPause(t.Context(), rec, now.Add(-time.Second), now)
	var got lifetimeResp
	e.must(200, "GET", "/v1/capsules/"+sb.ID, apiKey(key), nil, &got)
	if got.Status != "paused" {
		t.Fatalf("after auto-pause: %+v", got)
	}
	e.must(200, "POST", "/v1/capsules/"+sb.ID+"/exec", apiKey(key), map[string]any{"cmd": "true"}, nil)
	e.must(200, "GET", "/v1/capsules/"+sb.ID, apiKey(key), nil, &got)
	if got.Status != "running" || resumes != 1 {
		t.Fatalf("after exec: %+v, %d resumes", got, resumes)
	}
	// Active since: not paused.
	rec, _ = e.db.GetSandbox(t.Context(), teamOf(t, e, key), sb.ID)
	e.ctl.AutoPause(t.Context(), rec, rec.LastActiveAt.Add(-time.Second), time.Now().UTC())
	if e.must(200, "GET", "/v1/capsules/"+sb.ID, apiKey(key), nil, &got); got.Status != "running" {
		t.Fatalf("paused although active: %+v", got)
	}
	// Paused by a client: stays paused.
	e.must(200, "POST", "/v1/capsules/"+sb.ID+"/pause", apiKey(key), nil, nil)
	if code, body := e.do("POST", "/v1/capsules/"+sb.ID+"/exec", apiKey(key), map[string]any{"cmd": "true"}); code != 409 {
		t.Errorf("exec on a paused sandbox = %d %s, want 409", code, body)
	}
}

func teamOf(t *testing.T, e *env, key string) string {
	t.Helper()
	c, err := e.auth.AuthenticateAPIKey(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	return c.TeamID
}

package httpapi_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

func errMessage(tb testing.TB, body []byte) string {
	tb.Helper()
	var env struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		tb.Fatalf("not an error envelope: %s", body)
	}
	return env.Error.Message
}

// TestQuotaHTTP: going over a team quota is a 429 in the envelope whose
// message names the limit, with no Retry-After (waiting does not help);
// a size over the operator's maximum is a 400 that says the maximum; a
// full host is a 503.
func TestQuotaHTTP(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			agent := fakeHost()
			e := newEnv(t, engine, envOptions{agent: agent, limits: control.Limits{MaxVCPUs: 4, MaxMemoryMB: 2048,
				Quota: wrenn.Quota{Sandboxes: 1}}})
			key := apiKey(e.newKey(e.signup("quota@example.com").Token))

			code, body := e.do("POST", "/v1/sandboxes", key, map[string]any{"vcpus": 5})
			if code != 400 || errMessage(t, body) != "vcpus must be between 1 and 4 (this server's maximum)" {
				t.Fatalf("vcpus over the maximum: %d %s", code, body)
			}
			code, body = e.do("POST", "/v1/sandboxes", key, map[string]any{"memory_mb": 4096})
			if code != 400 || errMessage(t, body) != "memory_mb must be between 128 and 2048 (this server's maximum)" {
				t.Fatalf("memory over the maximum: %d %s", code, body)
			}

			var sb sandboxResp
			e.must(201, "POST", "/v1/sandboxes", key, map[string]any{}, &sb)
			code, body, h := e.sendHeader("POST", "/v1/sandboxes", key, map[string]any{})
			if code != 429 || errCode(t, body) != wrenn.EQuotaExceeded ||
				errMessage(t, body) != "team quota: 1 running sandboxes (1 running now)" || h.Get("Retry-After") != "" {
				t.Fatalf("create over the quota: %d %v %s", code, h, body)
			}
			e.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)

			agent.CreateSandboxFn = func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
				return wrenn.SandboxNet{}, wrenn.Errorf(wrenn.EHostFull, "host is full: memory")
			}
			code, body = e.do("POST", "/v1/sandboxes", key, map[string]any{})
			if code != 503 || errCode(t, body) != wrenn.EHostFull {
				t.Fatalf("create on a full host: %d %s", code, body)
			}
		})
	}
}

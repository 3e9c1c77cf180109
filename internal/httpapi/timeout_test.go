package httpapi_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// TestTimeoutRanges: a timeout out of its range is refused with a 400 and
// the envelope, never wrapped into another value on the way to the agent.
// Sandbox inactivity timeouts run from 0 (none) to 30 days; command
// timeouts from 0 (none) to a day.
func TestTimeoutRanges(t *testing.T) {
	var mu sync.Mutex
	var timeouts []time.Duration // what reached the agent
	var specs int
	agent := fakeHost()
	create := agent.CreateSandboxFn
	agent.CreateSandboxFn = func(ctx context.Context, s wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
		mu.Lock()
		specs++
		mu.Unlock()
		return create(ctx, s)
	}
	agent.ExecFn = func(_ context.Context, _ string, req wrenn.ExecRequest) (*wrenn.ExecResult, error) {
		mu.Lock()
		defer mu.Unlock()
		timeouts = append(timeouts, req.Timeout)
		return &wrenn.ExecResult{}, nil
	}
	agent.StartExecFn = func(_ context.Context, _ string, req wrenn.ExecRequest) (wrenn.ExecStream, error) {
		return nil, fmt.Errorf("started with timeout %v", req.Timeout)
	}
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: agent})
	key := e.newKey(e.signup("t@example.com").Token)

	t.Run("create", func(t *testing.T) {
		for _, tc := range []struct {
			body string
			want int
		}{
			{`{"timeout_sec": 10000000000}`, 400},
			{`{"timeout_sec": 9223372036854775807}`, 400},
			{`{"timeout_sec": 2592001}`, 400},
			{`{"timeout_sec": -9223372036854775808}`, 400},
			{`{"timeout_sec": 18446744073709551616}`, 400},
			{`{"timeout_sec": 2592000}`, 201},
		} {
			mu.Lock()
			before := specs
			mu.Unlock()
			got, body := e.do("POST", "/v1/sandboxes", apiKey(key), tc.body)
			if got != tc.want {
				t.Errorf("%s = %d, want %d: %s", tc.body, got, tc.want, body)
				continue
			}
			mu.Lock()
			reached := specs != before
			mu.Unlock()
			if got == 400 && (errCode(t, body) != "invalid_request" || reached) {
				t.Errorf("%s: %s; reached the agent: %v", tc.body, body, reached)
			}
		}
	})

	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{}, &sb)

	t.Run("exec", func(t *testing.T) {
		for _, tc := range []struct {
			timeout string
			want    int
			agent   time.Duration // the timeout the agent is asked for
		}{
			{"4611686018427387904", 400, 0},
			{"18446744074", 400, 0},
			{"9223372036854775807", 400, 0},
			{"86401", 400, 0},
			{"-1", 400, 0},
			{"-9223372036854775808", 400, 0},
			{"86400", 200, 24 * time.Hour},
			{"0", 200, 0},
		} {
			mu.Lock()
			timeouts = nil
			mu.Unlock()
			body := `{"cmd": "true", "timeout_sec": ` + tc.timeout + `}`
			got, out := e.do("POST", "/v1/sandboxes/"+sb.ID+"/exec", apiKey(key), body)
			mu.Lock()
			asked := timeouts
			mu.Unlock()
			switch {
			case got != tc.want:
				t.Errorf("timeout_sec %s = %d, want %d: %s (agent asked with %v)", tc.timeout, got, tc.want, out, asked)
			case got == 400 && (errCode(t, out) != "invalid_request" || len(asked) != 0):
				t.Errorf("timeout_sec %s: %s; agent asked with %v", tc.timeout, out, asked)
			case got == 200 && (len(asked) != 1 || asked[0] != tc.agent):
				t.Errorf("timeout_sec %s: agent asked with %v, want %v", tc.timeout, asked, tc.agent)
			}
		}
	})

	t.Run("stream", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/v1/sandboxes/" + sb.ID + "/exec/stream"
		for _, timeout := range []any{uint64(18446744074), uint64(4611686018427387904), 86401, -1} {
			conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: map[string][]string{"X-Api-Key": {key}}})
			if err != nil {
				t.Fatal(err)
			}
			if err := wsjson.Write(ctx, conn, map[string]any{"type": "start", "cmd": "true", "timeout_sec": timeout}); err != nil {
				t.Fatal(err)
			}
			var m struct{ Type, Data string }
			if err := wsjson.Read(ctx, conn, &m); err != nil {
				t.Fatalf("timeout_sec %v: %v", timeout, err)
			}
			if m.Type != "error" || !strings.Contains(m.Data, "timeout_sec") {
				t.Errorf("timeout_sec %v: %+v, want an error about timeout_sec", timeout, m)
			}
			conn.CloseNow()
		}
	})
}

package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/mock"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// A logged-in user reaches the team's sandboxes with the login's JWT, as
// the web console does: over HTTP as a Bearer header, over a WebSocket as
// a subprotocol beside "wrenn", which the server selects. Team scoping is
// the token's team; a bad credential is 401 either way.
func TestBrowserCredentials(t *testing.T) {
	engine := storetest.Engines(t)[0]
	h := &mock.TerminalAgent{Agent: fakeHost()}
	h.OpenTerminalFn = func(context.Context, string, wrenn.TerminalRequest) (wrenn.Terminal, error) {
		return newFakeTerminal("pty-0123abcd"), nil
	}
	e := newEnv(t, engine, envOptions{agent: h})
	alice, bob := e.signup("alice-browser@example.com"), e.signup("bob-browser@example.com")
	key := e.newKey(alice.Token)

	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", bearer(alice.Token), map[string]any{"template": "minimal"}, &sb)
	var list []sandboxResp
	e.must(200, "GET", "/v1/sandboxes", apiKey(key), nil, &list)
	if len(list) != 1 || list[0].ID != sb.ID {
		t.Fatalf("the key's team does not see the sandbox the token made: %+v", list)
	}
	e.must(200, "GET", "/v1/capsules/"+sb.ID, bearer(alice.Token), nil, nil)
	if code, body := e.do("GET", "/v1/sandboxes/"+sb.ID, bearer(bob.Token), nil); code != 404 {
		t.Errorf("another team's token: %d %s", code, body)
	}
	for _, h := range []hdr{bearer("not-a-jwt"), {"Authorization": "Basic eDp5"}, nil} {
		if code, body := e.do("GET", "/v1/sandboxes", h, nil); code != 401 || errCode(t, body) != "unauthorized" {
			t.Errorf("%v: %d %s", h, code, body)
		}
	}
	// A subprotocol credential counts only on a WebSocket upgrade.
	if code, _ := e.do("GET", "/v1/sandboxes", hdr{"Sec-WebSocket-Protocol": "wrenn, wrenn.key." + key}, nil); code != 401 {
		t.Errorf("a subprotocol on a plain request: %d", code)
	}
	// API keys are managed with a login only.
	if code, _ := e.do("GET", "/v1/api-keys", apiKey(key), nil); code != 401 {
		t.Errorf("keys listed with a key: %d", code)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/v1/sandboxes/" + sb.ID + "/pty"
	dial := func(protocols ...string) (*websocket.Conn, *http.Response, error) {
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: e.client, Subprotocols: protocols})
	}
	for _, cred := range []string{"wrenn.bearer." + alice.Token, "wrenn.key." + key} {
		c, resp, err := dial("wrenn", cred)
		if err != nil {
			t.Fatalf("%.14s: %v", cred, err)
		}
		if got := c.Subprotocol(); got != "wrenn" || resp.Header.Get("Sec-WebSocket-Protocol") != "wrenn" {
			t.Errorf("selected %q (header %q), want wrenn", got, resp.Header.Get("Sec-WebSocket-Protocol"))
		}
		b, _ := json.Marshal(map[string]any{"type": "start", "cmd": "sh"})
		if err := c.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
		_, msg, err := c.Read(ctx)
		if err != nil || !strings.Contains(string(msg), `"started"`) {
			t.Errorf("%.14s: first message %s, %v", cred, msg, err)
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
	for _, protocols := range [][]string{{"wrenn", "wrenn.bearer." + bob.Token}, {"wrenn", "wrenn.key.wrn_00"}, {"wrenn"}} {
		_, resp, err := dial(protocols...)
		if err == nil || resp == nil {
			t.Fatalf("%v: dialled (%v)", protocols, err)
		}
		if want := map[bool]int{true: 404, false: 401}[strings.HasPrefix(protocols[len(protocols)-1], "wrenn.bearer.")]; resp.StatusCode != want {
			t.Errorf("%v: %d, want %d", protocols, resp.StatusCode, want)
		}
	}
}

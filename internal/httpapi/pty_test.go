package httpapi_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/mock"
	"github.com/wrennhq/wrenn/internal/spectest"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// fakeTerminal echoes its input as output; kill ends it with 137.
type fakeTerminal struct {
	tag    string
	events chan wrenn.TerminalEvent
	mu     sync.Mutex
	sizes  [][2]int
	closed chan struct{}
	once   sync.Once
}

func newFakeTerminal(tag string) *fakeTerminal {
	t := &fakeTerminal{tag: tag, events: make(chan wrenn.TerminalEvent, 16), closed: make(chan struct{})}
	t.events <- wrenn.TerminalEvent{Type: wrenn.TerminalStarted, Tag: tag, PID: 42}
	return t
}

func (t *fakeTerminal) Recv() (wrenn.TerminalEvent, error) {
	select {
	case ev, ok := <-t.events:
		if !ok {
			return wrenn.TerminalEvent{}, io.EOF
		}
		if ev.Type == wrenn.TerminalExited {
			close(t.events)
		}
		return ev, nil
	case <-t.closed:
		return wrenn.TerminalEvent{}, wrenn.Errorf(wrenn.EConflict, "detached")
	}
}

func (t *fakeTerminal) Input(b []byte) error {
	t.events <- wrenn.TerminalEvent{Type: wrenn.TerminalOutput, Data: append([]byte(nil), b...)}
	return nil
}

func (t *fakeTerminal) Resize(cols, rows int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sizes = append(t.sizes, [2]int{cols, rows})
	return nil
}

func (t *fakeTerminal) Kill() error {
	t.events <- wrenn.TerminalEvent{Type: wrenn.TerminalExited, ExitCode: 137}
	return nil
}

func (t *fakeTerminal) Close() error {
	t.once.Do(func() { close(t.closed) })
	return nil
}

type ptyMsg struct {
	Type     string `json:"type"`
	Tag      string `json:"tag,omitempty"`
	PID      int    `json:"pid,omitempty"`
	Data     string `json:"data,omitempty"`
	ExitCode *int   `json:"exit_code,omitempty"`
	Fatal    *bool  `json:"fatal,omitempty"`
	Cols     int    `json:"cols,omitempty"`
	Rows     int    `json:"rows,omitempty"`
}

// TestPtyEndpoint: the terminal WebSocket's exchanges with a fake agent,
// every message checked against the contract's schemas.
func TestPtyEndpoint(t *testing.T) {
	engine := storetest.Engines(t)[0]
	var mu sync.Mutex
	var opened []wrenn.TerminalRequest
	var last *fakeTerminal
	h := &mock.TerminalAgent{Agent: fakeHost()}
	h.OpenTerminalFn = func(_ context.Context, _ string, req wrenn.TerminalRequest) (wrenn.Terminal, error) {
		mu.Lock()
		defer mu.Unlock()
		opened = append(opened, req)
		switch req.Tag {
		case "":
			last = newFakeTerminal("pty-0123abcd")
		case "pty-0123abcd":
			last = newFakeTerminal(req.Tag)
		default:
			return nil, wrenn.Errorf(wrenn.ENotFound, "no terminal %q in this sandbox", req.Tag)
		}
		return last, nil
	}
	e := newEnv(t, engine, envOptions{agent: h, ptyPing: 100 * time.Millisecond})
	key := e.newKey(e.signup("pty@example.com").Token)
	otherKey := e.newKey(e.signup("pty-other@example.com").Token)
	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{"template": "minimal"}, &sb)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	dial := func(key, id string) (*websocket.Conn, *http.Response, error) {
		url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/v1/sandboxes/" + id + "/pty"
		return websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: e.client, HTTPHeader: http.Header{"X-Api-Key": {key}}})
	}
	send := func(c *websocket.Conn, m any) {
		t.Helper()
		b, _ := json.Marshal(m)
		if err := c.Write(ctx, websocket.MessageText, b); err != nil {
			t.Fatal(err)
		}
	}
	pings := 0
	read := func(c *websocket.Conn) (ptyMsg, error) { // the next message but a ping
		t.Helper()
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return ptyMsg{}, err
			}
			spectest.CheckMessage(t, "PtyServerMessage", b)
			var m ptyMsg
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			if m.Type != "ping" {
				return m, nil
			}
			pings++
		}
	}
	expectFatal := func(c *websocket.Conn, code websocket.StatusCode) {
		t.Helper()
		m, err := read(c)
		if err != nil || m.Type != "error" || m.Fatal == nil || !*m.Fatal || m.Data == "" {
			t.Fatalf("want a fatal error: %+v %v", m, err)
		}
		if _, err := read(c); websocket.CloseStatus(err) != code {
			t.Errorf("close: %v, want %d", err, code)
		}
	}

	for _, id := range []string{sb.ID, "sb-nosuch"} {
		k := otherKey
		if id != sb.ID {
			k = key
		}
		if _, resp, err := dial(k, id); err == nil || resp.StatusCode != 404 {
			t.Errorf("%s: %v %v, want 404", id, resp, err)
		}
	}
	for _, first := range []string{`{"type":"input","data":"aGk="}`, `not json`, `{"type":"start","cols":"wide"}`, `{"type":"connect"}`} {
		c, _, err := dial(key, sb.ID)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(ctx, websocket.MessageText, []byte(first))
		expectFatal(c, websocket.StatusPolicyViolation)
	}
	c, _, err := dial(key, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	send(c, ptyMsg{Type: "connect", Tag: "pty-ffffffff"})
	expectFatal(c, websocket.StatusNormalClosure)

	// A session: start, input echoed, resizes (a bad one refused, not
	// fatally), bad input refused, then the client drops: detached.
	c, _, err = dial(key, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	send(c, map[string]any{"type": "start", "cmd": "/bin/bash", "cols": 100, "rows": 30, "envs": map[string]string{"A": "b"}, "cwd": "/tmp", "user": "root"})
	if m, err := read(c); err != nil || m.Type != "started" || m.Tag != "pty-0123abcd" || m.PID != 42 {
		t.Fatalf("started: %+v %v", m, err)
	}
	mu.Lock()
	if r := opened[len(opened)-1]; r.Cmd != "/bin/bash" || r.Cols != 100 || r.Rows != 30 || r.Env["A"] != "b" || r.Dir != "/tmp" || r.User != "root" {
		t.Errorf("opened %+v", r)
	}
	term := last
	mu.Unlock()
	send(c, ptyMsg{Type: "input", Data: base64.StdEncoding.EncodeToString([]byte("\x1b[A\xff"))})
	if m, err := read(c); err != nil || m.Type != "output" || m.Data != base64.StdEncoding.EncodeToString([]byte("\x1b[A\xff")) {
		t.Errorf("output: %+v %v", m, err)
	}
	send(c, ptyMsg{Type: "resize", Cols: 120, Rows: 40})
	send(c, ptyMsg{Type: "resize", Cols: 0, Rows: 40})
	if m, err := read(c); err != nil || m.Type != "error" || m.Fatal == nil || *m.Fatal {
		t.Errorf("a bad resize: %+v %v", m, err)
	}
	send(c, ptyMsg{Type: "input", Data: "not base64!"})
	if m, err := read(c); err != nil || m.Type != "error" || m.Fatal == nil || *m.Fatal {
		t.Errorf("bad input: %+v %v", m, err)
	}
	send(c, map[string]string{"type": "pong"}) // ignored
	for pings == 0 {                           // sent every 100 ms here
		send(c, ptyMsg{Type: "input", Data: base64.StdEncoding.EncodeToString([]byte("x"))})
		if m, err := read(c); err != nil || m.Type != "output" {
			t.Fatalf("waiting for a ping: %+v %v", m, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	term.mu.Lock()
	if len(term.sizes) != 1 || term.sizes[0] != [2]int{120, 40} {
		t.Errorf("sizes %v", term.sizes)
	}
	term.mu.Unlock()
	c.CloseNow()
	select {
	case <-term.closed:
	case <-ctx.Done():
		t.Fatal("a dropped client did not detach")
	}

	// Connect by tag, kill: exit 137, then a normal close.
	c, _, err = dial(key, sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	send(c, ptyMsg{Type: "connect", Tag: "pty-0123abcd"})
	if m, err := read(c); err != nil || m.Type != "started" || m.Tag != "pty-0123abcd" {
		t.Fatalf("connect: %+v %v", m, err)
	}
	send(c, ptyMsg{Type: "kill"})
	if m, err := read(c); err != nil || m.Type != "exit" || m.ExitCode == nil || *m.ExitCode != 137 {
		t.Errorf("exit: %+v %v", m, err)
	}
	if _, err := read(c); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after exit: %v", err)
	}
}

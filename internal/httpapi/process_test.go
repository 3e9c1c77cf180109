package httpapi_test

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// fakeProcessStream plays events back, then blocks until closed.
type fakeProcessStream struct {
	evs       []wrenn.ExecEvent
	closed    chan struct{}
	closeOnce sync.Once
}

func (f *fakeProcessStream) Recv() (wrenn.ExecEvent, error) {
	if len(f.evs) == 0 {
		<-f.closed
		return wrenn.ExecEvent{}, context.Canceled
	}
	ev := f.evs[0]
	f.evs = f.evs[1:]
	if ev.Type == "" {
		return wrenn.ExecEvent{}, io.EOF
	}
	return ev, nil
}

func (f *fakeProcessStream) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}

// TestProcessEndpoints: background exec answers 202 with the pid and tag,
// envs and cwd reach the agent for both kinds of exec, the list holds the
// running processes only, selectors and signals reach the agent as they
// should, and the stream forwards what the agent gives, then closes.
func TestProcessEndpoints(t *testing.T) {
	var mu sync.Mutex
	var gotExec wrenn.ExecRequest
	var gotStart wrenn.ProcessRequest
	var kills []string
	var streams []*fakeProcessStream
	h := fakeHost()
	h.ExecFn = func(_ context.Context, _ string, req wrenn.ExecRequest) (*wrenn.ExecResult, error) {
		gotExec = req
		return &wrenn.ExecResult{}, nil
	}
	h.StartProcessFn = func(_ context.Context, _ string, req wrenn.ProcessRequest) (wrenn.Process, error) {
		if req.Tag == "taken" {
			return wrenn.Process{}, wrenn.Errorf(wrenn.EConflict, "a running process already has the tag %q", req.Tag)
		}
		gotStart = req
		tag := req.Tag
		if tag == "" {
			tag = "proc-0123abcd"
		}
		return wrenn.Process{PID: 42, Tag: tag, Cmd: req.Cmd, Args: req.Args, Running: true}, nil
	}
	h.ListProcessesFn = func(context.Context, string) ([]wrenn.Process, error) {
		return []wrenn.Process{{PID: 42, Tag: "web", Cmd: "/bin/sh", Args: []string{"-c", "serve"}, Running: true}, {PID: 7, Tag: "old", ExitCode: 1}}, nil
	}
	h.KillProcessFn = func(_ context.Context, _ string, sel wrenn.ProcessSelector, sig wrenn.Signal) error {
		if sel.PID == 9 || sel.Tag == "nobody" {
			return wrenn.Errorf(wrenn.ENotFound, "no such process")
		}
		kills = append(kills, fmt.Sprintf("%s|%d|%s", sel.Tag, sel.PID, sig))
		return nil
	}
	h.ConnectProcessFn = func(_ context.Context, _ string, sel wrenn.ProcessSelector) (wrenn.ProcessStream, error) {
		if sel.Tag != "web" {
			return nil, wrenn.Errorf(wrenn.ENotFound, "no such process")
		}
		st := &fakeProcessStream{closed: make(chan struct{}), evs: []wrenn.ExecEvent{
			{Type: wrenn.ExecStarted, PID: 42},
			{Type: wrenn.ExecStdout, Data: []byte("caf\xc3")}, // a rune split across chunks
			{Type: wrenn.ExecStdout, Data: []byte("\xa9\n")},
			{Type: wrenn.ExecStderr, Data: []byte{0xff, 0}},
			{Type: wrenn.ExecExited, ExitCode: 143},
			{}, // EOF
		}}
		mu.Lock()
		streams = append(streams, st)
		mu.Unlock()
		return st, nil
	}
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: h})
	key := apiKey(e.newKey(e.signup("procs@example.com").Token))
	other := apiKey(e.newKey(e.signup("other@example.com").Token))
	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", key, map[string]any{"template": "minimal"}, &sb)
	base := "/v1/sandboxes/" + sb.ID

	// Foreground: envs (and the older env) and cwd reach the agent.
	e.must(200, "POST", base+"/exec", key, map[string]any{"cmd": "env", "envs": map[string]string{"A": "1", "B": "2"}, "env": map[string]string{"B": "old", "C": "3"}, "cwd": "/srv"}, nil)
	if want := map[string]string{"A": "1", "B": "2", "C": "3"}; !maps.Equal(gotExec.Env, want) || gotExec.Dir != "/srv" {
		t.Errorf("foreground exec reached the agent as %+v", gotExec)
	}

	// Background: 202, the SDK's body.
	var bg struct {
		SandboxID string `json:"sandbox_id"`
		Cmd       string
		PID       int
		Tag       string
	}
	e.must(202, "POST", base+"/exec", key, map[string]any{"cmd": "/bin/sh", "args": []string{"-c", "serve"}, "background": true, "envs": map[string]string{"PORT": "8000"}, "cwd": "/srv", "tag": "web"}, &bg)
	want := wrenn.ProcessRequest{Cmd: "/bin/sh", Args: []string{"-c", "serve"}, Env: map[string]string{"PORT": "8000"}, Dir: "/srv", Tag: "web"}
	if bg.SandboxID != sb.ID || bg.PID != 42 || bg.Tag != "web" || bg.Cmd != "/bin/sh" || !reflect.DeepEqual(gotStart, want) {
		t.Errorf("background exec: %+v, agent got %+v", bg, gotStart)
	}
	e.must(202, "POST", base+"/exec", key, map[string]any{"cmd": "sleep 1", "background": true}, &bg)
	if bg.Tag != "proc-0123abcd" {
		t.Errorf("made-up tag %q", bg.Tag)
	}
	for _, tc := range []struct {
		body map[string]any
		code int
	}{
		{map[string]any{"cmd": "x", "background": true, "tag": "taken"}, 409},
		{map[string]any{"cmd": "x", "background": true, "tag": "12"}, 400},
		{map[string]any{"cmd": "x", "background": true, "tag": "a/b"}, 400},
		{map[string]any{"cmd": "", "background": true}, 400},
		{map[string]any{"cmd": "x", "background": "yes"}, 400},
	} {
		if code, body := e.do("POST", base+"/exec", key, tc.body); code != tc.code {
			t.Errorf("%v: %d %s, want %d", tc.body, code, body, tc.code)
		}
	}
	if code, _ := e.do("POST", base+"/exec", other, map[string]any{"cmd": "x", "background": true}); code != 404 {
		t.Errorf("another team's background exec: %d", code)
	}

	// List: running only.
	var list struct {
		Processes []struct {
			PID  int
			Tag  string
			Cmd  string
			Args []string
		}
	}
	e.must(200, "GET", base+"/processes", key, nil, &list)
	if len(list.Processes) != 1 || list.Processes[0].Tag != "web" || list.Processes[0].PID != 42 || len(list.Processes[0].Args) != 2 {
		t.Errorf("list: %+v", list)
	}
	if code, _ := e.do("GET", base+"/processes", other, nil); code != 404 {
		t.Errorf("another team's list: %d", code)
	}

	// Kill: pid or tag, SIGTERM (then SIGKILL) unless SIGKILL.
	e.must(204, "DELETE", base+"/processes/web", key, nil, nil)
	e.must(204, "DELETE", base+"/processes/42?signal=SIGKILL", key, nil, nil)
	e.must(204, "DELETE", base+"/processes/web?signal=SIGTERM", key, nil, nil)
	if want := []string{"web|0|SIGTERM", "|42|SIGKILL", "web|0|SIGTERM"}; !reflect.DeepEqual(kills, want) {
		t.Errorf("kills %q, want %q", kills, want)
	}
	for path, code := range map[string]int{
		"/processes/nobody":            404,
		"/processes/9":                 404,
		"/processes/0":                 404,
		"/processes/99999999999":       404,
		"/processes/web?signal=SIGHUP": 400,
	} {
		if got, body := e.do("DELETE", base+path, key, nil); got != code {
			t.Errorf("DELETE %s: %d %s, want %d", path, got, body, code)
		}
	}
	if code, _ := e.do("DELETE", base+"/processes/web", other, nil); code != 404 {
		t.Errorf("another team's kill: %d", code)
	}

	// Stream.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + base + "/processes/web/stream"
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {key["X-API-Key"]}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	type msg struct {
		Type     string
		PID      int
		Data     string
		Encoding string
		ExitCode *int `json:"exit_code"`
	}
	var got []msg
	for {
		var m msg
		if err := wsjson.Read(ctx, ws, &m); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusNormalClosure {
				t.Errorf("stream ended with %v", err)
			}
			break
		}
		got = append(got, m)
	}
	code := 143
	wantMsgs := []msg{{Type: "start", PID: 42}, {Type: "stdout", Data: "caf"}, {Type: "stdout", Data: "é\n"}, {Type: "stderr", Data: "/wA=", Encoding: "base64"}, {Type: "exit", ExitCode: &code}}
	if !reflect.DeepEqual(got, wantMsgs) {
		t.Errorf("stream %+v, want %+v", got, wantMsgs)
	}
	mu.Lock()
	st := streams[0]
	mu.Unlock()
	select {
	case <-st.closed:
	case <-ctx.Done():
		t.Error("the process stream was not closed")
	}
	for _, tc := range []struct {
		path string
		key  hdr
	}{{base + "/processes/nobody/stream", key}, {base + "/processes/web/stream", other}} {
		_, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.srv.URL, "http")+tc.path, &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {tc.key["X-API-Key"]}}})
		if err == nil || resp == nil || resp.StatusCode != 404 {
			t.Errorf("stream %s: %v, want 404", tc.path, err)
		}
	}
}

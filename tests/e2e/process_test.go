package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// procEvent is one message of a process stream.
type procEvent struct {
	Type     string `json:"type"`
	PID      int    `json:"pid"`
	Data     string `json:"data"`
	Encoding string `json:"encoding"`
	ExitCode *int   `json:"exit_code"`
}

// procStream is a client of GET …/processes/{selector}/stream.
type procStream struct {
	t      testing.TB
	conn   *websocket.Conn
	pid    int
	stdout strings.Builder
	stderr strings.Builder
	exit   *int
}

// dialProcess opens the stream of a process, through the transport that
// checks exchanges against the contract (the refusals before the upgrade).
func (s *server) dialProcess(ctx context.Context, key hdr, id, selector string) (*procStream, int) {
	s.tb.Helper()
	url := "ws" + strings.TrimPrefix(s.url, "http") + "/v1/sandboxes/" + id + "/processes/" + selector + "/stream"
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: s.client.Transport},
		HTTPHeader: http.Header{"X-Api-Key": {key["X-API-Key"]}},
	})
	if err != nil {
		if resp != nil {
			return nil, resp.StatusCode
		}
		s.tb.Fatalf("dial %s: %v", url, err)
	}
	conn.SetReadLimit(4 << 20)
	return &procStream{t: s.tb, conn: conn}, http.StatusSwitchingProtocols
}

// readUntil reads events until cond holds (nil: until the exit and the
// server's close).
func (p *procStream) readUntil(ctx context.Context, what string, cond func() bool) {
	p.t.Helper()
	for cond == nil || !cond() {
		var ev procEvent
		if err := wsjson.Read(ctx, p.conn, &ev); err != nil {
			if cond == nil && p.exit != nil && websocket.CloseStatus(err) == websocket.StatusNormalClosure {
				return
			}
			p.t.Fatalf("waiting for %s: %v (stdout %q, stderr %q)", what, err, p.stdout.String(), p.stderr.String())
		}
		if ev.Encoding != "" {
			p.t.Fatalf("unexpected %s output: %+v", ev.Encoding, ev)
		}
		switch ev.Type {
		case "start":
			p.pid = ev.PID
		case "stdout":
			p.stdout.WriteString(ev.Data)
		case "stderr":
			p.stderr.WriteString(ev.Data)
		case "exit":
			p.exit = ev.ExitCode
		default:
			p.t.Fatalf("unexpected event %+v", ev)
		}
	}
}

// requests counts the requests for /index.html a python http.server logged.
func requests(stderr string) int { return strings.Count(stderr, `"GET /index.html HTTP/1.1" 200`) }

// TestBackgroundProcesses: a background HTTP server started with a tag,
// listed, its output streamed after it had already printed (nothing
// missing), the stream dropped and reconnected, the sandbox paused and
// resumed under it, and the process killed by tag; envs and cwd honoured
// by foreground exec too; the refusals (a bad selector, another team's
// sandbox, a tag a running process holds).
func TestBackgroundProcesses(t *testing.T) {
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir)
	key := s.account("procs@example.com")
	other := s.account("procs-other@example.com")
	sb := s.create(key, map[string]any{"template": "minimal", "timeout_sec": 600})
	base := "/v1/sandboxes/" + sb.ID
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Foreground exec honours envs and cwd, as the SDK sends them.
	var fg execResult
	s.must(200, "POST", base+"/exec", key, map[string]any{
		"cmd": "/bin/sh", "args": []string{"-c", `echo "$GREETING"; pwd; mkdir -p /tmp/www; echo hello-web > /tmp/www/index.html`},
		"envs": map[string]string{"GREETING": "hi there"}, "cwd": "/tmp", "timeout_sec": 30}, &fg)
	if fg.Stdout != "hi there\n/tmp\n" || fg.ExitCode != 0 {
		t.Fatalf("foreground exec with envs and cwd: %+v", fg)
	}

	// A background HTTP server, with a tag, envs and cwd.
	var bg struct {
		SandboxID string `json:"sandbox_id"`
		Cmd       string `json:"cmd"`
		PID       int    `json:"pid"`
		Tag       string `json:"tag"`
	}
	s.must(202, "POST", base+"/exec", key, map[string]any{
		"cmd": "/bin/sh", "args": []string{"-c", `echo "serving $SITE from $(pwd)"; exec python3 -u -m http.server --bind 127.0.0.1 "$PORT"`},
		"background": true, "tag": "web", "envs": map[string]string{"PORT": "8000", "SITE": "www"}, "cwd": "/tmp/www"}, &bg)
	if bg.SandboxID != sb.ID || bg.PID <= 1 || bg.Tag != "web" || bg.Cmd != "/bin/sh" {
		t.Fatalf("background exec: %+v", bg)
	}
	get := func() {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			r := s.exec(key, sb.ID, "curl", "-sf", "http://127.0.0.1:8000/index.html")
			if r.Stdout == "hello-web\n" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the background server does not answer: %+v", r)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	for range 3 {
		get()
	}

	// Listed, with what it runs.
	var list struct {
		Processes []struct {
			PID  int      `json:"pid"`
			Tag  string   `json:"tag"`
			Cmd  string   `json:"cmd"`
			Args []string `json:"args"`
		} `json:"processes"`
	}
	s.must(200, "GET", base+"/processes", key, nil, &list)
	if len(list.Processes) != 1 || list.Processes[0].PID != bg.PID || list.Processes[0].Tag != "web" ||
		list.Processes[0].Cmd != "/bin/sh" || len(list.Processes[0].Args) != 2 {
		t.Fatalf("list: %+v", list)
	}

	// A tag a running process holds is taken.
	if code, body := s.do("POST", base+"/exec", key, map[string]any{"cmd": "sleep 1", "background": true, "tag": "web"}); code != 409 {
		t.Errorf("a second process tagged web: %d %s", code, body)
	}

	// Streamed after it printed: everything so far, nothing missing.
	st, code := s.dialProcess(ctx, key, sb.ID, "web")
	if code != http.StatusSwitchingProtocols {
		t.Fatalf("stream: %d", code)
	}
	st.readUntil(ctx, "the replay", func() bool { return requests(st.stderr.String()) == 3 })
	if st.pid != bg.PID || !strings.HasPrefix(st.stdout.String(), "serving www from /tmp/www\nServing HTTP on 127.0.0.1 port 8000") {
		t.Errorf("replay: pid %d, stdout %q", st.pid, st.stdout.String())
	}
	// Live output follows.
	get()
	st.readUntil(ctx, "a live request", func() bool { return requests(st.stderr.String()) == 4 })

	// Dropped; the server goes on; a new stream (by pid) replays it all.
	st.conn.CloseNow()
	get()
	st, _ = s.dialProcess(ctx, key, sb.ID, fmt.Sprint(bg.PID))
	st.readUntil(ctx, "the replay after reconnecting", func() bool { return requests(st.stderr.String()) == 5 })
	if !strings.HasPrefix(st.stdout.String(), "serving www") {
		t.Errorf("replay after reconnecting: stdout %q", st.stdout.String())
	}
	st.conn.CloseNow()

	// Paused and resumed: the process, its output and its tag are there.
	var got sandbox
	s.must(200, "POST", base+"/pause", key, nil, &got)
	s.must(200, "POST", base+"/resume", key, nil, &got)
	if got.Status != "running" {
		t.Fatalf("resumed: %+v", got)
	}
	s.must(200, "GET", base+"/processes", key, nil, &list)
	if len(list.Processes) != 1 || list.Processes[0].PID != bg.PID || list.Processes[0].Tag != "web" {
		t.Fatalf("list after resume: %+v", list)
	}
	get()
	st, _ = s.dialProcess(ctx, key, sb.ID, "web")
	st.readUntil(ctx, "the replay after resume", func() bool { return requests(st.stderr.String()) == 6 })
	if !strings.HasPrefix(st.stdout.String(), "serving www") {
		t.Errorf("replay after resume: stdout %q", st.stdout.String())
	}

	// Refusals: a bad selector, another team.
	for _, sel := range []string{"nosuch", "999999", "0"} {
		if code, body := s.do("DELETE", base+"/processes/"+sel, key, nil); code != 404 {
			t.Errorf("DELETE a process %s: %d %s", sel, code, body)
		}
		if _, code := s.dialProcess(ctx, key, sb.ID, sel); code != 404 {
			t.Errorf("stream of a process %s: %d", sel, code)
		}
	}
	if code, _ := s.do("GET", base+"/processes", other, nil); code != 404 {
		t.Errorf("another team's list: %d", code)
	}
	if code, _ := s.do("DELETE", base+"/processes/web", other, nil); code != 404 {
		t.Errorf("another team's kill: %d", code)
	}
	if _, code := s.dialProcess(ctx, other, sb.ID, "web"); code != 404 {
		t.Errorf("another team's stream: %d", code)
	}
	if code, _ := s.do("POST", base+"/exec", other, map[string]any{"cmd": "true", "background": true}); code != 404 {
		t.Errorf("another team's background exec: %d", code)
	}

	// Killed by tag: SIGTERM ends python; the open stream sees the exit.
	s.must(204, "DELETE", base+"/processes/web", key, nil, nil)
	st.readUntil(ctx, "the exit", nil)
	if st.exit == nil || *st.exit != 143 {
		t.Errorf("exit after kill: %v", st.exit)
	}
	s.must(200, "GET", base+"/processes", key, nil, &list)
	if len(list.Processes) != 0 {
		t.Errorf("list after kill: %+v", list)
	}
	if code, _ := s.do("DELETE", base+"/processes/web", key, nil); code != 404 {
		t.Errorf("kill of an exited process: %d", code)
	}
	if r := s.exec(key, sb.ID, "sh", "-c", "curl -s -o /dev/null http://127.0.0.1:8000/ || echo down"); r.Stdout != "down\n" {
		t.Errorf("the server still answers after the kill: %+v", r)
	}
	// The exit code stays readable: a late stream gets the output and it.
	st, _ = s.dialProcess(ctx, key, sb.ID, "web")
	st.readUntil(ctx, "the exited process's replay", nil)
	if requests(st.stderr.String()) != 6 || st.exit == nil || *st.exit != 143 {
		t.Errorf("exited process: %d requests, exit %v", requests(st.stderr.String()), st.exit)
	}

	// A tag freed by its process's exit can be taken again, and SIGKILL
	// is at once.
	s.must(202, "POST", base+"/exec", key, map[string]any{"cmd": "/bin/sh", "args": []string{"-c", "trap '' TERM; echo up; sleep 600"}, "background": true, "tag": "web"}, &bg)
	st, _ = s.dialProcess(ctx, key, sb.ID, "web")
	st.readUntil(ctx, "up", func() bool { return st.stdout.String() == "up\n" })
	start := time.Now()
	s.must(204, "DELETE", base+"/processes/web?signal=SIGKILL", key, nil, nil)
	st.readUntil(ctx, "the exit", nil)
	if st.exit == nil || *st.exit != 137 || time.Since(start) > 4*time.Second {
		t.Errorf("SIGKILL: exit %v after %s", st.exit, time.Since(start))
	}

	s.must(204, "DELETE", base, key, nil, nil)
}

// TestProcessSurvivesAgentRestart: the host agent killed under a running
// sandbox; the next agent finds its background process, output and tag.
func TestProcessSurvivesAgentRestart(t *testing.T) {
	a := startApart(t, "procs-token")
	s := a.s
	key := s.account("procs-restart@example.com")
	sb := s.create(key, map[string]any{"timeout_sec": 600})
	base := "/v1/sandboxes/" + sb.ID
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var bg struct {
		PID int    `json:"pid"`
		Tag string `json:"tag"`
	}
	s.must(202, "POST", base+"/exec", key, map[string]any{"cmd": "/bin/sh", "args": []string{"-c", "echo before; echo err >&2; exec sleep 600"}, "background": true, "tag": "keep"}, &bg)
	st, _ := s.dialProcess(ctx, key, sb.ID, "keep")
	st.readUntil(ctx, "its output", func() bool { return st.stdout.String() == "before\n" && st.stderr.String() == "err\n" })
	st.conn.CloseNow()

	a.restartAgent()

	var list struct {
		Processes []struct {
			PID int    `json:"pid"`
			Tag string `json:"tag"`
		} `json:"processes"`
	}
	s.must(200, "GET", base+"/processes", key, nil, &list)
	if len(list.Processes) != 1 || list.Processes[0].PID != bg.PID || list.Processes[0].Tag != "keep" {
		t.Fatalf("list after the agent restarted: %+v", list)
	}
	st, _ = s.dialProcess(ctx, key, sb.ID, "keep")
	st.readUntil(ctx, "the replay", func() bool { return st.stdout.String() == "before\n" && st.stderr.String() == "err\n" })
	s.must(204, "DELETE", base+"/processes/keep?signal=SIGKILL", key, nil, nil)
	st.readUntil(ctx, "the exit", nil)
	if st.exit == nil || *st.exit != 137 {
		t.Errorf("exit %v", st.exit)
	}
	s.must(204, "DELETE", base, key, nil, nil)
}

// BenchmarkBackgroundFirstByte: POST …/exec with "background": true, then
// the process's stream opened and its first output received, as a client
// that starts a server and watches it does; the kill is not timed.
//
//	flock /tmp/wrenn-vm.lock go test -run '^$' -bench BackgroundFirstByte -benchtime 20x ./tests/e2e
func BenchmarkBackgroundFirstByte(b *testing.B) {
	s, key := benchServer(b)
	sb := s.create(key, map[string]any{})
	defer s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var samples []time.Duration
	for b.Loop() {
		start := time.Now()
		var bg struct {
			PID int `json:"pid"`
		}
		s.must(202, "POST", "/v1/sandboxes/"+sb.ID+"/exec", key,
			map[string]any{"cmd": "/bin/sh", "args": []string{"-c", "echo first; exec sleep 600"}, "background": true}, &bg)
		st, code := s.dialProcess(ctx, key, sb.ID, fmt.Sprint(bg.PID))
		if code != http.StatusSwitchingProtocols {
			b.Fatalf("stream: %d", code)
		}
		st.readUntil(ctx, "the first byte", func() bool { return st.stdout.Len() > 0 })
		samples = append(samples, time.Since(start))
		b.StopTimer()
		st.conn.CloseNow()
		s.must(204, "DELETE", fmt.Sprintf("/v1/sandboxes/%s/processes/%d?signal=SIGKILL", sb.ID, bg.PID), key, nil, nil)
		b.StartTimer()
	}
	reportQuantiles(b, "first-byte", samples)
}

package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/wrennhq/wrenn/internal/spectest"
)

// ptyMessage is a message of GET /v1/sandboxes/{id}/pty, either way.
type ptyMessage struct {
	Type     string            `json:"type"`
	Cmd      string            `json:"cmd,omitempty"`
	Args     []string          `json:"args,omitempty"`
	Cols     int               `json:"cols,omitempty"`
	Rows     int               `json:"rows,omitempty"`
	Envs     map[string]string `json:"envs,omitempty"`
	Cwd      string            `json:"cwd,omitempty"`
	User     string            `json:"user,omitempty"`
	Tag      string            `json:"tag,omitempty"`
	PID      int               `json:"pid,omitempty"`
	Data     string            `json:"data,omitempty"`
	ExitCode *int              `json:"exit_code,omitempty"`
	Fatal    *bool             `json:"fatal,omitempty"`
}

// ptyClient is one WebSocket to a terminal, every message either way
// checked against the contract's schemas.
type ptyClient struct {
	tb  testing.TB
	ws  *websocket.Conn
	out bytes.Buffer // every output byte seen
}

var ptyTag = regexp.MustCompile(`^pty-[0-9a-f]{8}$`)

// dialPty opens the terminal WebSocket of sandbox id; the upgrade goes
// through the contract-checking client.
func (s *server) dialPty(tb testing.TB, key hdr, id string) (*ptyClient, *http.Response, error) {
	tb.Helper()
	url := "ws" + strings.TrimPrefix(s.url, "http") + "/v1/sandboxes/" + id + "/pty"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: s.client,
		HTTPHeader: http.Header{"X-Api-Key": {key["X-API-Key"]}}})
	if err != nil {
		return nil, resp, err
	}
	ws.SetReadLimit(4 << 20)
	c := &ptyClient{tb: tb, ws: ws}
	tb.Cleanup(func() { ws.CloseNow() })
	return c, resp, nil
}

func (s *server) mustDialPty(tb testing.TB, key hdr, id string) *ptyClient {
	tb.Helper()
	c, _, err := s.dialPty(tb, key, id)
	if err != nil {
		tb.Fatalf("dial pty: %v", err)
	}
	return c
}

func (c *ptyClient) send(m ptyMessage) {
	c.tb.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		c.tb.Fatal(err)
	}
	spectest.CheckMessage(c.tb, "PtyClientMessage", b)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.ws.Write(ctx, websocket.MessageText, b); err != nil {
		c.tb.Fatalf("send %s: %v", m.Type, err)
	}
}

func (c *ptyClient) input(s string) {
	c.tb.Helper()
	c.send(ptyMessage{Type: "input", Data: base64.StdEncoding.EncodeToString([]byte(s))})
}

// next reads the next message other than a ping; output is collected.
func (c *ptyClient) next(d time.Duration) (ptyMessage, error) {
	c.tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		typ, b, err := c.ws.Read(ctx)
		if err != nil {
			return ptyMessage{}, err
		}
		if typ != websocket.MessageText {
			c.tb.Errorf("a binary message: %q", b)
		}
		spectest.CheckMessage(c.tb, "PtyServerMessage", b)
		var m ptyMessage
		if err := json.Unmarshal(b, &m); err != nil {
			c.tb.Fatalf("message %q: %v", b, err)
		}
		switch m.Type {
		case "ping":
			continue
		case "output":
			data, err := base64.StdEncoding.DecodeString(m.Data)
			if err != nil {
				c.tb.Fatalf("output not base64: %q", m.Data)
			}
			c.out.Write(data)
		}
		return m, nil
	}
}

func (c *ptyClient) mustNext(want string) ptyMessage {
	c.tb.Helper()
	m, err := c.next(60 * time.Second)
	if err != nil {
		c.tb.Fatalf("waiting for %s: %v (output %q)", want, err, c.out.String())
	}
	if m.Type != want {
		c.tb.Fatalf("got %+v, want %s (output %q)", m, want, c.out.String())
	}
	return m
}

// waitFor reads until the output seen since mark holds want; it returns
// the output's length, the next mark.
func (c *ptyClient) waitFor(mark int, want string) int {
	c.tb.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(c.out.String()[mark:], want) {
		m, err := c.next(time.Until(deadline))
		if err != nil {
			c.tb.Fatalf("waiting for %q: %v; output %q", want, err, c.out.String()[mark:])
		}
		if m.Type != "output" {
			c.tb.Fatalf("waiting for %q: %+v; output %q", want, m, c.out.String()[mark:])
		}
	}
	return c.out.Len()
}

// waitExit reads until the exit, then expects the server to close.
func (c *ptyClient) waitExit() int {
	c.tb.Helper()
	for {
		m, err := c.next(60 * time.Second)
		if err != nil {
			c.tb.Fatalf("waiting for the exit: %v; output %q", err, c.out.String())
		}
		if m.Type == "exit" {
			if m.ExitCode == nil {
				c.tb.Fatalf("exit without a code: %+v", m)
			}
			c.expectClose(websocket.StatusNormalClosure)
			return *m.ExitCode
		}
		if m.Type != "output" {
			c.tb.Fatalf("waiting for the exit: %+v", m)
		}
	}
}

func (c *ptyClient) expectClose(code websocket.StatusCode) {
	c.tb.Helper()
	_, err := c.next(30 * time.Second)
	if got := websocket.CloseStatus(err); got != code {
		c.tb.Errorf("the server should close with %d: %v", code, err)
	}
}

// expectFatal reads a fatal error whose text holds want, then the close.
func (c *ptyClient) expectFatal(want string, code websocket.StatusCode) {
	c.tb.Helper()
	m := c.mustNext("error")
	if m.Fatal == nil || !*m.Fatal || !strings.Contains(m.Data, want) {
		c.tb.Errorf("error %+v, want a fatal one saying %q", m, want)
	}
	c.expectClose(code)
}

// startShell starts /bin/bash as the SDK does, and returns its tag and pid.
func startShell(c *ptyClient) (string, int) {
	c.tb.Helper()
	c.send(ptyMessage{Type: "start", Cmd: "/bin/bash", Cols: 80, Rows: 24})
	m := c.mustNext("started")
	if !ptyTag.MatchString(m.Tag) || m.PID <= 0 {
		c.tb.Fatalf("started %+v", m)
	}
	return m.Tag, m.PID
}

// TestTerminal drives issue 11's terminals through the public API against
// a real guest: bash on a terminal (TERM, stty size after a resize, job
// control, top, vi), a dropped WebSocket reconnected by tag to the same shell,
// output printed while nobody was connected, a pause and resume survived,
// two terminals at once, kill and exit; and the refusals: another team's
// sandbox, a bad first message, an unknown tag.
func TestTerminal(t *testing.T) {
	s := startVMServer(t, shortTempDir(t))
	key := s.account("pty@example.com")
	other := s.account("pty-other@example.com")
	sb := s.create(key, map[string]any{"template": "minimal", "vcpus": 1, "memory_mb": 512, "timeout_sec": 600})
	t.Cleanup(func() { s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil) }) // on failure; else already gone

	t.Run("refusals", func(t *testing.T) {
		if _, resp, err := s.dialPty(t, other, sb.ID); err == nil || resp == nil || resp.StatusCode != 404 {
			t.Errorf("another team's sandbox: %v %v", resp, err)
		}
		if _, resp, err := s.dialPty(t, key, "sb-nosuch"); err == nil || resp == nil || resp.StatusCode != 404 {
			t.Errorf("no such sandbox: %v %v", resp, err)
		}
		c := s.mustDialPty(t, key, sb.ID)
		if err := c.ws.Write(context.Background(), websocket.MessageText, []byte(`{"type":"hello"}`)); err != nil {
			t.Fatal(err)
		}
		c.expectFatal("first message", websocket.StatusPolicyViolation)
		c = s.mustDialPty(t, key, sb.ID)
		c.send(ptyMessage{Type: "connect", Tag: "pty-00000000"})
		c.expectFatal("no terminal", websocket.StatusNormalClosure)
		c = s.mustDialPty(t, key, sb.ID)
		c.send(ptyMessage{Type: "start", Cmd: "/no/such/program"})
		c.expectFatal("No such file", websocket.StatusNormalClosure)
	})

	// What the Python SDK's own tests do: a command that exits at once,
	// and a shell with envs and a cwd.
	t.Run("sdk", func(t *testing.T) {
		c := s.mustDialPty(t, key, sb.ID)
		c.send(ptyMessage{Type: "start", Cmd: "/bin/echo", Args: []string{"immediate"}, Cols: 80, Rows: 24})
		c.mustNext("started")
		if code := c.waitExit(); code != 0 || !strings.Contains(c.out.String(), "immediate") {
			t.Errorf("echo: exit %d, output %q", code, c.out.String())
		}
		c = s.mustDialPty(t, key, sb.ID)
		c.send(ptyMessage{Type: "start", Cmd: "/bin/sh", Cols: 80, Rows: 24, Envs: map[string]string{"MY_VAR": "hello_env"}, Cwd: "/tmp"})
		c.mustNext("started")
		c.input("echo $MY_VAR $(pwd)\n")
		c.waitFor(0, "hello_env /tmp")
		c.input("exit\n")
		if code := c.waitExit(); code != 0 {
			t.Errorf("sh: exit %d", code)
		}
		// 0.1.5's user: the template's users (minimal has root and the
		// system's own, such as nobody).
		c = s.mustDialPty(t, key, sb.ID)
		c.send(ptyMessage{Type: "start", Cmd: "/bin/sh", Args: []string{"-c", "echo $(id -un)@$(pwd)"}, User: "nobody"})
		c.mustNext("started")
		if code := c.waitExit(); code != 0 || !strings.Contains(c.out.String(), "nobody@/") {
			t.Errorf("as nobody: exit %d, output %q", code, c.out.String())
		}
		c = s.mustDialPty(t, key, sb.ID)
		c.send(ptyMessage{Type: "start", User: "no-such-user"})
		c.expectFatal("no-such-user", websocket.StatusNormalClosure)
	})

	c := s.mustDialPty(t, key, sb.ID)
	tag, pid := startShell(c)
	mark := c.out.Len()
	c.input("PS1='$ '; FOO=bar123; echo T=$TERM; stty size\n")
	mark = c.waitFor(mark, "T=xterm-256color")
	mark = c.waitFor(mark, "24 80")
	c.send(ptyMessage{Type: "resize", Cols: 120, Rows: 40})
	c.input("stty size\n")
	mark = c.waitFor(mark, "40 120")

	// Job control: a job in the background, listed, then ended by its job spec.
	c.input("sleep 300 &\njobs\n")
	mark = c.waitFor(mark, "Running")
	c.input("kill %1; sleep 0.5\n") // bash reports the job before its next prompt
	mark = c.waitFor(mark, "Terminated")
	// top draws its screen with escape sequences for the terminal.
	c.input("top -d 1 -n 1; echo top-$((1+1))\n")
	mark = c.waitFor(c.waitFor(mark, "load average"), "top-2") // top has exited: it reads keys
	if !strings.Contains(c.out.String(), "\x1b[") {
		t.Errorf("top drew no escape sequences: %q", c.out.String())
	}
	// vi takes the screen (the alternate one, as TERM says), edits and
	// writes a file, and gives the screen back.
	c.input("vi -u NONE /root/vi.txt\n")
	mark = c.waitFor(mark, "\x1b[?1049h")
	c.input("ihello-vi\x1b:wq\r")
	mark = c.waitFor(mark, "\x1b[?1049l")
	c.input("cat /root/vi.txt\n")
	mark = c.waitFor(mark, "hello-vi\r\n")

	// A dropped WebSocket: the shell runs on, and what it prints meanwhile
	// is there for the reconnect, to the same shell.
	// (Output on its way to a connection that drops is lost: the echo
	// comes well after the drop has reached the guest.)
	c.input("sleep 2; echo late-$FOO\n")
	time.Sleep(200 * time.Millisecond)
	c.ws.CloseNow()
	time.Sleep(4 * time.Second)
	c = s.mustDialPty(t, key, sb.ID)
	c.send(ptyMessage{Type: "connect", Tag: tag})
	if m := c.mustNext("started"); m.Tag != tag || m.PID != pid {
		t.Errorf("reconnected to %+v, want %s pid %d", m, tag, pid)
	}
	mark = c.waitFor(0, "late-bar123")
	c.input("echo X${FOO}Y\n")
	mark = c.waitFor(mark, "Xbar123Y")

	// Two terminals at once, each its own shell.
	c2 := s.mustDialPty(t, key, sb.ID)
	tag2, _ := startShell(c2)
	if tag2 == tag {
		t.Fatalf("two terminals share tag %s", tag)
	}
	c2.input("echo second-${FOO}-end\n")
	c2.waitFor(0, "second--end")
	c.input("echo first-${FOO}-end\n")
	mark = c.waitFor(mark, "first-bar123-end")
	if strings.Contains(c.out.String(), "second-") && !strings.Contains(c.out.String(), "echo second") {
		t.Errorf("the first terminal got the second's output")
	}

	// A pause cuts the connections off; after the resume both terminals
	// are there, as they were.
	s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", key, nil, nil)
	for _, cc := range []*ptyClient{c, c2} {
		for {
			m, err := cc.next(60 * time.Second)
			if err != nil {
				break // closed
			}
			if m.Type == "error" && (m.Fatal == nil || !*m.Fatal) {
				t.Errorf("a pause's error should be fatal: %+v", m)
			}
		}
	}
	s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/resume", key, nil, nil)
	c = s.mustDialPty(t, key, sb.ID)
	c.send(ptyMessage{Type: "connect", Tag: tag})
	if m := c.mustNext("started"); m.Tag != tag || m.PID != pid {
		t.Errorf("after resume: %+v", m)
	}
	c.input("echo again-${FOO}\n")
	c.waitFor(0, "again-bar123")

	// kill ends the second terminal's shell: exit 137 (SIGKILL), then the
	// server closes; its tag is gone.
	c2 = s.mustDialPty(t, key, sb.ID)
	c2.send(ptyMessage{Type: "connect", Tag: tag2})
	c2.mustNext("started")
	c2.send(ptyMessage{Type: "kill"})
	if code := c2.waitExit(); code != 137 {
		t.Errorf("killed: exit code %d, want 137", code)
	}
	c2 = s.mustDialPty(t, key, sb.ID)
	c2.send(ptyMessage{Type: "connect", Tag: tag2})
	c2.expectFatal("no terminal", websocket.StatusNormalClosure)

	// The shell's own exit.
	c.input("exit 3\n")
	if code := c.waitExit(); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	if r := s.exec(key, sb.ID, "sh -c 'pgrep -x sleep || true'"); strings.TrimSpace(r.Stdout) != "" {
		t.Errorf("processes outlived their terminals: %q", r.Stdout)
	}
	s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
}

// BenchmarkTerminalEcho: a keystroke typed into bash on a terminal,
// through the public WebSocket, to its echo coming back from readline.
// Each iteration types a character and erases it: two keystrokes, two
// samples.
func BenchmarkTerminalEcho(b *testing.B) {
	s, key := benchServer(b)
	sb := s.create(key, map[string]any{"template": "minimal"})
	b.Cleanup(func() { s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil) })
	c := s.mustDialPty(b, key, sb.ID)
	startShell(c)
	// Typed ahead, the line is echoed before the shell's first prompt and
	// again after it, so what shows the shell is back at its prompt is
	// output that no echo holds.
	c.input("PS1='$ '; echo ready-$((40+2))\n")
	c.waitFor(c.waitFor(0, "ready-42"), "$ ")
	samples := make([]time.Duration, 0, 2*b.N)
	keystroke := func(k, echo string) {
		start := time.Now()
		c.input(k)
		c.waitFor(c.out.Len(), echo)
		samples = append(samples, time.Since(start))
	}
	for b.Loop() {
		keystroke("a", "a")
		keystroke("\x7f", "\b")
	}
	reportQuantiles(b, "echo", samples)
	c.send(ptyMessage{Type: "kill"})
	c.waitExit()
}

// TestTerminalSurvivesAgentRestart: the host agent killed as a crash
// would, and started again, finds the sandbox's terminal still there: the
// terminal lives in the guest, not in the agent.
func TestTerminalSurvivesAgentRestart(t *testing.T) {
	a := startApart(t, "pty-restart-token")
	s := a.s
	key := s.account("pty-restart@example.com")
	sb := s.create(key, map[string]any{"template": "minimal", "timeout_sec": 600})
	t.Cleanup(func() { s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil) })
	c := s.mustDialPty(t, key, sb.ID)
	tag, pid := startShell(c)
	c.input("BAR=kept42; echo set-$((6*7))\n")
	c.waitFor(0, "set-42")

	a.restartAgent()
	// The connection through the killed agent ends, with a fatal error
	// or just closed.
	for {
		m, err := c.next(60 * time.Second)
		if err != nil {
			break
		}
		if m.Type == "error" && (m.Fatal == nil || !*m.Fatal) {
			t.Errorf("the agent's death should be fatal: %+v", m)
		}
	}
	var c2 *ptyClient
	eventually(t, 60*time.Second, func() string {
		c2 = s.mustDialPty(t, key, sb.ID)
		c2.send(ptyMessage{Type: "connect", Tag: tag})
		m, err := c2.next(30 * time.Second)
		if err != nil || m.Type != "started" {
			return fmt.Sprintf("connect after the restart: %+v %v", m, err)
		}
		if m.Tag != tag || m.PID != pid {
			t.Fatalf("connected to %+v, want %s pid %d", m, tag, pid)
		}
		return ""
	})
	c2.input("echo got-$BAR\n")
	c2.waitFor(0, "got-kept42")
	c2.send(ptyMessage{Type: "kill"})
	if code := c2.waitExit(); code != 137 {
		t.Errorf("killed: %d", code)
	}
	s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
}

package httpapi_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

func TestCreateSandboxValidation(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			var specs []wrenn.SandboxSpec
			agent := fakeHost()
			agent.CreateSandboxFn = func(_ context.Context, s wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
				specs = append(specs, s)
				return wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "169.254.0.22"}, nil
			}
			e := newEnv(t, engine, envOptions{agent: agent})
			key := e.newKey(e.signup("v@example.com").Token)
			for _, tc := range []struct {
				name string
				body any
				want int
			}{
				{"vcpus 0", map[string]any{"vcpus": 0}, 400},
				{"vcpus 9", map[string]any{"vcpus": 9}, 400},
				{"memory 127", map[string]any{"memory_mb": 127}, 400},
				{"memory 8193", map[string]any{"memory_mb": 8193}, 400},
				{"negative timeout", map[string]any{"timeout_sec": -1}, 400},
				{"unknown template", map[string]any{"template": "nope"}, 400},
				{"empty template", map[string]any{"template": ""}, 400},
				{"fractional vcpus", `{"vcpus": 1.5}`, 400},
				{"huge memory", `{"memory_mb": 1e30}`, 400},
				{"bounds", map[string]any{"vcpus": 8, "memory_mb": 8192, "timeout_sec": 0}, 201},
				{"low bounds", map[string]any{"vcpus": 1, "memory_mb": 128}, 201},
			} {
				t.Run(tc.name, func(t *testing.T) {
					got, body := e.do("POST", "/v1/sandboxes", apiKey(key), tc.body)
					if got != tc.want {
						t.Fatalf("status %d, want %d: %s", got, tc.want, body)
					}
					if got == 400 && errCode(t, body) != "invalid_request" {
						t.Fatalf("code %s", body)
					}
				})
			}
			var sb sandboxResp
			e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{}, &sb)
			if sb.Template != "minimal" || sb.VCPUs != 1 || sb.MemoryMB != 512 || sb.TimeoutSec != 300 || sb.Status != "running" {
				t.Errorf("defaults: %+v", sb)
			}
			if sb.GuestIP == "" || sb.StartedAt == nil || sb.LastActiveAt == nil {
				t.Errorf("running sandbox lacks fields: %+v", sb)
			}
			if len(specs) != 3 {
				t.Errorf("agent asked %d times, want 3 (only valid requests reach it)", len(specs))
			}
		})
	}
}

func TestAgentFailureLeavesNothing(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			agent := fakeHost()
			agent.CreateSandboxFn = func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
				return wrenn.SandboxNet{}, errors.New("qemu exploded at /var/lib/secret/path")
			}
			e := newEnv(t, engine, envOptions{agent: agent})
			key := e.newKey(e.signup("f@example.com").Token)
			got, body := e.do("POST", "/v1/sandboxes", apiKey(key), map[string]any{})
			if got != 502 || errCode(t, body) != "host_agent_error" {
				t.Fatalf("create = %d %s, want 502", got, body)
			}
			if strings.Contains(string(body), "secret") {
				t.Errorf("internal detail leaked to the client: %s", body)
			}
			var sbs []sandboxResp
			e.must(200, "GET", "/v1/sandboxes", apiKey(key), nil, &sbs)
			if len(sbs) != 0 {
				t.Errorf("failed create left %d sandboxes", len(sbs))
			}

			// With no host agent at all: 502, nothing recorded.
			e2 := newEnv(t, engine, envOptions{})
			key2 := e2.newKey(e2.signup("n@example.com").Token)
			if got, body := e2.do("POST", "/v1/sandboxes", apiKey(key2), map[string]any{}); got != 502 {
				t.Fatalf("create without agent = %d %s, want 502", got, body)
			}
			e2.must(200, "GET", "/v1/sandboxes", apiKey(key2), nil, &sbs)
			if len(sbs) != 0 {
				t.Errorf("failed create left %d sandboxes", len(sbs))
			}
		})
	}
}

func TestSandboxStates(t *testing.T) {
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: fakeHost()})
	key := e.newKey(e.signup("s@example.com").Token)
	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{}, &sb)
	p := "/v1/sandboxes/" + sb.ID

	if got, _ := e.do("POST", p+"/resume", apiKey(key), nil); got != 409 {
		t.Errorf("resume running = %d, want 409", got)
	}
	e.must(204, "POST", p+"/ping", apiKey(key), nil, nil)
	var paused sandboxResp
	e.must(200, "POST", p+"/pause", apiKey(key), nil, &paused)
	if paused.Status != "paused" {
		t.Errorf("after pause: %s", paused.Status)
	}
	for _, tc := range []struct{ method, path string }{
		{"POST", p + "/pause"}, {"POST", p + "/exec"}, {"POST", p + "/files/read"}, {"POST", p + "/ping"},
	} {
		body := map[string]any{"cmd": "true", "path": "/x"}
		if got, out := e.do(tc.method, tc.path, apiKey(key), body); got != 409 || errCode(t, out) != "conflict" {
			t.Errorf("%s %s on paused = %d %s, want 409", tc.method, tc.path, got, out)
		}
	}
	if got, _ := e.do("POST", "/v1/snapshots", apiKey(key), map[string]any{"sandbox_id": sb.ID}); got != 409 {
		t.Errorf("snapshot of paused = %d, want 409", got)
	}
	var resumed sandboxResp
	e.must(200, "POST", p+"/resume", apiKey(key), nil, &resumed)
	if resumed.Status != "running" {
		t.Errorf("after resume: %s", resumed.Status)
	}
	e.must(204, "DELETE", p, apiKey(key), nil, nil)
	var stopped sandboxResp
	e.must(200, "GET", p, apiKey(key), nil, &stopped)
	if stopped.Status != "stopped" {
		t.Errorf("get destroyed: %s, want stopped", stopped.Status)
	}
	var list []sandboxResp
	e.must(200, "GET", "/v1/sandboxes", apiKey(key), nil, &list)
	if len(list) != 0 {
		t.Errorf("list holds the destroyed sandbox: %+v", list)
	}
	e.must(200, "GET", "/v1/sandboxes?status=stopped", apiKey(key), nil, &list)
	if len(list) != 1 || list[0].ID != sb.ID {
		t.Errorf("list of stopped: %+v", list)
	}
	for _, tc := range []struct{ method, path string }{
		{"POST", p + "/resume"}, {"POST", p + "/exec"}, {"POST", p + "/pause"}, {"POST", p + "/ping"},
	} {
		body := map[string]any{"cmd": "true"}
		if got, out := e.do(tc.method, tc.path, apiKey(key), body); got != 409 {
			t.Errorf("%s %s on stopped = %d %s, want 409", tc.method, tc.path, got, out)
		}
	}
	if got, _ := e.do("DELETE", p, apiKey(key), nil); got != 404 {
		t.Errorf("destroy twice = %d, want 404", got)
	}
}

func TestExecEncoding(t *testing.T) {
	agent := fakeHost()
	agent.ExecFn = func(_ context.Context, _ string, req wrenn.ExecRequest) (*wrenn.ExecResult, error) {
		if req.Timeout != 30*time.Second {
			return nil, fmt.Errorf("default timeout %v", req.Timeout)
		}
		if req.Cmd == "bin" {
			return &wrenn.ExecResult{Stdout: []byte{0xff, 0, 1}, Stderr: []byte("ok"), ExitCode: 3}, nil
		}
		return &wrenn.ExecResult{Stdout: []byte("héllo\n"), ExitCode: 0}, nil
	}
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: agent})
	key := e.newKey(e.signup("x@example.com").Token)
	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{}, &sb)

	var out struct {
		Stdout, Stderr, Encoding string
		ExitCode                 int `json:"exit_code"`
	}
	e.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/exec", apiKey(key), map[string]any{"cmd": "text"}, &out)
	if out.Stdout != "héllo\n" || out.Encoding != "utf-8" {
		t.Errorf("text exec: %+v", out)
	}
	e.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/exec", apiKey(key), map[string]any{"cmd": "bin"}, &out)
	raw, _ := base64.StdEncoding.DecodeString(out.Stdout)
	errOut, _ := base64.StdEncoding.DecodeString(out.Stderr)
	if out.Encoding != "base64" || string(raw) != "\xff\x00\x01" || string(errOut) != "ok" || out.ExitCode != 3 {
		t.Errorf("binary exec: %+v", out)
	}
	if got, _ := e.do("POST", "/v1/sandboxes/"+sb.ID+"/exec", apiKey(key), map[string]any{"cmd": ""}); got != 400 {
		t.Errorf("empty cmd = %d, want 400", got)
	}
}

// fakeStream replays events and records a stop.
type fakeStream struct {
	events  chan wrenn.ExecEvent
	stopped chan struct{}
}

func (f *fakeStream) Recv() (wrenn.ExecEvent, error) {
	ev, ok := <-f.events
	if !ok {
		return wrenn.ExecEvent{}, io.EOF
	}
	return ev, nil
}
func (f *fakeStream) Stop() error  { close(f.stopped); return nil }
func (f *fakeStream) Close() error { return nil }

func TestExecStream(t *testing.T) {
	fs := &fakeStream{events: make(chan wrenn.ExecEvent, 8), stopped: make(chan struct{})}
	agent := fakeHost()
	agent.StartExecFn = func(_ context.Context, _ string, req wrenn.ExecRequest) (wrenn.ExecStream, error) {
		if req.Cmd != "tail" || len(req.Args) != 2 {
			return nil, fmt.Errorf("unexpected request %+v", req)
		}
		fs.events <- wrenn.ExecEvent{Type: wrenn.ExecStarted, PID: 42}
		fs.events <- wrenn.ExecEvent{Type: wrenn.ExecStdout, Data: []byte("h\xc3")} // split rune
		fs.events <- wrenn.ExecEvent{Type: wrenn.ExecStdout, Data: []byte("\xa9\n")}
		fs.events <- wrenn.ExecEvent{Type: wrenn.ExecStderr, Data: []byte("warn\n")}
		return fs, nil
	}
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: agent})
	key := e.newKey(e.signup("w@example.com").Token)
	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{}, &sb)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/v1/sandboxes/" + sb.ID + "/exec/stream"
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: map[string][]string{"X-Api-Key": {key}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	if err := wsjson.Write(ctx, conn, map[string]any{"type": "start", "cmd": "tail", "args": []string{"-f", "/x"}}); err != nil {
		t.Fatal(err)
	}
	type msg struct {
		Type     string  `json:"type"`
		PID      int     `json:"pid"`
		Data     string  `json:"data"`
		ExitCode *int    `json:"exit_code"`
		Encoding *string `json:"encoding"`
	}
	var got []msg
	for len(got) < 4 {
		var m msg
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		got = append(got, m)
	}
	if got[0].Type != "start" || got[0].PID != 42 || got[1].Data != "h" || got[2].Data != "é\n" || got[3].Type != "stderr" {
		t.Fatalf("events %+v", got)
	}
	if err := wsjson.Write(ctx, conn, map[string]any{"type": "stop"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-fs.stopped:
	case <-ctx.Done():
		t.Fatal("stop never reached the agent")
	}
	fs.events <- wrenn.ExecEvent{Type: wrenn.ExecExited, ExitCode: 143}
	close(fs.events)
	var exit msg
	if err := wsjson.Read(ctx, conn, &exit); err != nil || exit.Type != "exit" || exit.ExitCode == nil || *exit.ExitCode != 143 {
		t.Fatalf("exit event %+v, %v", exit, err)
	}
	if _, _, err := conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Fatalf("after exit the server should close normally, got %v", err)
	}

	// Not running: refused before the upgrade, with a status.
	e.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/pause", apiKey(key), nil, nil)
	_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: map[string][]string{"X-Api-Key": {key}}})
	if err == nil || resp == nil || resp.StatusCode != 409 {
		t.Fatalf("stream on paused sandbox: %v %v", resp, err)
	}
}

func TestUploadLimit(t *testing.T) {
	var written int64
	agent := fakeHost()
	agent.WriteFileFn = func(_ context.Context, _, path string, r io.Reader) error {
		n, err := io.Copy(io.Discard, r)
		if err != nil {
			return err // the agent drops the partial file
		}
		written = n
		return nil
	}
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: agent, maxUpload: 1000})
	key := e.newKey(e.signup("u@example.com").Token)
	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{}, &sb)
	form := func(path string, size int) string {
		return fmt.Sprintf("--b\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n%s\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n%s\r\n--b--\r\n", path, strings.Repeat("z", size))
	}
	mp := apiKey(key)
	mp["Content-Type"] = "multipart/form-data; boundary=b"
	for _, tc := range []struct {
		name, route, path string
		size, want        int
	}{
		{"at limit", "write", "/tmp/a", 1000, 204},
		{"over limit", "write", "/tmp/a", 1001, 413},
		{"far over limit", "write", "/tmp/a", 100000, 413},
		{"streamed has no limit", "stream/write", "/tmp/a", 100000, 204},
		{"relative path", "write", "tmp/a", 10, 400},
		{"relative path streamed", "stream/write", "a", 10, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			written = -1
			got, body := e.do("POST", "/v1/sandboxes/"+sb.ID+"/files/"+tc.route, mp, form(tc.path, tc.size))
			if got != tc.want {
				t.Fatalf("status %d, want %d: %s", got, tc.want, body)
			}
			if got == 204 && written != int64(tc.size) {
				t.Fatalf("agent got %d bytes, want %d", written, tc.size)
			}
			if got != 204 && written != -1 {
				t.Fatalf("a refused upload completed a file of %d bytes", written)
			}
		})
	}
	// The file field must follow the path field.
	reversed := "--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nx\r\n--b\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n/tmp/a\r\n--b--\r\n"
	if got, _ := e.do("POST", "/v1/sandboxes/"+sb.ID+"/files/write", mp, reversed); got != 400 {
		t.Errorf("file before path = %d, want 400", got)
	}
}

// TestUploadIncomplete: a multipart body that ends before its closing
// boundary is refused as incomplete, whatever the agent made of the short
// file, and the agent is told through its reader.
func TestUploadIncomplete(t *testing.T) {
	var written int64
	var readErr error
	agent := fakeHost()
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: agent, maxUpload: 1 << 20})
	key := e.newKey(e.signup("short@example.com").Token)
	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{}, &sb)
	mp := apiKey(key)
	mp["Content-Type"] = "multipart/form-data; boundary=b"
	whole := "--b\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n/tmp/a\r\n" +
		"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\n" + strings.Repeat("z", 100000) + "\r\n--b--\r\n"
	// Passes the reader's error on and keeps nothing, as the real agent does.
	careful := func(_ context.Context, _, _ string, r io.Reader) error {
		n, err := io.Copy(io.Discard, r)
		readErr = err
		if err != nil {
			return err
		}
		written = n
		return nil
	}
	// Reports success whatever its reader says.
	careless := func(_ context.Context, _, _ string, r io.Reader) error {
		n, err := io.Copy(io.Discard, r)
		readErr = err
		written = n
		return nil
	}
	for _, a := range []struct {
		name string
		fn   func(context.Context, string, string, io.Reader) error
	}{{"careful agent", careful}, {"careless agent", careless}} {
		agent.WriteFileFn = a.fn
		for _, route := range []string{"write", "stream/write"} {
			// 9 bytes: the data whole, the closing boundary missing.
			for _, cut := range []int{9, 10, 1000} {
				t.Run(fmt.Sprintf("%s %s %d bytes short", a.name, route, cut), func(t *testing.T) {
					written, readErr = -1, nil
					got, body := e.do("POST", "/v1/sandboxes/"+sb.ID+"/files/"+route, mp, whole[:len(whole)-cut])
					if got != 400 || errCode(t, body) != "invalid_request" || !strings.Contains(string(body), "incomplete") {
						t.Fatalf("status %d %s, want 400 invalid_request saying the upload was incomplete", got, body)
					}
					if readErr == nil {
						t.Error("the agent's reader did not fail")
					}
					if a.name == "careful agent" && written != -1 {
						t.Errorf("the agent completed a file of %d bytes", written)
					}
				})
			}
		}
	}
	// The whole body still goes through.
	agent.WriteFileFn = careful
	if got, body := e.do("POST", "/v1/sandboxes/"+sb.ID+"/files/write", mp, whole); got != 204 || written != 100000 {
		t.Fatalf("whole body: %d %s, agent wrote %d bytes", got, body, written)
	}
}

// TestSnapshotTemplateSizes: a sandbox from a snapshot template has the
// template's sizes; asking for others is a 400 that names them.
func TestSnapshotTemplateSizes(t *testing.T) {
	agent := fakeHost()
	var got wrenn.SandboxSpec
	agent.CreateSandboxFn = func(_ context.Context, spec wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
		got = spec
		return wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "169.254.0.22"}, nil
	}
	agent.CreateSnapshotFn = func(_ context.Context, _ string, t *wrenn.Template) error {
		v, m := 2, 1024
		t.VCPUs, t.MemoryMB = &v, &m
		return nil
	}
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: agent})
	key := e.newKey(e.signup("sizes@example.com").Token)
	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{}, &sb)
	if got.VCPUs != 1 || got.MemoryMB != 512 {
		t.Errorf("base template defaults: %d vcpus, %d MiB", got.VCPUs, got.MemoryMB)
	}
	e.must(201, "POST", "/v1/snapshots", apiKey(key), map[string]any{"sandbox_id": sb.ID, "name": "big"}, nil)

	var from sandboxResp
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{"template": "big"}, &from)
	if from.VCPUs != 2 || from.MemoryMB != 1024 || got.VCPUs != 2 || got.MemoryMB != 1024 {
		t.Errorf("from the template: sandbox %d/%d, agent asked for %d/%d, want 2/1024",
			from.VCPUs, from.MemoryMB, got.VCPUs, got.MemoryMB)
	}
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{"template": "big", "vcpus": 2, "memory_mb": 1024}, nil)
	for _, body := range []map[string]any{
		{"template": "big", "memory_mb": 512},
		{"template": "big", "vcpus": 1},
	} {
		code, out := e.do("POST", "/v1/sandboxes", apiKey(key), body)
		if code != 400 || !strings.Contains(string(out), "2 vcpus and 1024 MiB") {
			t.Errorf("%v = %d %s, want 400 naming the template's sizes", body, code, out)
		}
	}
}

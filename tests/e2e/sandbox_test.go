package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// TestSandboxLifecycle drives one sandbox through the public API: create,
// exec in its forms, a WebSocket stream with stop, file transfers, and
// destroy; then checks the host is left as it was found.
func TestSandboxLifecycle(t *testing.T) {
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir)
	key := s.account("life@example.com")
	before := snapshotHost(t, dataDir)

	sb := s.create(key, map[string]any{"template": "minimal", "vcpus": 1, "memory_mb": 512, "timeout_sec": 600})
	if sb.Status != "running" || sb.GuestIP == "" || sb.HostIP == "" {
		t.Fatalf("created %+v", sb)
	}

	t.Run("exec", func(t *testing.T) {
		if r := s.exec(key, sb.ID, "echo hello"); r.Stdout != "hello\n" || r.ExitCode != 0 || r.Encoding != "utf-8" {
			t.Errorf("echo hello: %+v", r)
		}
		if r := s.exec(key, sb.ID, "sh", "-c", "echo out; echo err >&2; exit 3"); r.Stdout != "out\n" || r.Stderr != "err\n" || r.ExitCode != 3 {
			t.Errorf("non-zero exit with stderr: %+v", r)
		}
		r := s.exec(key, sb.ID, "printf", `\377\000\001`)
		raw, err := base64.StdEncoding.DecodeString(r.Stdout)
		if r.Encoding != "base64" || err != nil || !bytes.Equal(raw, []byte{0xff, 0, 1}) {
			t.Errorf("binary output: %+v", r)
		}
		for _, tool := range []string{"bash --version", "python3 -c 'print(6*7)'", "curl --version", "ps -p 1 -o comm=", "ip -brief addr"} {
			if r := s.exec(key, sb.ID, tool); r.ExitCode != 0 {
				t.Errorf("%s: %+v", tool, r)
			}
		}
		// Under TCG envd's sysmon runs with a coarse timer slack
		// (docs/GUEST.md); the commands it starts keep the kernel's 50 µs.
		if r := s.exec(key, sb.ID, `grep -qw wrenn.emulated=1 /proc/cmdline || exit 0; p=$(pgrep -f 'envd serve' | head -1); cat /proc/$(ls /proc/$p/task | sort -n | sed -n 2p)/timerslack_ns`); r.ExitCode != 0 || (r.Stdout != "" && r.Stdout != "1000000\n") {
			t.Errorf("envd's sysmon timer slack: %+v", r)
		}
		for range 5 {
			if r := s.exec(key, sb.ID, "cat /proc/self/timerslack_ns"); r.Stdout != "50000\n" {
				t.Errorf("a command's timer slack: %+v", r)
			}
		}
		start := time.Now()
		var res execResult
		s.must(200, "POST", "/v1/sandboxes/"+sb.ID+"/exec", key,
			map[string]any{"cmd": "sh", "args": []string{"-c", "sleep 30 & sleep 30; echo never"}, "timeout_sec": 2}, &res)
		if res.ExitCode == 0 || strings.Contains(res.Stdout, "never") || time.Since(start) > 20*time.Second {
			t.Errorf("timeout: %+v after %s", res, time.Since(start))
		}
		// The whole process group died, the backgrounded sleep too.
		if r := s.exec(key, sb.ID, "sh -c 'pgrep -x sleep || true'"); strings.TrimSpace(r.Stdout) != "" {
			t.Errorf("processes outlived the timeout: %q", r.Stdout)
		}
	})

	t.Run("stream", func(t *testing.T) { testStream(t, s, key, sb.ID) })
	t.Run("files", func(t *testing.T) { testFiles(t, s, key, sb.ID) })

	s.must(204, "DELETE", "/v1/sandboxes/"+sb.ID, key, nil, nil)
	var gone sandbox
	if s.must(200, "GET", "/v1/sandboxes/"+sb.ID, key, nil, &gone); gone.Status != "stopped" {
		t.Errorf("destroyed sandbox reads %s, want stopped", gone.Status)
	}
	eventually(t, 30*time.Second, func() string { return before.diff(snapshotHost(t, dataDir)) })
}

func testStream(t *testing.T, s *server, key hdr, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(s.url, "http") + "/v1/sandboxes/" + id + "/exec/stream"
	type event struct {
		Type     string `json:"type"`
		PID      int    `json:"pid"`
		Data     string `json:"data"`
		ExitCode *int   `json:"exit_code"`
	}
	dial := func() *websocket.Conn {
		conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {key["X-API-Key"]}}})
		if err != nil {
			t.Fatal(err)
		}
		return conn
	}
	// Output and exit of a short command, then the server closes.
	conn := dial()
	defer conn.CloseNow()
	if err := wsjson.Write(ctx, conn, map[string]any{"type": "start", "cmd": "sh", "args": []string{"-c", "echo one; echo two >&2; exit 4"}}); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr string
	var exit *int
	var sawStart bool
	for exit == nil {
		var ev event
		if err := wsjson.Read(ctx, conn, &ev); err != nil {
			t.Fatalf("read: %v (stdout %q stderr %q)", err, stdout, stderr)
		}
		switch ev.Type {
		case "start":
			sawStart = ev.PID > 0
		case "stdout":
			stdout += ev.Data
		case "stderr":
			stderr += ev.Data
		case "exit":
			exit = ev.ExitCode
		default:
			t.Fatalf("unexpected event %+v", ev)
		}
	}
	if !sawStart || stdout != "one\n" || stderr != "two\n" || *exit != 4 {
		t.Errorf("start %v stdout %q stderr %q exit %d", sawStart, stdout, stderr, *exit)
	}
	if _, _, err := conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
		t.Errorf("after exit the server should close the connection: %v", err)
	}

	// stop: SIGTERM reaches a process that traps it.
	conn2 := dial()
	defer conn2.CloseNow()
	script := `trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.1; done`
	if err := wsjson.Write(ctx, conn2, map[string]any{"type": "start", "cmd": "bash", "args": []string{"-c", script}}); err != nil {
		t.Fatal(err)
	}
	out := ""
	for !strings.Contains(out, "ready") {
		var ev event
		if err := wsjson.Read(ctx, conn2, &ev); err != nil {
			t.Fatal(err)
		}
		out += ev.Data
	}
	if err := wsjson.Write(ctx, conn2, map[string]any{"type": "stop"}); err != nil {
		t.Fatal(err)
	}
	for {
		var ev event
		if err := wsjson.Read(ctx, conn2, &ev); err != nil {
			t.Fatalf("after stop: %v (output %q)", err, out)
		}
		out += ev.Data
		if ev.Type == "exit" {
			if ev.ExitCode == nil || *ev.ExitCode != 7 || !strings.Contains(out, "got-term") {
				t.Errorf("stop: exit %v, output %q", ev.ExitCode, out)
			}
			break
		}
	}
}

// randomReader yields n deterministic pseudo-random bytes.
func randomReader(seed uint64, n int64) io.Reader {
	return io.LimitReader(rand.NewChaCha8([32]byte{byte(seed)}), n)
}

// upload posts a multipart upload of n random bytes to path through route
// ("write" or "stream/write") without holding it in memory, and returns
// the SHA-256 of what was sent.
func upload(t testing.TB, s *server, key hdr, id, route, path string, n int64) string {
	t.Helper()
	h := sha256.New()
	uploadFrom(t, s, key, id, route, path, io.TeeReader(randomReader(uint64(n), n), h))
	return hex.EncodeToString(h.Sum(nil))
}

// uploadFrom posts a multipart upload of what r yields to path through
// route, streaming it.
func uploadFrom(t testing.TB, s *server, key hdr, id, route, path string, r io.Reader) {
	t.Helper()
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		_ = mw.WriteField("path", path)
		fw, err := mw.CreateFormFile("file", "data")
		if err == nil {
			_, err = io.Copy(fw, r)
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, _ := http.NewRequest("POST", s.url+"/v1/sandboxes/"+id+"/files/"+route, pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-API-Key", key["X-API-Key"])
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 204 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("upload to %s via %s = %d %s", path, route, resp.StatusCode, b)
	}
}

// download reads path through route ("read" or "stream/read") and returns
// its SHA-256 and size.
func download(t testing.TB, s *server, key hdr, id, route, path string) (string, int64) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.url+"/v1/sandboxes/"+id+"/files/"+route, strings.NewReader(mustJSON(map[string]string{"path": path})))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-API-Key", key["X-API-Key"])
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("download %s = %d %s", path, resp.StatusCode, b)
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		t.Fatalf("download %s: %v", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n
}

func testFiles(t *testing.T, s *server, key hdr, id string) {
	for _, tc := range []struct {
		name, write, read, path string
		size                    int64
	}{
		{"1 MiB", "write", "read", "/root/one.bin", 1 << 20},
		{"256 MiB streamed", "stream/write", "stream/read", "/root/big.bin", 256 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent := upload(t, s, key, id, tc.write, tc.path, tc.size)
			got, n := download(t, s, key, id, tc.read, tc.path)
			if got != sent || n != tc.size {
				t.Fatalf("sent %s, got %s (%d bytes)", sent, got, n)
			}
			// The guest has the very bytes.
			if r := s.exec(key, id, "sha256sum "+tc.path); !strings.HasPrefix(r.Stdout, sent) {
				t.Errorf("in the guest: %+v", r)
			}
		})
	}
	if got, body := s.do("POST", "/v1/sandboxes/"+id+"/files/read", key, map[string]string{"path": "/no/such/file"}); got != 404 || errorCode(t, body) != "not_found" {
		t.Errorf("missing file = %d %s", got, body)
	}
	if got, _ := s.do("POST", "/v1/sandboxes/"+id+"/files/read", key, map[string]string{"path": "etc/hostname"}); got != 400 {
		t.Errorf("relative path = %d, want 400", got)
	}
	if r := s.exec(key, id, "hostname"); strings.TrimSpace(r.Stdout) != id {
		t.Errorf("hostname %q, want %s", r.Stdout, id)
	}
}

// TestInactivityAndLimits: a sandbox idle past its timeout_sec is destroyed
// and shows stopped, while activity keeps another alive; the non-streaming
// upload refuses a body over the configured limit and leaves no file.
func TestInactivityAndLimits(t *testing.T) {
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir, "WRENN_MAX_UPLOAD_BYTES=4096")
	key := s.account("idle@example.com")
	idle := s.create(key, map[string]any{"timeout_sec": 3})
	busy := s.create(key, map[string]any{"timeout_sec": 3})
	defer s.do("DELETE", "/v1/sandboxes/"+busy.ID, key, nil)

	if got, body := s.do("POST", "/v1/sandboxes/"+busy.ID+"/files/write", key, nil); got != 415 {
		t.Errorf("upload without multipart = %d %s", got, body)
	}
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		_ = mw.WriteField("path", "/root/too-big")
		fw, _ := mw.CreateFormFile("file", "f")
		_, _ = fw.Write(bytes.Repeat([]byte("x"), 5000))
		pw.CloseWithError(mw.Close())
	}()
	req, _ := http.NewRequest("POST", s.url+"/v1/sandboxes/"+busy.ID+"/files/write", pr)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("X-API-Key", key["X-API-Key"])
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Errorf("upload over the limit = %d, want 413", resp.StatusCode)
	}
	if r := s.exec(key, busy.ID, "sh -c 'ls -a /root | grep -c too-big || true'"); strings.TrimSpace(r.Stdout) != "0" {
		t.Errorf("a refused upload left files: %q", r.Stdout)
	}

	// Watch through the list: a GET of the sandbox itself is activity too.
	deadline := time.Now().Add(30 * time.Second)
	for {
		s.exec(key, busy.ID, "true") // activity
		var list []sandbox
		s.must(200, "GET", "/v1/sandboxes?status=running,stopped", key, nil, &list)
		status := ""
		for _, sb := range list {
			if sb.ID == idle.ID {
				status = sb.Status
			}
		}
		if status == "stopped" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("idle sandbox still %s after 30s", status)
		}
		time.Sleep(500 * time.Millisecond)
	}
	var sb sandbox
	s.must(200, "GET", "/v1/sandboxes/"+busy.ID, key, nil, &sb)
	if sb.Status != "running" {
		t.Errorf("a busy sandbox was stopped: %s", sb.Status)
	}
	if got, _ := s.do("POST", "/v1/sandboxes/"+idle.ID+"/exec", key, map[string]any{"cmd": "true"}); got != 409 {
		t.Errorf("exec in a stopped sandbox = %d, want 409", got)
	}
}

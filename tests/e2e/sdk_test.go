package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"path"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/spectest"
)

// TestPythonSDKWire replays, through the public API, what the official
// Python SDK (wrennhq/python-sdk v0.1.2) sends and checks in the 43 tests
// of its tests/test_integration.py, in their order: the same paths under
// /v1/capsules, the same bodies, headers and multipart layouts, the same
// reading of answers (its models: the 0.1.2 status enum, timestamps with
// a zone, FileEntry types), and its client's 5 s timeout on every call.
// The SDK itself needs PyPI (httpx 0.28, httpx-ws, pydantic 2, Python
// 3.13), which this workplace cannot reach; this is its wire, not it.
func TestPythonSDKWire(t *testing.T) {
	s := startVMServer(t, shortTempDir(t))
	key := s.account("python-sdk@example.com")
	c := &sdkClient{t: t, base: s.url, key: key["X-API-Key"],
		http: &http.Client{Transport: spectest.Transport(t, nil), Timeout: 5 * time.Second}}

	t.Run("TestCapsuleLifecycle", func(t *testing.T) { sdkLifecycle(t, c) })
	t.Run("TestCommands", func(t *testing.T) { sdkCommands(t, c) })
	t.Run("TestFiles", func(t *testing.T) { sdkFiles(t, c) })
	t.Run("TestGit", func(t *testing.T) { sdkGit(t, c) })
}

// sdkClient speaks as the SDK's httpx client does.
type sdkClient struct {
	t    *testing.T
	base string
	key  string
	http *http.Client
}

// sdkError is what the SDK raises for a status of 400 or more: the
// envelope's code picks the exception.
type sdkError struct {
	status int
	code   string
	msg    string
}

func (e *sdkError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

func sdkCode(err error) string {
	if e, ok := errors.AsType[*sdkError](err); ok {
		return e.code
	}
	return ""
}

// call sends a request and handles the answer as the SDK's
// handle_response does: below 400 is success, 204 is {}, any other
// success must be JSON; otherwise the error envelope.
func (c *sdkClient) call(method, p string, body any, out any) error {
	var r io.Reader
	ctype := ""
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r, ctype = bytes.NewReader(b), "application/json"
	}
	return c.send(method, p, r, ctype, -1, out)
}

func (c *sdkClient) send(method, p string, body io.Reader, ctype string, length int64, out any) error {
	req, err := http.NewRequest(method, c.base+p, body)
	if err != nil {
		return err
	}
	if length >= 0 {
		req.ContentLength = length
	}
	req.Header.Set("X-API-Key", c.key)
	req.Header.Set("Accept", "*/*")
	req.Header.Set("User-Agent", "python-httpx/0.28.1")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err // a timeout here is the SDK's httpx.ReadTimeout
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode >= 400 {
		var env struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(data, &env) != nil || env.Error.Code == "" {
			return &sdkError{resp.StatusCode, "internal_error", string(data)}
		}
		return &sdkError{resp.StatusCode, env.Error.Code, env.Error.Message}
	}
	if resp.StatusCode == http.StatusNoContent || out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s = %d: not JSON (the SDK raises): %v: %.200s", method, p, resp.StatusCode, err, data)
	}
	return nil
}

// sdkCapsule is the SDK's Capsule model, checked as pydantic checks it.
type sdkCapsule struct {
	ID           string  `json:"id"`
	Status       string  `json:"status"`
	Template     string  `json:"template"`
	CreatedAt    *string `json:"created_at"`
	StartedAt    *string `json:"started_at"`
	LastActiveAt *string `json:"last_active_at"`
	LastUpdated  *string `json:"last_updated"`
}

// sdkStatuses is the 0.1.2 model's Status enum: any other status fails
// the model's validation.
var sdkStatuses = []string{"pending", "starting", "running", "paused", "hibernated", "stopped", "missing", "error"}

func (cp sdkCapsule) check(t *testing.T) {
	t.Helper()
	if cp.Status != "" && !slices.Contains(sdkStatuses, cp.Status) {
		t.Errorf("capsule %s: status %q is not in the SDK's enum", cp.ID, cp.Status)
	}
	for name, ts := range map[string]*string{"created_at": cp.CreatedAt, "started_at": cp.StartedAt,
		"last_active_at": cp.LastActiveAt, "last_updated": cp.LastUpdated} {
		if ts == nil {
			continue
		}
		// AwareDatetime: RFC 3339 with a zone; Go's RFC3339 parse needs one.
		if _, err := time.Parse(time.RFC3339Nano, *ts); err != nil {
			t.Errorf("capsule %s: %s %q is not a datetime with a zone: %v", cp.ID, name, *ts, err)
		}
	}
}

func (c *sdkClient) create() sdkCapsule {
	c.t.Helper()
	var cp sdkCapsule
	if err := c.call("POST", "/v1/capsules", map[string]any{}, &cp); err != nil {
		c.t.Fatalf("Capsule(): %v", err)
	}
	if cp.ID == "" {
		c.t.Fatalf("Capsule(): no id: %+v", cp)
	}
	cp.check(c.t)
	return cp
}

func (c *sdkClient) get(id string) sdkCapsule {
	c.t.Helper()
	var cp sdkCapsule
	if err := c.call("GET", "/v1/capsules/"+id, nil, &cp); err != nil {
		c.t.Fatalf("get_info(%s): %v", id, err)
	}
	cp.check(c.t)
	return cp
}

// waitReady is wait_ready: GET every 0.5 s until running; resume if
// paused; give up on error or stopped.
func (c *sdkClient) waitReady(t *testing.T, id string, timeout time.Duration) sdkCapsule {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		cp := c.get(id)
		switch cp.Status {
		case "running":
			return cp
		case "error", "stopped":
			t.Fatalf("wait_ready: capsule %s is %s", id, cp.Status)
		case "paused":
			c.lifecycle(t, id, "resume")
		}
		if time.Now().After(deadline) {
			t.Fatalf("wait_ready: capsule %s still %s after %s", id, cp.Status, timeout)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (c *sdkClient) lifecycle(t *testing.T, id, op string) sdkCapsule {
	t.Helper()
	var cp sdkCapsule
	if err := c.call("POST", "/v1/capsules/"+id+"/"+op, nil, &cp); err != nil {
		t.Fatalf("%s(): %v", op, err)
	}
	cp.check(t)
	return cp
}

func (c *sdkClient) destroy(t *testing.T, id string) {
	t.Helper()
	if err := c.call("DELETE", "/v1/capsules/"+id, nil, nil); err != nil {
		t.Fatalf("destroy(): %v", err)
	}
}

func sdkLifecycle(t *testing.T, c *sdkClient) {
	gone := func(t *testing.T, id string) {
		t.Helper()
		if st := c.get(id).Status; st != "stopped" && st != "missing" {
			t.Errorf("after destroy: status %s, want stopped or missing", st)
		}
	}
	t.Run("test_create_and_destroy", func(t *testing.T) {
		cp := c.create()
		c.destroy(t, cp.ID)
		gone(t, cp.ID)
	})
	t.Run("test_create_with_wait", func(t *testing.T) {
		cp := c.create()
		defer c.destroy(t, cp.ID)
		if got := c.waitReady(t, cp.ID, 30*time.Second); got.Status != "running" {
			t.Errorf("status %s", got.Status)
		}
	})
	t.Run("test_context_manager_destroys", func(t *testing.T) {
		cp := c.create()
		c.waitReady(t, cp.ID, 30*time.Second)
		if c.get(cp.ID).Status != "running" {
			t.Error("is_running() false inside the context")
		}
		c.destroy(t, cp.ID)
		gone(t, cp.ID)
	})
	t.Run("test_get_info", func(t *testing.T) {
		cp := c.create()
		defer c.destroy(t, cp.ID)
		c.waitReady(t, cp.ID, 30*time.Second)
		if got := c.get(cp.ID); got.ID != cp.ID || got.Status != "running" {
			t.Errorf("get_info: %+v", got)
		}
	})
	t.Run("test_pause_and_resume", func(t *testing.T) {
		cp := c.create()
		defer c.destroy(t, cp.ID)
		c.waitReady(t, cp.ID, 30*time.Second)
		if got := c.lifecycle(t, cp.ID, "pause"); got.Status != "paused" {
			t.Errorf("pause() answered %s", got.Status)
		}
		if c.get(cp.ID).Status == "running" {
			t.Error("is_running() after pause")
		}
		if got := c.lifecycle(t, cp.ID, "resume"); got.Status != "running" {
			t.Errorf("resume() answered %s", got.Status)
		}
	})
	t.Run("test_static_destroy", func(t *testing.T) {
		cp := c.create()
		c.waitReady(t, cp.ID, 30*time.Second)
		c.destroy(t, cp.ID)
		gone(t, cp.ID)
	})
	t.Run("test_connect_to_existing", func(t *testing.T) {
		cp := c.create()
		defer c.destroy(t, cp.ID)
		c.waitReady(t, cp.ID, 30*time.Second)
		if got := c.get(cp.ID); got.ID != cp.ID || got.Status != "running" {
			t.Errorf("connect: %+v", got)
		}
	})
	t.Run("test_connect_resumes_paused", func(t *testing.T) {
		cp := c.create()
		defer c.destroy(t, cp.ID)
		c.waitReady(t, cp.ID, 30*time.Second)
		c.lifecycle(t, cp.ID, "pause")
		info := c.get(cp.ID)
		if info.Status == "paused" {
			info = c.lifecycle(t, cp.ID, "resume")
		}
		if info.Status != "running" {
			t.Errorf("connect to a paused capsule: %s", info.Status)
		}
	})
	t.Run("test_list_capsules", func(t *testing.T) {
		cp := c.create()
		defer c.destroy(t, cp.ID)
		var list []sdkCapsule
		if err := c.call("GET", "/v1/capsules", nil, &list); err != nil {
			t.Fatalf("list(): %v", err)
		}
		found := false
		for _, l := range list {
			l.check(t)
			found = found || l.ID == cp.ID
		}
		if !found {
			t.Errorf("list() lacks %s", cp.ID)
		}
	})
	t.Run("test_wait_ready", func(t *testing.T) {
		cp := c.create()
		defer c.destroy(t, cp.ID)
		c.waitReady(t, cp.ID, 60*time.Second)
		if c.get(cp.ID).Status != "running" {
			t.Error("not running after wait_ready")
		}
	})
	t.Run("test_ping", func(t *testing.T) {
		cp := c.create()
		defer c.destroy(t, cp.ID)
		c.waitReady(t, cp.ID, 30*time.Second)
		if err := c.call("POST", "/v1/capsules/"+cp.ID+"/ping", nil, nil); err != nil {
			t.Errorf("ping(): %v", err)
		}
	})
}

// sdkResult is what commands.run reads from a foreground exec.
type sdkResult struct {
	Stdout     *string `json:"stdout"`
	Stderr     *string `json:"stderr"`
	ExitCode   *int    `json:"exit_code"`
	DurationMS *int    `json:"duration_ms"`
	Encoding   string  `json:"encoding"`
}

func (r sdkResult) out() (stdout, stderr string, code int) {
	stdout, stderr, code = deref(r.Stdout), deref(r.Stderr), -1
	if r.ExitCode != nil {
		code = *r.ExitCode
	}
	if r.Encoding == "base64" {
		b, _ := base64.StdEncoding.DecodeString(stdout)
		stdout = string(b)
		if stderr != "" {
			b, _ = base64.StdEncoding.DecodeString(stderr)
			stderr = string(b)
		}
	}
	return stdout, stderr, code
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// run is commands.run in the foreground: /bin/sh -c, background false,
// timeout_sec 30, envs only when given.
func (c *sdkClient) run(t *testing.T, id, cmd string, envs map[string]string) (string, string, int, *int) {
	t.Helper()
	body := map[string]any{"cmd": "/bin/sh", "args": []string{"-c", cmd}, "background": false, "timeout_sec": 30}
	if envs != nil {
		body["envs"] = envs
	}
	var r sdkResult
	if err := c.call("POST", "/v1/capsules/"+id+"/exec", body, &r); err != nil {
		t.Fatalf("run(%q): %v", cmd, err)
	}
	stdout, stderr, code := r.out()
	return stdout, stderr, code, r.DurationMS
}

type sdkHandle struct {
	PID *int    `json:"pid"`
	Tag *string `json:"tag"`
}

func (c *sdkClient) background(t *testing.T, id, cmd, tag string) sdkHandle {
	t.Helper()
	body := map[string]any{"cmd": "/bin/sh", "args": []string{"-c", cmd}, "background": true}
	if tag != "" {
		body["tag"] = tag
	}
	var h sdkHandle
	if err := c.call("POST", "/v1/capsules/"+id+"/exec", body, &h); err != nil {
		t.Fatalf("run(%q, background=True): %v", cmd, err)
	}
	if h.PID == nil || *h.PID <= 0 {
		t.Fatalf("background handle without a pid: %+v", h)
	}
	return h
}

func (c *sdkClient) processes(t *testing.T, id string) []int {
	t.Helper()
	var data map[string]json.RawMessage
	if err := c.call("GET", "/v1/capsules/"+id+"/processes", nil, &data); err != nil {
		t.Fatalf("list(): %v", err)
	}
	var procs []struct {
		PID  int      `json:"pid"`
		Tag  *string  `json:"tag"`
		Cmd  *string  `json:"cmd"`
		Args []string `json:"args"`
	}
	if raw, ok := data["processes"]; !ok || string(raw) == "null" || json.Unmarshal(raw, &procs) != nil {
		t.Fatalf("processes: want a list, got %s", data["processes"])
	}
	pids := make([]int, len(procs))
	for i, p := range procs {
		pids[i] = p.PID
	}
	return pids
}

func (c *sdkClient) kill(t *testing.T, id string, pid int) {
	t.Helper()
	if err := c.call("DELETE", fmt.Sprintf("/v1/capsules/%s/processes/%d", id, pid), nil, nil); err != nil {
		t.Fatalf("kill(%d): %v", pid, err)
	}
}

func sdkCommands(t *testing.T, c *sdkClient) {
	cp := c.create()
	defer c.destroy(t, cp.ID)
	c.waitReady(t, cp.ID, 30*time.Second)
	id := cp.ID

	t.Run("test_run_foreground", func(t *testing.T) {
		if out, _, code, _ := c.run(t, id, "echo hello", nil); code != 0 || !strings.Contains(out, "hello") {
			t.Errorf("%q %d", out, code)
		}
	})
	t.Run("test_run_stderr", func(t *testing.T) {
		if _, errOut, _, _ := c.run(t, id, "echo error >&2", nil); !strings.Contains(errOut, "error") {
			t.Errorf("stderr %q", errOut)
		}
	})
	t.Run("test_run_exit_code", func(t *testing.T) {
		if _, _, code, _ := c.run(t, id, "exit 42", nil); code != 42 {
			t.Errorf("exit code %d", code)
		}
	})
	t.Run("test_run_with_envs", func(t *testing.T) {
		if out, _, _, _ := c.run(t, id, "export MY_VAR=test_value && echo $MY_VAR", nil); !strings.Contains(out, "test_value") {
			t.Errorf("%q", out)
		}
	})
	t.Run("test_run_with_cwd", func(t *testing.T) {
		if out, _, _, _ := c.run(t, id, "cd /tmp && pwd", nil); strings.TrimSpace(out) != "/tmp" {
			t.Errorf("%q", out)
		}
	})
	t.Run("test_run_multiline_output", func(t *testing.T) {
		out, _, code, _ := c.run(t, id, "echo -e 'line1\\nline2\\nline3'", nil)
		if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || len(lines) != 3 {
			t.Errorf("%q %d", out, code)
		}
	})
	t.Run("test_run_background", func(t *testing.T) {
		h := c.background(t, id, "sleep 30", "bg-test")
		if h.Tag == nil || *h.Tag != "bg-test" {
			t.Errorf("tag %v, want bg-test", h.Tag)
		}
		c.kill(t, id, *h.PID)
	})
	t.Run("test_list_processes", func(t *testing.T) {
		h := c.background(t, id, "sleep 30", "list-test")
		defer c.kill(t, id, *h.PID)
		time.Sleep(500 * time.Millisecond)
		if pids := c.processes(t, id); !slices.Contains(pids, *h.PID) {
			t.Errorf("list %v lacks %d", pids, *h.PID)
		}
	})
	t.Run("test_kill_process", func(t *testing.T) {
		h := c.background(t, id, "sleep 30", "")
		c.kill(t, id, *h.PID)
		time.Sleep(500 * time.Millisecond)
		if pids := c.processes(t, id); slices.Contains(pids, *h.PID) {
			t.Errorf("killed %d still listed: %v", *h.PID, pids)
		}
	})
	t.Run("test_run_duration_ms", func(t *testing.T) {
		if _, _, _, d := c.run(t, id, "sleep 1", nil); d != nil && *d < 900 {
			t.Errorf("duration_ms %d for sleep 1", *d)
		}
	})
}

// sdkEntry is the SDK's FileEntry model.
type sdkEntry struct {
	Name       string  `json:"name"`
	Path       string  `json:"path"`
	Type       *string `json:"type"`
	ModifiedAt *int64  `json:"modified_at"`
}

func (c *sdkClient) write(t *testing.T, id, p string, data []byte) {
	t.Helper()
	// httpx's multipart of data={"path": p}, files={"file": ("upload", data)}.
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("path", p); err != nil {
		t.Fatal(err)
	}
	fw, err := mw.CreatePart(map[string][]string{
		"Content-Disposition": {`form-data; name="file"; filename="upload"`},
		"Content-Type":        {"application/octet-stream"},
	})
	if err != nil {
		t.Fatal(err)
	}
	fw.Write(data)
	mw.Close()
	if err := c.send("POST", "/v1/capsules/"+id+"/files/write", bytes.NewReader(buf.Bytes()), mw.FormDataContentType(), int64(buf.Len()), nil); err != nil {
		t.Fatalf("files.write(%s): %v", p, err)
	}
}

// uploadStream is files.upload_stream: a hand-built multipart, chunked.
func (c *sdkClient) uploadStream(t *testing.T, id, p string, chunks [][]byte) {
	t.Helper()
	b := make([]byte, 16)
	rand.Read(b)
	boundary := hex.EncodeToString(b)
	pr, pw := io.Pipe()
	go func() {
		fmt.Fprintf(pw, "--%s\r\nContent-Disposition: form-data; name=\"path\"\r\n\r\n%s\r\n", boundary, p)
		fmt.Fprintf(pw, "--%s\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n", boundary)
		for _, ch := range chunks {
			pw.Write(ch)
		}
		fmt.Fprintf(pw, "\r\n--%s--\r\n", boundary)
		pw.Close()
	}()
	if err := c.send("POST", "/v1/capsules/"+id+"/files/stream/write", pr, "multipart/form-data; boundary="+boundary, -1, nil); err != nil {
		t.Fatalf("files.upload_stream(%s): %v", p, err)
	}
}

func (c *sdkClient) read(t *testing.T, id, p, op string) []byte {
	t.Helper()
	var data []byte
	if err := c.call("POST", "/v1/capsules/"+id+"/files/"+op, map[string]string{"path": p}, &data); err != nil {
		t.Fatalf("files %s %s: %v", op, p, err)
	}
	return data
}

func (c *sdkClient) list(t *testing.T, id, p string, depth int) ([]sdkEntry, error) {
	t.Helper()
	var out struct {
		Entries []sdkEntry `json:"entries"`
	}
	if err := c.call("POST", "/v1/capsules/"+id+"/files/list", map[string]any{"path": p, "depth": depth}, &out); err != nil {
		return nil, err
	}
	for _, e := range out.Entries {
		if e.Type != nil && *e.Type != "file" && *e.Type != "directory" && *e.Type != "symlink" {
			t.Errorf("entry %s: type %q is not in the SDK's enum", e.Path, *e.Type)
		}
	}
	return out.Entries, nil
}

// exists is files.exists: list the parent, find the name; not_found is
// false.
func (c *sdkClient) exists(t *testing.T, id, p string) bool {
	t.Helper()
	entries, err := c.list(t, id, path.Dir(p), 1)
	if sdkCode(err) == "not_found" {
		return false
	}
	if err != nil {
		t.Fatalf("files.exists(%s): %v", p, err)
	}
	for _, e := range entries {
		if e.Name == path.Base(p) {
			return true
		}
	}
	return false
}

// makeDir is files.make_dir: an existing directory is a 409 conflict the
// SDK answers by listing the parent, or a success.
func (c *sdkClient) makeDir(t *testing.T, id, p string) sdkEntry {
	t.Helper()
	var out struct {
		Entry *sdkEntry `json:"entry"`
	}
	err := c.call("POST", "/v1/capsules/"+id+"/files/mkdir", map[string]any{"path": p}, &out)
	if e, ok := errors.AsType[*sdkError](err); ok && e.status == 409 && e.code == "conflict" {
		entries, err := c.list(t, id, path.Dir(p), 1)
		if err != nil {
			t.Fatalf("make_dir(%s): list parent: %v", p, err)
		}
		for _, e := range entries {
			if e.Name == path.Base(p) {
				return e
			}
		}
		t.Fatalf("make_dir(%s): conflict, yet not in its parent", p)
	}
	if err != nil {
		t.Fatalf("make_dir(%s): %v", p, err)
	}
	if out.Entry == nil {
		t.Fatalf("make_dir(%s): no entry", p)
	}
	return *out.Entry
}

func (c *sdkClient) remove(t *testing.T, id, p string) {
	t.Helper()
	if err := c.call("POST", "/v1/capsules/"+id+"/files/remove", map[string]any{"path": p}, nil); err != nil {
		t.Fatalf("files.remove(%s): %v", p, err)
	}
}

func sdkFiles(t *testing.T, c *sdkClient) {
	cp := c.create()
	defer c.destroy(t, cp.ID)
	c.waitReady(t, cp.ID, 30*time.Second)
	id := cp.ID

	t.Run("test_write_and_read", func(t *testing.T) {
		c.write(t, id, "/tmp/test.txt", []byte("hello world"))
		if got := string(c.read(t, id, "/tmp/test.txt", "read")); got != "hello world" {
			t.Errorf("%q", got)
		}
	})
	t.Run("test_write_and_read_bytes", func(t *testing.T) {
		want := []byte{0, 1, 2, 0xff}
		c.write(t, id, "/tmp/test.bin", want)
		if got := c.read(t, id, "/tmp/test.bin", "read"); !bytes.Equal(got, want) {
			t.Errorf("%x", got)
		}
	})
	t.Run("test_list_directory", func(t *testing.T) {
		c.write(t, id, "/tmp/listdir/a.txt", []byte("a"))
		c.write(t, id, "/tmp/listdir/b.txt", []byte("b"))
		entries, err := c.list(t, id, "/tmp/listdir", 1)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name)
		}
		if !slices.Contains(names, "a.txt") || !slices.Contains(names, "b.txt") {
			t.Errorf("names %v", names)
		}
	})
	t.Run("test_exists", func(t *testing.T) {
		c.write(t, id, "/tmp/exists_test.txt", []byte("x"))
		if !c.exists(t, id, "/tmp/exists_test.txt") || c.exists(t, id, "/tmp/does_not_exist_xyz.txt") {
			t.Error("exists")
		}
	})
	t.Run("test_make_dir", func(t *testing.T) {
		c.makeDir(t, id, "/tmp/newdir")
		if !c.exists(t, id, "/tmp/newdir") {
			t.Error("made directory does not exist")
		}
	})
	t.Run("test_make_dir_idempotent", func(t *testing.T) {
		c.makeDir(t, id, "/tmp/idempotent_dir")
		if e := c.makeDir(t, id, "/tmp/idempotent_dir"); e.Name != "idempotent_dir" {
			t.Errorf("second make_dir: %+v", e)
		}
	})
	t.Run("test_remove_file", func(t *testing.T) {
		c.write(t, id, "/tmp/to_remove.txt", []byte("x"))
		if !c.exists(t, id, "/tmp/to_remove.txt") {
			t.Fatal("not written")
		}
		c.remove(t, id, "/tmp/to_remove.txt")
		if c.exists(t, id, "/tmp/to_remove.txt") {
			t.Error("still there")
		}
	})
	t.Run("test_remove_directory", func(t *testing.T) {
		c.makeDir(t, id, "/tmp/dir_to_remove")
		c.write(t, id, "/tmp/dir_to_remove/child.txt", []byte("x"))
		c.remove(t, id, "/tmp/dir_to_remove")
		if c.exists(t, id, "/tmp/dir_to_remove") {
			t.Error("still there")
		}
	})
	t.Run("test_write_creates_parent_dirs", func(t *testing.T) {
		c.write(t, id, "/tmp/deep/nested/dir/file.txt", []byte("nested"))
		if got := string(c.read(t, id, "/tmp/deep/nested/dir/file.txt", "read")); got != "nested" {
			t.Errorf("%q", got)
		}
	})
	t.Run("test_list_with_depth", func(t *testing.T) {
		c.write(t, id, "/tmp/depth_test/a/b.txt", []byte("x"))
		d1, err1 := c.list(t, id, "/tmp/depth_test", 1)
		d2, err2 := c.list(t, id, "/tmp/depth_test", 2)
		if err1 != nil || err2 != nil || len(d2) < len(d1) || len(d2) < 2 {
			t.Errorf("depth 1 %v (%v), depth 2 %v (%v)", d1, err1, d2, err2)
		}
	})
	t.Run("test_overwrite_file", func(t *testing.T) {
		c.write(t, id, "/tmp/overwrite.txt", []byte("original"))
		c.write(t, id, "/tmp/overwrite.txt", []byte("updated"))
		if got := string(c.read(t, id, "/tmp/overwrite.txt", "read")); got != "updated" {
			t.Errorf("%q", got)
		}
	})
	t.Run("test_upload_and_download_stream", func(t *testing.T) {
		c.uploadStream(t, id, "/tmp/streamed.bin", [][]byte{[]byte("chunk1"), []byte("chunk2"), []byte("chunk3")})
		if got := string(c.read(t, id, "/tmp/streamed.bin", "stream/read")); got != "chunk1chunk2chunk3" {
			t.Errorf("%q", got)
		}
	})
}

// git runs a git command as the SDK's git helpers do: shlex-joined, in the
// default directory, GIT_TERMINAL_PROMPT=0; a non-zero exit is an error.
func (c *sdkClient) git(t *testing.T, id, cmd string) string {
	t.Helper()
	out, errOut, code, _ := c.run(t, id, cmd, map[string]string{"GIT_TERMINAL_PROMPT": "0"})
	if code != 0 {
		t.Fatalf("%s: exit %d: %s%s", cmd, code, out, errOut)
	}
	return out
}

func sdkGit(t *testing.T, c *sdkClient) {
	cp := c.create()
	defer c.destroy(t, cp.ID)
	c.waitReady(t, cp.ID, 30*time.Second)
	id := cp.ID
	c.git(t, id, "git init --initial-branch main .")
	c.git(t, id, "git config --global user.name 'Test User'")
	c.git(t, id, "git config --global user.email test@example.com")

	status := func(t *testing.T) (branch string, paths []string) {
		t.Helper()
		for _, line := range strings.Split(strings.TrimRight(c.git(t, id, "git status --porcelain=v1 --branch"), "\n"), "\n") {
			if rest, ok := strings.CutPrefix(line, "## "); ok {
				rest = strings.TrimPrefix(rest, "No commits yet on ")
				branch, _, _ = strings.Cut(rest, "...")
				continue
			}
			if len(line) > 3 {
				paths = append(paths, line[3:])
			}
		}
		return branch, paths
	}
	branches := func(t *testing.T) (names []string, current []string) {
		t.Helper()
		out := c.git(t, id, "git branch '--format=%(refname:short)\t%(HEAD)'")
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			name, head, _ := strings.Cut(line, "\t")
			names = append(names, name)
			if head == "*" {
				current = append(current, name)
			}
		}
		return names, current
	}

	t.Run("test_init_created_repo", func(t *testing.T) {
		if !c.exists(t, id, "/root/.git") {
			t.Error("/root/.git missing: the default directory is not /root")
		}
	})
	t.Run("test_status_clean", func(t *testing.T) {
		if b, _ := status(t); b != "main" {
			t.Errorf("branch %q", b)
		}
	})
	t.Run("test_add_and_commit", func(t *testing.T) {
		c.write(t, id, "/root/hello.txt", []byte("hello"))
		c.git(t, id, "git add -A")
		c.git(t, id, "git commit -m 'initial commit'")
	})
	t.Run("test_status_after_commit", func(t *testing.T) {
		if _, paths := status(t); len(paths) != 0 {
			t.Errorf("not clean: %v", paths)
		}
	})
	t.Run("test_status_with_changes", func(t *testing.T) {
		c.write(t, id, "/root/dirty.txt", []byte("dirty"))
		defer c.remove(t, id, "/root/dirty.txt")
		if _, paths := status(t); !slices.Contains(paths, "dirty.txt") {
			t.Errorf("changes %v", paths)
		}
	})
	t.Run("test_branches", func(t *testing.T) {
		names, cur := branches(t)
		if !slices.Contains(names, "main") || len(cur) != 1 {
			t.Errorf("branches %v, current %v", names, cur)
		}
	})
	t.Run("test_create_and_checkout_branch", func(t *testing.T) {
		c.git(t, id, "git checkout -b feature-1")
		names, cur := branches(t)
		if !slices.Contains(names, "feature-1") || len(cur) != 1 || cur[0] != "feature-1" {
			t.Errorf("branches %v, current %v", names, cur)
		}
		c.git(t, id, "git checkout main")
	})
	t.Run("test_delete_branch", func(t *testing.T) {
		c.git(t, id, "git checkout -b to-delete")
		c.git(t, id, "git checkout main")
		c.git(t, id, "git branch -d to-delete")
		if names, _ := branches(t); slices.Contains(names, "to-delete") {
			t.Errorf("branches %v", names)
		}
	})
	t.Run("test_set_and_get_config", func(t *testing.T) {
		c.git(t, id, "git config --local test.key test-value")
		if got := strings.TrimSpace(c.git(t, id, "git config --local --get test.key")); got != "test-value" {
			t.Errorf("%q", got)
		}
	})
	t.Run("test_get_config_missing_returns_none", func(t *testing.T) {
		if _, _, code, _ := c.run(t, id, "git config --local --get nonexistent.key", map[string]string{"GIT_TERMINAL_PROMPT": "0"}); code == 0 {
			t.Error("a missing key exits 0")
		}
	})
}

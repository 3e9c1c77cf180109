package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

// TestFaultsIO covers the faults of issue 9 on one sandbox, through the
// public API: large exec output comes back whole, an upload whose body
// ends early is refused and leaves the file as it was, and what the
// guest refuses is a 4xx that says why rather than a host agent error.
func TestFaultsIO(t *testing.T) {
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir)
	key := s.account("faults-io@example.com")
	sb := s.create(key, map[string]any{})
	defer s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil)

	// Not subtests: the server's helpers report to the test that started
	// it. Each part goes on after a failure, so one run shows them all.
	testLargeOutput(t, s, key, sb.ID)
	testIncompleteUpload(t, s, key, sb.ID)
	testGuestRefusals(t, s, key, sb.ID)

	// The sandbox took all that in its stride.
	if r := s.exec(key, sb.ID, "echo", "still here"); r.Stdout != "still here\n" || r.ExitCode != 0 {
		t.Errorf("after the faults: %+v", r)
	}
}

// maxOutput is what a blocking exec keeps of each of stdout and stderr.
const maxOutput = 16 << 20

// execOutput runs cmd through the shell and returns the status and, on
// 200, the result.
func execOutput(t *testing.T, s *server, key hdr, id, cmd string) (int, execResult, []byte) {
	t.Helper()
	got, out := s.do("POST", "/v1/sandboxes/"+id+"/exec", key, map[string]any{"cmd": cmd})
	var r execResult
	if got == 200 {
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("decode the exec result: %v", err)
		}
	}
	return got, r, out
}

func testLargeOutput(t *testing.T, s *server, key hdr, id string) {
	got, r, out := execOutput(t, s, key, id, "head -c 600000 /dev/zero | tr '\\0' a")
	if got != 200 || len(r.Stdout) != 600000 || strings.Trim(r.Stdout, "a") != "" || r.ExitCode != 0 {
		t.Errorf("600000 bytes of output = %d %.300s: %d bytes of stdout, exit %d, stderr %.200q",
			got, out, len(r.Stdout), r.ExitCode, r.Stderr)
	}
	// Past the limit of each stream: the limit of each comes back, and
	// stderr says what was dropped.
	got, r, out = execOutput(t, s, key, id, "head -c 17000000 /dev/zero | tr '\\0' a; head -c 17000000 /dev/zero | tr '\\0' b >&2")
	if got != 200 {
		t.Errorf("output over the limit = %d %.300s", got, out)
		return
	}
	if len(r.Stdout) != maxOutput || strings.Trim(r.Stdout, "a") != "" {
		t.Errorf("stdout over the limit: got %d bytes, want %d of a", len(r.Stdout), maxOutput)
	}
	if !strings.HasPrefix(r.Stderr, strings.Repeat("b", maxOutput)) ||
		!strings.Contains(r.Stderr[maxOutput:], "stdout truncated") || !strings.Contains(r.Stderr[maxOutput:], "stderr truncated") {
		t.Errorf("stderr over the limit: %d bytes, ending %q", len(r.Stderr), r.Stderr[max(0, len(r.Stderr)-200):])
	}
}

// multipartBody is an upload of data to path, whole, and its content type.
func multipartBody(t testing.TB, path string, data []byte) ([]byte, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if err := mw.WriteField("path", path); err != nil {
		t.Fatal(err)
	}
	fw, err := mw.CreateFormFile("file", "data")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), mw.FormDataContentType()
}

// postUpload posts body as an upload through route and returns the
// status and response body.
func postUpload(t testing.TB, s *server, key hdr, id, route string, body []byte, contentType string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest("POST", s.url+"/v1/sandboxes/"+id+"/files/"+route, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-API-Key", key["X-API-Key"])
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

// errorMessage is the message of an error envelope.
func errorMessage(t testing.TB, body []byte) string {
	t.Helper()
	var e struct {
		Error struct{ Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("not an envelope: %s", body)
	}
	return e.Error.Message
}

func testIncompleteUpload(t *testing.T, s *server, key hdr, id string) {
	const path = "/root/kept.bin"
	kept := upload(t, s, key, id, "write", path, 1<<20)
	data, err := io.ReadAll(randomReader(9, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	for _, route := range []string{"write", "stream/write"} {
		for _, p := range []string{path, "/root/never.bin"} {
			body, ct := multipartBody(t, p, data)
			got, out := postUpload(t, s, key, id, route, body[:len(body)-1000], ct)
			if got != 400 || errorCode(t, out) != "invalid_request" || !strings.Contains(errorMessage(t, out), "incomplete") {
				t.Errorf("%s of %s cut 1000 bytes short = %d %s, want 400 invalid_request saying it was incomplete", route, p, got, out)
			}
		}
	}
	if sum, n := download(t, s, key, id, "read", path); sum != kept || n != 1<<20 {
		sent := sha256.Sum256(data)
		t.Errorf("after incomplete uploads the file is %d bytes, sha256 %s; want the earlier file's %s (the upload's was %s)",
			n, sum, kept, hex.EncodeToString(sent[:]))
	}
	if got, out := s.do("POST", "/v1/sandboxes/"+id+"/files/read", key, map[string]string{"path": "/root/never.bin"}); got != 404 {
		t.Errorf("a file only incomplete uploads wrote = %d (%d bytes), want 404", got, len(out))
	}
	if _, r, _ := execOutput(t, s, key, id, "ls -a /root"); strings.Contains(r.Stdout, ".envd-") {
		t.Errorf("incomplete uploads left temporary files: %q", r.Stdout)
	}
}

func testGuestRefusals(t *testing.T, s *server, key hdr, id string) {
	// A symlink loop to read.
	if got, out := s.do("POST", "/v1/sandboxes/"+id+"/exec", key, map[string]any{"cmd": "ln -sfn /root/loop /root/loop"}); got != 200 {
		t.Errorf("make a symlink loop = %d %s", got, out)
	}
	tooLong := strings.Repeat("a", 128<<10) // MAX_ARG_STRLEN: execve says E2BIG
	// Each is the request's fault: 400 invalid_request, saying why.
	tests := []struct {
		name string
		call func() (int, []byte)
	}{
		{"exec of an argument of 128 KiB", func() (int, []byte) {
			return s.do("POST", "/v1/sandboxes/"+id+"/exec", key, map[string]any{"cmd": "echo", "args": []string{tooLong}})
		}},
		{"shell command of 128 KiB", func() (int, []byte) {
			return s.do("POST", "/v1/sandboxes/"+id+"/exec", key, map[string]any{"cmd": "echo " + tooLong})
		}},
		{"upload to /proc/sys/kernel/hostname", func() (int, []byte) {
			body, ct := multipartBody(t, "/proc/sys/kernel/hostname", []byte("renamed"))
			return postUpload(t, s, key, id, "write", body, ct)
		}},
		{"streamed upload to /sys/foo", func() (int, []byte) {
			body, ct := multipartBody(t, "/sys/foo", []byte("x"))
			return postUpload(t, s, key, id, "stream/write", body, ct)
		}},
		{"upload under /sys", func() (int, []byte) {
			body, ct := multipartBody(t, "/sys/foo/bar", []byte("x"))
			return postUpload(t, s, key, id, "write", body, ct)
		}},
		{"read of a symlink loop", func() (int, []byte) {
			return s.do("POST", "/v1/sandboxes/"+id+"/files/read", key, map[string]string{"path": "/root/loop"})
		}},
		{"streamed read of a symlink loop", func() (int, []byte) {
			return s.do("POST", "/v1/sandboxes/"+id+"/files/stream/read", key, map[string]string{"path": "/root/loop"})
		}},
	}
	for _, tt := range tests {
		got, out := tt.call()
		if got != 400 {
			t.Errorf("%s = %d %.1000s, want 400", tt.name, got, out)
			continue
		}
		if msg := errorMessage(t, out); errorCode(t, out) != "invalid_request" || msg == "" || len(msg) > 1000 {
			t.Errorf("%s = %d %.1000s, want invalid_request with a short reason", tt.name, got, out)
			continue
		}
		t.Logf("%s = %d %s", tt.name, got, out)
	}
	if _, r, _ := execOutput(t, s, key, id, "hostname"); strings.TrimSpace(r.Stdout) != id {
		t.Errorf("hostname is %q after a refused upload, want %s", r.Stdout, id)
	}
}

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	_ "modernc.org/sqlite" // to read the server's database
)

// TestControlFaults drives the control plane's answers to clients that
// misbehave or go away, on one server with real VMs.
func TestControlFaults(t *testing.T) {
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir)
	key := s.account("faults@example.com")

	t.Run("dropped stream ends its command", func(t *testing.T) { testDroppedStream(t, s, key) })
	t.Run("busy sandboxes outlive their timeout", func(t *testing.T) { testBusyOutlivesTimeout(t, s, key) })
	t.Run("timeouts out of range", func(t *testing.T) { testTimeoutRanges(t, s, key) })
	t.Run("the record names the host", func(t *testing.T) { testHostRecorded(t, s, key, dataDir) })
}

// send is do for goroutines other than the test's: it returns what went
// wrong instead of failing the test.
func (s *server) send(method, path string, h hdr, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(mustJSON(body))
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// streamConn is a WebSocket exec stream and the TCP connection under it.
type streamConn struct {
	ws  *websocket.Conn
	tcp *net.TCPConn
}

// dialStream opens an exec stream to sandbox id, keeping hold of its TCP
// connection so a test can drop it the way a client might.
func dialStream(ctx context.Context, t testing.TB, s *server, key hdr, id string) streamConn {
	t.Helper()
	var tcp *net.TCPConn
	var d net.Dialer
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			tcp = c.(*net.TCPConn)
		}
		return c, err
	}}
	url := "ws" + strings.TrimPrefix(s.url, "http") + "/v1/sandboxes/" + id + "/exec/stream"
	ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: tr},
		HTTPHeader: http.Header{"X-Api-Key": {key["X-API-Key"]}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return streamConn{ws: ws, tcp: tcp}
}

// testDroppedStream: a client that goes away from a streamed command (its
// connection reset, closed, or a WebSocket close frame) ends the command as
// stop would: SIGTERM first, and the process is gone within seconds.
func testDroppedStream(t *testing.T, s *server, key hdr) {
	sb := s.create(key, map[string]any{"timeout_sec": 600})
	defer s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil)
	for _, tc := range []struct {
		name string
		drop func(c streamConn) error
	}{
		{"reset", func(c streamConn) error {
			if err := c.tcp.SetLinger(0); err != nil {
				return err
			}
			return c.tcp.Close() // with linger 0: RST
		}},
		{"fin", func(c streamConn) error { return c.tcp.CloseWrite() }},
		{"close frame", func(c streamConn) error {
			return c.ws.Close(websocket.StatusNormalClosure, "bye")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			tag := "dropped-" + strings.ReplaceAll(tc.name, " ", "-")
			marker := "/tmp/" + tag
			// A pattern that finds the command but not pgrep itself.
			pattern := tag[:len(tag)-1] + "[" + tag[len(tag)-1:] + "]"
			c := dialStream(ctx, t, s, key, sb.ID)
			script := `trap 'echo term > ` + marker + `; exit 0' TERM; echo ready; while :; do sleep 0.1; done`
			if err := wsjson.Write(ctx, c.ws, map[string]any{"type": "start", "cmd": "bash", "args": []string{"-c", script}}); err != nil {
				t.Fatal(err)
			}
			out := ""
			for !strings.Contains(out, "ready") {
				var ev struct{ Type, Data string }
				if err := wsjson.Read(ctx, c.ws, &ev); err != nil {
					t.Fatalf("read: %v (output %q)", err, out)
				}
				out += ev.Data
			}
			if r := s.exec(key, sb.ID, "pgrep", "-f", pattern); r.ExitCode != 0 {
				t.Fatalf("the command is not running before the drop: %+v", r)
			}
			if err := tc.drop(c); err != nil {
				t.Fatal(err)
			}
			dropped := time.Now()
			eventually(t, 10*time.Second, func() string {
				if r := s.exec(key, sb.ID, "pgrep", "-f", pattern); r.ExitCode == 0 {
					return "the command still runs " + time.Since(dropped).Round(time.Second).String() + " after the drop: pids " + strings.Fields(r.Stdout)[0]
				}
				return ""
			})
			if r := s.exec(key, sb.ID, "cat", marker); r.Stdout != "term\n" {
				t.Errorf("the command was not sent SIGTERM first: %+v", r)
			}
		})
	}
}

// testBusyOutlivesTimeout: a sandbox whose timeout is a third of what one
// operation takes stays up while a blocking command, a streamed command,
// a streamed upload or a streamed download runs, each in a sandbox of its
// own, and is still running when it is done.
func testBusyOutlivesTimeout(t *testing.T, s *server, key hdr) {
	const timeout = 4
	const busy = 3 * timeout * time.Second
	const downloadSize = 32 << 20
	ops := []struct {
		name string
		run  func(id string) error
	}{
		{"exec", func(id string) error {
			status, out, err := s.send("POST", "/v1/sandboxes/"+id+"/exec", key,
				map[string]any{"cmd": fmt.Sprintf("sleep %d; echo done", int(busy/time.Second))})
			var r execResult
			switch {
			case err != nil:
				return err
			case status != 200:
				return fmt.Errorf("exec = %d %s", status, out)
			case json.Unmarshal(out, &r) != nil || r.Stdout != "done\n":
				return fmt.Errorf("exec: %s", out)
			}
			return nil
		}},
		{"stream", func(id string) error {
			ctx, cancel := context.WithTimeout(context.Background(), busy+time.Minute)
			defer cancel()
			ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(s.url, "http")+"/v1/sandboxes/"+id+"/exec/stream",
				&websocket.DialOptions{HTTPHeader: http.Header{"X-Api-Key": {key["X-API-Key"]}}})
			if err != nil {
				return err
			}
			defer ws.CloseNow()
			cmd := fmt.Sprintf("sleep %d; echo done", int(busy/time.Second))
			if err := wsjson.Write(ctx, ws, map[string]any{"type": "start", "cmd": cmd}); err != nil {
				return err
			}
			out := ""
			for {
				var ev struct {
					Type, Data string
					ExitCode   *int `json:"exit_code"`
				}
				if err := wsjson.Read(ctx, ws, &ev); err != nil {
					return fmt.Errorf("stream: %w (output %q)", err, out)
				}
				out += ev.Data
				if ev.Type == "exit" {
					if ev.ExitCode == nil || *ev.ExitCode != 0 || out != "done\n" {
						return fmt.Errorf("stream: exit %v, output %q", ev.ExitCode, out)
					}
					return nil
				}
			}
		}},
		{"upload", func(id string) error {
			const chunk, chunks = 1024, 24
			pr, pw := io.Pipe()
			mw := multipart.NewWriter(pw)
			go func() {
				_ = mw.WriteField("path", "/root/slow")
				fw, err := mw.CreateFormFile("file", "slow")
				for i := 0; err == nil && i < chunks; i++ {
					time.Sleep(busy / chunks)
					_, err = fw.Write(bytes.Repeat([]byte{'x'}, chunk))
				}
				if err == nil {
					err = mw.Close()
				}
				pw.CloseWithError(err)
			}()
			req, _ := http.NewRequest("POST", s.url+"/v1/sandboxes/"+id+"/files/stream/write", pr)
			req.ContentLength = -1 // unknown: sent as it is written, not read whole first
			req.Header.Set("Content-Type", mw.FormDataContentType())
			req.Header.Set("X-API-Key", key["X-API-Key"])
			resp, err := s.client.Do(req)
			if err != nil {
				return err
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 204 {
				return fmt.Errorf("upload = %d %s", resp.StatusCode, b)
			}
			status, out, err := s.send("POST", "/v1/sandboxes/"+id+"/exec", key, map[string]any{"cmd": "stat -c %s /root/slow"})
			if err != nil || status != 200 || !strings.Contains(string(out), fmt.Sprintf(`"stdout":"%d\n"`, chunk*chunks)) {
				return fmt.Errorf("uploaded file: %d %s %v", status, out, err)
			}
			return nil
		}},
		{"download", func(id string) error {
			cmd := fmt.Sprintf("head -c %d /dev/zero > /root/big", downloadSize)
			if status, out, err := s.send("POST", "/v1/sandboxes/"+id+"/exec", key, map[string]any{"cmd": cmd}); err != nil || status != 200 {
				return fmt.Errorf("make the file: %d %s %v", status, out, err)
			}
			req, _ := http.NewRequest("POST", s.url+"/v1/sandboxes/"+id+"/files/stream/read", strings.NewReader(`{"path":"/root/big"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("X-API-Key", key["X-API-Key"])
			started := time.Now()
			resp, err := s.client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("download = %d", resp.StatusCode)
			}
			// Slowly: 256 KiB every 1/8 s.
			buf := make([]byte, 256<<10)
			var n int64
			for {
				k, err := io.ReadFull(resp.Body, buf)
				n += int64(k)
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					break
				}
				if err != nil {
					return fmt.Errorf("download cut off after %d bytes: %w", n, err)
				}
				time.Sleep(time.Second / 8)
			}
			switch took := time.Since(started); {
			case n != downloadSize:
				return fmt.Errorf("downloaded %d bytes, want %d", n, downloadSize)
			case took < 2*timeout*time.Second:
				return fmt.Errorf("the download took %s, too short to tell anything", took)
			}
			return nil
		}},
	}
	// Each starts at once on its new sandbox, before a timeout can pass.
	ids := make([]string, len(ops))
	errs := make([]error, len(ops))
	var wg sync.WaitGroup
	for i, op := range ops {
		wg.Go(func() {
			status, out, err := s.send("POST", "/v1/sandboxes", key, map[string]any{"timeout_sec": timeout})
			var sb sandbox
			if err == nil && (status != 201 || json.Unmarshal(out, &sb) != nil) {
				err = fmt.Errorf("create = %d %s", status, out)
			}
			if err != nil {
				errs[i] = err
				return
			}
			ids[i] = sb.ID
			if errs[i] = op.run(sb.ID); errs[i] != nil {
				return
			}
			status, out, err = s.send("GET", "/v1/sandboxes/"+sb.ID, key, nil)
			if err == nil && (status != 200 || json.Unmarshal(out, &sb) != nil || sb.Status != "running") {
				err = fmt.Errorf("after it the sandbox is %d %s, want running", status, out)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, op := range ops {
		if ids[i] != "" {
			defer s.do("DELETE", "/v1/sandboxes/"+ids[i], key, nil)
		}
		if errs[i] != nil {
			t.Errorf("%s in a sandbox with timeout_sec %d: %v", op.name, timeout, errs[i])
		}
	}
}

// testTimeoutRanges: timeouts past their range are a 400 with the
// envelope, never taken modulo something.
func testTimeoutRanges(t *testing.T, s *server, key hdr) {
	got, body := s.do("POST", "/v1/sandboxes", key, map[string]any{"timeout_sec": int64(10000000000)})
	if got != 400 || errorCode(t, body) != "invalid_request" {
		t.Errorf("create with timeout_sec 10000000000 = %d %s, want 400", got, body)
	}
	sb := s.create(key, map[string]any{"timeout_sec": 600})
	defer s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil)
	for _, timeout := range []uint64{4611686018427387904, 18446744074, 86401} {
		got, body := s.do("POST", "/v1/sandboxes/"+sb.ID+"/exec", key, map[string]any{"cmd": "sleep 1", "timeout_sec": timeout})
		if got != 400 || errorCode(t, body) != "invalid_request" {
			t.Errorf("exec with timeout_sec %d = %d %s, want 400", timeout, got, body)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c := dialStream(ctx, t, s, key, sb.ID)
		if err := wsjson.Write(ctx, c.ws, map[string]any{"type": "start", "cmd": "sleep 1", "timeout_sec": timeout}); err != nil {
			t.Fatal(err)
		}
		var ev struct{ Type, Data string }
		if err := wsjson.Read(ctx, c.ws, &ev); err != nil || ev.Type != "error" || !strings.Contains(ev.Data, "timeout_sec") {
			t.Errorf("stream with timeout_sec %d: %+v %v, want an error about timeout_sec", timeout, ev, err)
		}
		cancel()
	}
}

// testHostRecorded: a sandbox's record names the host agent that holds it
// (the local agent's id is the machine's host name). The API does not
// show it, so the test reads the server's database.
func testHostRecorded(t *testing.T, s *server, key hdr, dataDir string) {
	sb := s.create(key, map[string]any{})
	defer s.do("DELETE", "/v1/sandboxes/"+sb.ID, key, nil)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, "wrenn.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var host string
	if err := db.QueryRow(`SELECT host_id FROM sandboxes WHERE id = ?`, sb.ID).Scan(&host); err != nil {
		t.Fatal(err)
	}
	if want, _ := os.Hostname(); host == "" || host != want {
		t.Errorf("the record of %s names host %q, want %q", sb.ID, host, want)
	}
}

// TestStartupRefusals: settings that cannot be right stop `wrenn server`
// and `wrenn agent` at start, with a message naming what is wrong, rather
// than being taken for something else.
func TestStartupRefusals(t *testing.T) {
	images := os.Getenv(envImagesDir)
	if images == "" {
		images = "/var/tmp/wrenn-test-images"
	}
	for _, tc := range []struct {
		name  string
		cmd   string
		env   []string
		token *string // written to <data-dir>/agent-token first
		want  string  // in the message
	}{
		{"server accel KVM", "server", []string{"WRENN_ACCEL=KVM"}, nil, "WRENN_ACCEL"},
		{"server accel hvf", "server", []string{"WRENN_ACCEL=hvf"}, nil, "WRENN_ACCEL"},
		{"agent accel Tcg", "agent", []string{"WRENN_ACCEL=Tcg"}, nil, "WRENN_ACCEL"},
		{"server empty agent token", "server", nil, new(""), "agent-token"},
		{"agent blank agent token", "agent", nil, new(" \n"), "agent-token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := shortTempDir(t)
			if tc.token != nil {
				if err := os.WriteFile(filepath.Join(dataDir, "agent-token"), []byte(*tc.token), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			args := []string{tc.cmd, "--data-dir", dataDir, "--listen", "127.0.0.1:0"}
			if tc.cmd == "agent" {
				args[len(args)-1] = "unix:" + filepath.Join(dataDir, "a.sock")
			}
			cmd := exec.Command(wrennBin, args...)
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(), append([]string{envImagesDir + "=" + images, "WRENN_SOURCE_DIR=" + repoRoot()}, tc.env...)...)
			t.Cleanup(func() { killVMs(t, dataDir) })
			out, started := runUntilListening(t, cmd, 2*time.Minute)
			if started {
				t.Fatalf("wrenn %s started (%s)\n%s", tc.cmd, tc.name, out)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("wrenn %s refused to start without naming %s:\n%s", tc.cmd, tc.want, out)
			}
		})
	}
}

// runUntilListening runs cmd until it exits or says it listens (then it
// is stopped) and returns its output and whether it got that far.
func runUntilListening(t testing.TB, cmd *exec.Cmd, timeout time.Duration) (string, bool) {
	t.Helper()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	listening := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), " listening") {
				listening <- struct{}{}
			}
		}
		done <- cmd.Wait()
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("%s exited cleanly, want a failure", cmd.Args)
		}
		return logs.String(), false
	case <-listening:
	case <-time.After(timeout):
		t.Errorf("%s neither refused nor started within %s", cmd.Args, timeout)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
	return logs.String(), true
}

package e2e

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// TestControlFaults drives the control plane's answers to clients that
// misbehave or go away, on one server with real VMs.
func TestControlFaults(t *testing.T) {
	dataDir := shortTempDir(t)
	s := startVMServer(t, dataDir)
	key := s.account("faults@example.com")

	t.Run("dropped stream ends its command", func(t *testing.T) { testDroppedStream(t, s, key) })
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

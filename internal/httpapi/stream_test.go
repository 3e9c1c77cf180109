package httpapi_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// runningStream is a streamed command that runs until stopped or closed,
// as a command in a guest does: Stop ends it with an exit event, Close
// kills it. It records which happened.
type runningStream struct {
	events chan wrenn.ExecEvent

	closed, stopped chan struct{}
	stopOnce        sync.Once
	closeOnce       sync.Once
}

func newRunningStream() *runningStream {
	st := &runningStream{events: make(chan wrenn.ExecEvent, 4), closed: make(chan struct{}), stopped: make(chan struct{})}
	st.events <- wrenn.ExecEvent{Type: wrenn.ExecStarted, PID: 7}
	st.events <- wrenn.ExecEvent{Type: wrenn.ExecStdout, Data: []byte("ready\n")}
	return st
}

func (f *runningStream) Recv() (wrenn.ExecEvent, error) {
	select {
	case ev, ok := <-f.events:
		if !ok {
			return wrenn.ExecEvent{}, io.EOF
		}
		return ev, nil
	case <-f.closed:
		return wrenn.ExecEvent{}, io.ErrClosedPipe
	}
}

func (f *runningStream) Stop() error {
	f.stopOnce.Do(func() {
		close(f.stopped)
		f.events <- wrenn.ExecEvent{Type: wrenn.ExecExited, ExitCode: 143}
		close(f.events)
	})
	return nil
}

func (f *runningStream) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}

// TestExecStreamClientGone: a client that goes away from a streamed
// command — its TCP connection reset or closed, or a WebSocket close
// frame — stops the command as "stop" would, and the stream is released.
func TestExecStreamClientGone(t *testing.T) {
	var mu sync.Mutex
	var current *runningStream
	agent := fakeHost()
	agent.StartExecFn = func(context.Context, string, wrenn.ExecRequest) (wrenn.ExecStream, error) {
		mu.Lock()
		defer mu.Unlock()
		current = newRunningStream()
		return current, nil
	}
	e := newEnv(t, storetest.Engines(t)[0], envOptions{agent: agent})
	key := e.newKey(e.signup("gone@example.com").Token)
	var sb sandboxResp
	e.must(201, "POST", "/v1/sandboxes", apiKey(key), map[string]any{}, &sb)
	url := "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/v1/sandboxes/" + sb.ID + "/exec/stream"

	for _, tc := range []struct {
		name string
		drop func(ws *websocket.Conn, tcp *net.TCPConn) error
	}{
		{"reset", func(_ *websocket.Conn, tcp *net.TCPConn) error {
			if err := tcp.SetLinger(0); err != nil {
				return err
			}
			return tcp.Close()
		}},
		{"fin", func(_ *websocket.Conn, tcp *net.TCPConn) error { return tcp.CloseWrite() }},
		{"close frame", func(ws *websocket.Conn, _ *net.TCPConn) error {
			return ws.Close(websocket.StatusNormalClosure, "bye")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var tcp *net.TCPConn
			var d net.Dialer
			client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := d.DialContext(ctx, network, addr)
				if err == nil {
					tcp = c.(*net.TCPConn)
				}
				return c, err
			}}}
			ws, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: client, HTTPHeader: http.Header{"X-Api-Key": {key}}})
			if err != nil {
				t.Fatal(err)
			}
			defer ws.CloseNow()
			if err := wsjson.Write(ctx, ws, map[string]any{"type": "start", "cmd": "sleep 300"}); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"start", "stdout"} {
				var m struct{ Type string }
				if err := wsjson.Read(ctx, ws, &m); err != nil || m.Type != want {
					t.Fatalf("read %+v, %v; want %s", m, err, want)
				}
			}
			mu.Lock()
			st := current
			mu.Unlock()
			if err := tc.drop(ws, tcp); err != nil {
				t.Fatal(err)
			}
			select {
			case <-st.stopped:
			case <-ctx.Done():
				t.Fatal("the command was not stopped after its client went away")
			}
			select {
			case <-st.closed:
			case <-ctx.Done():
				t.Fatal("the stream was not released after its command ended")
			}
		})
	}
}

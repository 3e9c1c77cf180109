package httpapi_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/wrennhq/wrenn/internal/httpapi"
)

// A client that trickles its request body is cut off once it falls
// behind the pace; one that sends its body at speed, and then reads a
// long answer, is not.
func TestBodyPace(t *testing.T) {
	agent := fakeHost()
	agent.ReadFileFn = func(context.Context, string, string) (io.ReadCloser, error) {
		return io.NopCloser(&slowReader{n: 10, every: 100 * time.Millisecond}), nil
	}
	e := newEnv(t, "sqlite", envOptions{agent: agent, bodyGrace: 300 * time.Millisecond})

	conn, err := net.Dial("tcp", strings.TrimPrefix(e.srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	answered := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(conn).ReadString('\n')
		answered <- line
	}()
	trickle := time.NewTicker(100 * time.Millisecond)
	defer trickle.Stop()
	for sent := 0; ; sent++ {
		select {
		case line := <-answered:
			if line != "" && !strings.Contains(line, " 400 ") {
				t.Fatalf("a trickled body was answered %q", line)
			}
			if sent >= 20 {
				t.Fatalf("cut off only after %d of 100 bytes", sent)
			}
			goto paced
		case <-trickle.C:
			conn.Write([]byte(" "))
		case <-time.After(10 * time.Second):
			t.Fatal("a body trickled at 10 bytes a second was never cut off")
		}
	}
paced:
	// A request sent at speed whose answer takes longer than the body's
	// grace: the deadline is lifted once the body is in.
	a := e.signup("pace@example.com")
	key := apiKey(e.newKey(a.Token))
	var sb struct{ ID string }
	e.must(http.StatusCreated, "POST", "/v1/sandboxes", key, map[string]any{"template": "minimal"}, &sb)
	status, body := e.do("POST", "/v1/sandboxes/"+sb.ID+"/files/read", key, map[string]any{"path": "/big"})
	if status != http.StatusOK || len(body) != 10 {
		t.Fatalf("a slow download after a quick body = %d, %d bytes", status, len(body))
	}
}

// slowReader gives n bytes, one every.
type slowReader struct {
	n     int
	every time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.every)
	r.n--
	p[0] = 'x'
	return 1, nil
}

// One client address holds at most its share of connections; another
// is not affected.
func TestLimitConns(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Listener = httpapi.LimitConns(ln, 3)
	srv.Start()
	defer srv.Close()
	addr := ln.Addr().String()
	dialFrom := func(ip string) net.Conn {
		t.Helper()
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// alive reports whether the server keeps c open (it answers a request).
	alive := func(c net.Conn) bool {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			return false
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return true
	}
	var held []net.Conn
	for range 3 {
		held = append(held, dialFrom("127.0.0.5"))
	}
	for i, c := range held {
		if !alive(c) {
			t.Fatalf("connection %d within the limit was closed", i)
		}
	}
	if alive(dialFrom("127.0.0.5")) {
		t.Error("a fourth connection from one address was served")
	}
	if !alive(dialFrom("127.0.0.6")) {
		t.Error("another address was refused")
	}
	held[0].Close()
	var ok bool
	for deadline := time.Now().Add(5 * time.Second); !ok && time.Now().Before(deadline); {
		ok = alive(dialFrom("127.0.0.5"))
	}
	if !ok {
		t.Error("a connection closed did not free its place")
	}
}

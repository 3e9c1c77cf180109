package envd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/wrennhq/wrenn"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testLog logs to the test when -v is given, else nowhere.
func testLog(tb testing.TB) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(tWriter{tb}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ tb testing.TB }

func (w tWriter) Write(b []byte) (int, error) {
	w.tb.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// MustSocketpair returns the two ends of a connected Unix socketpair.
func MustSocketpair(tb testing.TB) (host, guest net.Conn) {
	tb.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		tb.Fatal(err)
	}
	conn := func(fd int, name string) net.Conn {
		f := os.NewFile(uintptr(fd), name)
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			tb.Fatal(err)
		}
		return c
	}
	return conn(fds[0], "host"), conn(fds[1], "guest")
}

// fakeSystem records what Init asked for instead of changing this host.
type fakeSystem struct {
	mu       sync.Mutex
	clock    time.Time
	entropy  []byte
	hostname string
}

func (f *fakeSystem) system() system {
	return system{
		setClock: func(t time.Time) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.clock = t
			return nil
		},
		addEntropy: func(b []byte) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.entropy = append([]byte(nil), b...)
			return nil
		},
		setHostname: func(h string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.hostname = h
			return nil
		},
	}
}

// testGuest is a guest server on one end of a socketpair and a client on
// the other.
type testGuest struct {
	*Client
	sys  *fakeSystem
	host net.Conn // the client's end, to cut
	srv  *server
}

type guestOption func(*server)

func withStopGrace(d time.Duration) guestOption { return func(s *server) { s.stopGrace = d } }

// MustStart serves a session in this process and connects a client to it;
// both end with the test.
func MustStart(tb testing.TB, opts ...guestOption) *testGuest {
	tb.Helper()
	fs := &fakeSystem{}
	srv := newServer(testLog(tb), fs.system())
	for _, o := range opts {
		o(srv)
	}
	tb.Cleanup(srv.endProcesses) // after every session's cleanup
	c, host := connect(tb, srv)
	return &testGuest{Client: c, sys: fs, host: host, srv: srv}
}

// connect serves a new session of srv in this process and connects a
// client to it; both end with the test.
func connect(tb testing.TB, srv *server) (*Client, net.Conn) {
	tb.Helper()
	host, guest := MustSocketpair(tb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.serve(ctx, guest) }()
	c, err := NewClient(host, testLog(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		c.Close()
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			tb.Error("guest server did not return")
		}
	})
	return c, host
}

// MustReconnect is a new session with the same guest server, as a host
// agent that restarted would have.
func (g *testGuest) MustReconnect(tb testing.TB) *Client {
	tb.Helper()
	c, _ := connect(tb, g.srv)
	return c
}

func withProcLimit(n int) guestOption { return func(s *server) { s.procs.limit = n } }

// MustExec runs a command that must not fail to run.
func (g *testGuest) MustExec(tb testing.TB, req wrenn.ExecRequest) *wrenn.ExecResult {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := g.Exec(ctx, req)
	if err != nil {
		tb.Fatalf("exec %q: %v", req.Cmd, err)
	}
	return res
}

// processGone reports whether pid has exited (a zombie nobody reaped
// counts: it runs no more).
func processGone(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if errors.Is(err, os.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	// pid (comm) state ...
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// eventually polls cond until it holds or d passes.
func eventually(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("%s: still not so after %s", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// errReader returns n bytes, then err.
type errReader struct {
	n   int
	err error
}

func (r *errReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	k := min(len(p), r.n)
	clear(p[:k])
	r.n -= k
	return k, nil
}

var _ io.Reader = (*errReader)(nil)

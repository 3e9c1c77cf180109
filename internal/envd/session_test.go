package envd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/yamux"
	"golang.org/x/sys/unix"

	"github.com/wrennhq/wrenn"
)

func TestPing(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	if err := g.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestInit(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	now := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	entropy := []byte("0123456789abcdef0123456789abcdef")
	if err := g.Init(context.Background(), InitRequest{Now: now, Entropy: entropy, Hostname: "sb-abc"}); err != nil {
		t.Fatal(err)
	}
	g.sys.mu.Lock()
	defer g.sys.mu.Unlock()
	if !g.sys.clock.Equal(now) || !bytes.Equal(g.sys.entropy, entropy) || g.sys.hostname != "sb-abc" {
		t.Errorf("guest got clock %v, entropy %q, hostname %q", g.sys.clock, g.sys.entropy, g.sys.hostname)
	}
}

func TestInitInvalid(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	tests := []struct {
		name string
		req  InitRequest
	}{
		{"hostname with a space", InitRequest{Hostname: "a b"}},
		{"hostname too long", InitRequest{Hostname: strings.Repeat("a", 65)}},
		{"too much entropy", InitRequest{Entropy: make([]byte, 65<<10)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := g.Init(context.Background(), tt.req); wrenn.ErrorCode(err) != wrenn.EInvalid {
				t.Errorf("Init: %v, want %s", err, wrenn.EInvalid)
			}
		})
	}
}

// TestAddEntropy feeds this host's kernel for real: harmless, and needs root.
func TestAddEntropy(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if err := addEntropy(bytes.Repeat([]byte{0x5a}, 64)); err != nil {
		t.Fatal(err)
	}
}

// TestSetHostname sets the hostname for real, in a UTS namespace of its own
// on a thread that is thrown away afterwards.
func TestSetHostname(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		if err := unix.Unshare(unix.CLONE_NEWUTS); err != nil {
			errc <- err
			return
		}
		if err := setHostname("sb-envd-test"); err != nil {
			errc <- err
			return
		}
		var u unix.Utsname
		if err := unix.Uname(&u); err != nil {
			errc <- err
			return
		}
		if got := unix.ByteSliceToString(u.Nodename[:]); got != "sb-envd-test" {
			errc <- errors.New("hostname is " + got)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

func TestHandshakeSkipsStaleBytes(t *testing.T) {
	t.Parallel()
	host, guest := MustSocketpair(t)
	// What a session before this one may have left either way: yamux
	// frames, half lines, handshake lines of other nonces.
	stale := []byte("\x00\x01\x00\x05\x00\x00\x00\x01\x00\x00\x01\x00garbage envd-ok 1 0000\nenvd-ready 0000\nenvd-go 0000\n\x00\xff")
	if _, err := host.Write(stale); err != nil {
		t.Fatal(err)
	}
	if _, err := guest.Write(stale); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- newServer(testLog(t), (&fakeSystem{}).system()).serve(ctx, guest) }()
	c, err := NewClient(host, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		c.Close()
		cancel()
		<-done
	}()
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	if err := c.Ping(pctx); err != nil {
		t.Fatal(err)
	}
}

// TestHandshakeAfterStaleSession has the guest still in an old session
// when the host comes back: the old session takes the first hello as a
// protocol error and ends, and the host's repeated hello starts the new one.
func TestHandshakeAfterStaleSession(t *testing.T) {
	t.Parallel()
	host, guest := MustSocketpair(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		old, err := yamux.Server(nopCloser{guest}, yamuxConfig(testLog(t)))
		if err != nil {
			done <- err
			return
		}
		<-old.CloseChan()
		done <- newServer(testLog(t), (&fakeSystem{}).system()).serve(ctx, guest)
	}()
	c, err := NewClient(host, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		c.Close()
		cancel()
		<-done
	}()
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	if err := c.Ping(pctx); err != nil {
		t.Fatal(err)
	}
}

type nopCloser struct{ net.Conn }

func (nopCloser) Close() error { return nil }

func TestHandshakeVersionMismatch(t *testing.T) {
	t.Parallel()
	host, guest := MustSocketpair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer guest.Close()
		l, err := readLine(bufio.NewReader(guest))
		if err != nil || l.kind != lineHello {
			return
		}
		guest.Write([]byte(lineRefuse + " " + l.fields[1] + " 99\n"))
	}()
	c, err := NewClient(host, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Ping(context.Background())
	if !errors.Is(err, ErrVersion) || !strings.Contains(err.Error(), "99") {
		t.Errorf("Ping: %v, want ErrVersion naming the guest's version", err)
	}
	<-done
}

// TestClientWaitsForGuest connects before the guest serves, as the host
// agent does with a VM that is still booting.
func TestClientWaitsForGuest(t *testing.T) {
	t.Parallel()
	host, guest := MustSocketpair(t)
	c, err := NewClient(host, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Ping(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping with no guest: %v, want context.DeadlineExceeded", err)
	}
	ctx, cancelServe := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- newServer(testLog(t), (&fakeSystem{}).system()).serve(ctx, guest) }()
	defer func() {
		cancelServe()
		<-done
	}()
	long, cancelLong := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelLong()
	if err := c.Ping(long); err != nil {
		t.Fatal(err)
	}
}

func TestCloseBeforeGuest(t *testing.T) {
	t.Parallel()
	host, guest := MustSocketpair(t)
	defer guest.Close()
	c, err := NewClient(host, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if err := c.Ping(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Ping after Close: %v, want ErrClosed", err)
	}
}

// TestHostGoneKillsCommands cuts the channel under a running command.
func TestHostGoneKillsCommands(t *testing.T) {
	t.Parallel()
	g := MustStart(t)
	s, err := g.StartExec(context.Background(), wrenn.ExecRequest{Cmd: "sleep 100"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	g.host.Close()
	if _, err := s.Recv(); err == nil || errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Recv after the cut: %v, want an error", err)
	}
	eventually(t, 5*time.Second, "command killed", func() bool { return processGone(ev.PID) })
}

// TestReconnectListener is the host agent restarting: a new connection, a
// new client, and the guest serves it.
func TestReconnectListener(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(t.TempDir(), "envd.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- newServer(testLog(t), (&fakeSystem{}).system()).serveListener(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("serveListener: %v", err)
		}
	}()
	for i := range 3 {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		c, err := NewClient(conn, testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		res, err := c.Exec(context.Background(), wrenn.ExecRequest{Cmd: "echo " + strconv.Itoa(i)})
		if err != nil || string(res.Stdout) != strconv.Itoa(i)+"\n" {
			t.Fatalf("connection %d: %+v, %v", i, res, err)
		}
		c.Close()
	}
}

// fifoPort stands in for a virtio-serial port: the guest reads from one
// FIFO and writes to another, and, as with the port, a read returns EOF
// while no host holds the writing end.
type fifoPort struct {
	in, out string
}

func mustFIFOPort(t *testing.T) fifoPort {
	t.Helper()
	dir := t.TempDir()
	p := fifoPort{in: filepath.Join(dir, "in"), out: filepath.Join(dir, "out")}
	if err := mkfifo(p.in); err != nil {
		t.Fatal(err)
	}
	if err := mkfifo(p.out); err != nil {
		t.Fatal(err)
	}
	return p
}

func (p fifoPort) open() (*portConn, error) {
	r, err := os.OpenFile(p.in, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	w, err := os.OpenFile(p.out, os.O_RDWR, 0)
	if err != nil {
		r.Close()
		return nil, err
	}
	return newPortConn(r, w), nil
}

// dial is the host connecting to the port.
func (p fifoPort) dial(t *testing.T) *hostEnd {
	t.Helper()
	w, err := os.OpenFile(p.in, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(p.out, os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return &hostEnd{r: r, w: w}
}

type hostEnd struct{ r, w *os.File }

func (h *hostEnd) Read(b []byte) (int, error)  { return h.r.Read(b) }
func (h *hostEnd) Write(b []byte) (int, error) { return h.w.Write(b) }
func (h *hostEnd) Close() error {
	h.w.Close()
	return h.r.Close()
}

// TestReconnectPort is the host agent dying mid-transfer and a new one
// connecting to the same port, with the old session's output still in the
// channel.
func TestReconnectPort(t *testing.T) {
	t.Parallel()
	port := mustFIFOPort(t)
	// Hold the guest's output FIFO open so what the guest wrote for the
	// dead host stays in it for the next one, as it may in a real port.
	hold, err := os.OpenFile(port.out, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer hold.Close()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- newServer(testLog(t), (&fakeSystem{}).system()).servePort(ctx, port.open) }()
	defer func() {
		cancel()
		<-done
	}()
	time.Sleep(3 * portPoll) // the guest polls a port with no host for a while

	conn := port.dial(t)
	c1, err := NewClient(conn, testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if res, err := c1.Exec(context.Background(), wrenn.ExecRequest{Cmd: "echo one"}); err != nil || string(res.Stdout) != "one\n" {
		t.Fatalf("first host: %+v, %v", res, err)
	}
	s, err := c1.StartExec(context.Background(), wrenn.ExecRequest{Cmd: "head -c 50000000 /dev/zero; sleep 100"})
	if err != nil {
		t.Fatal(err)
	}
	start, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let output pile up in the channel
	conn.Close()                       // the host agent dies
	c1.Close()

	// The FIFOs, unlike a real port, break a host that writes while the
	// guest reopens them: retry as a host agent would on ErrClosed.
	var res *wrenn.ExecResult
	for attempt := 0; ; attempt++ {
		c2, err := NewClient(port.dial(t), testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
		res, err = c2.Exec(pctx, wrenn.ExecRequest{Cmd: "echo two"})
		pcancel()
		c2.Close()
		if errors.Is(err, ErrClosed) && attempt < 5 {
			continue
		}
		if err != nil || string(res.Stdout) != "two\n" {
			t.Fatalf("second host: %+v, %v", res, err)
		}
		break
	}
	eventually(t, 5*time.Second, "the dead host's command killed", func() bool { return processGone(start.PID) })
}

func TestServeEndsWithContext(t *testing.T) {
	t.Parallel()
	host, guest := MustSocketpair(t)
	defer host.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, guest, testLog(t)) }()
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
	}
}

func TestFindPort(t *testing.T) {
	t.Parallel()
	sys := t.TempDir()
	for name, port := range map[string]string{"vport0p1": "org.qemu.guest_agent.0", "vport1p1": PortName} {
		if err := os.MkdirAll(filepath.Join(sys, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sys, name, "name"), []byte(port+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := FindPort(sys, "/dev", PortName)
	if err != nil || got != "/dev/vport1p1" {
		t.Errorf("FindPort: %q, %v; want /dev/vport1p1", got, err)
	}
	if _, err := FindPort(sys, "/dev", "nope"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("FindPort of a missing port: %v", err)
	}
}

// TestDetach: after a detach the guest has ended the session and takes the
// next host's hello on the same port.
func TestDetach(t *testing.T) {
	t.Parallel()
	port := mustFIFOPort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- newServer(testLog(t), (&fakeSystem{}).system()).servePort(ctx, port.open) }()
	defer func() {
		cancel()
		<-done
	}()
	c1, err := NewClient(port.dial(t), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c1.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c1.Detach(context.Background()); err != nil {
		t.Fatalf("detach: %v", err)
	}
	if err := c1.Ping(context.Background()); err == nil {
		t.Error("a detached client still answers")
	}
	for attempt := 0; ; attempt++ {
		c2, err := NewClient(port.dial(t), testLog(t))
		if err != nil {
			t.Fatal(err)
		}
		pctx, pcancel := context.WithTimeout(context.Background(), 20*time.Second)
		res, err := c2.Exec(pctx, wrenn.ExecRequest{Cmd: "echo again"})
		pcancel()
		c2.Close()
		if errors.Is(err, ErrClosed) && attempt < 5 {
			continue // the FIFOs break a host that writes while the guest reopens them
		}
		if err != nil || string(res.Stdout) != "again\n" {
			t.Fatalf("next host: %+v, %v", res, err)
		}
		break
	}
}

// writeLog records each Write its connection gets.
type writeLog struct {
	net.Conn
	mu     sync.Mutex
	writes [][]byte
}

func (w *writeLog) Write(b []byte) (int, error) {
	w.mu.Lock()
	w.writes = append(w.writes, bytes.Clone(b))
	w.mu.Unlock()
	return w.Conn.Write(b)
}

// TestJoinedWrites: a small data frame goes out in one write, header and
// body; a large one as yamux writes it; both arrive whole.
func TestJoinedWrites(t *testing.T) {
	t.Parallel()
	host, guest := MustSocketpair(t)
	wl := &writeLog{Conn: host}
	client, err := yamux.Client(newBufferedConn(bufio.NewReader(host), wl), yamuxConfig(testLog(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := yamux.Server(newBufferedConn(bufio.NewReader(guest), guest), yamuxConfig(testLog(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()

	small := []byte("a small request")
	large := bytes.Repeat([]byte("x"), joinMax+1)
	got := make(chan []byte, 1)
	go func() {
		st, err := server.AcceptStream()
		if err != nil {
			got <- nil
			return
		}
		b := make([]byte, len(small)+len(large))
		_, err = io.ReadFull(st, b)
		if err != nil {
			b = nil
		}
		got <- b
	}()
	st, err := client.OpenStream()
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{small, large} {
		if _, err := st.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	if b := <-got; !bytes.Equal(b, append(bytes.Clone(small), large...)) {
		t.Fatalf("the server read %d bytes, not what was sent", len(b))
	}

	wl.mu.Lock()
	defer wl.mu.Unlock()
	var joined, header, body int
	for _, w := range wl.writes {
		switch {
		case len(w) == yamuxHeaderSize+len(small) && bytes.Equal(w[yamuxHeaderSize:], small):
			joined++
		case len(w) == yamuxHeaderSize && w[1] == yamuxTypeData && binary.BigEndian.Uint32(w[8:]) == uint32(len(large)):
			header++
		case bytes.Equal(w, large):
			body++
		}
	}
	if joined != 1 || header != 1 || body != 1 {
		t.Errorf("writes: %d small frames in one write (want 1), %d large headers and %d large bodies apart (want 1 and 1) of %d writes",
			joined, header, body, len(wl.writes))
	}
}

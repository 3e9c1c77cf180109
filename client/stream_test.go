package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/client"
	"github.com/wrennhq/wrenn/internal/mock"
)

// liveStream is a streamed command that prints, then runs until stopped
// (exit 143) or closed.
type liveStream struct {
	events  chan wrenn.ExecEvent
	closed  chan struct{}
	stopped chan struct{}
	stop    sync.Once
	close   sync.Once
}

func newLiveStream(first ...wrenn.ExecEvent) *liveStream {
	s := &liveStream{events: make(chan wrenn.ExecEvent, 16), closed: make(chan struct{}), stopped: make(chan struct{})}
	for _, ev := range first {
		s.events <- ev
	}
	return s
}

func (s *liveStream) Recv() (wrenn.ExecEvent, error) {
	select {
	case ev, ok := <-s.events:
		if !ok {
			return wrenn.ExecEvent{}, io.EOF
		}
		return ev, nil
	case <-s.closed:
		return wrenn.ExecEvent{}, io.ErrClosedPipe
	}
}

func (s *liveStream) Stop() error {
	s.stop.Do(func() {
		close(s.stopped)
		s.events <- wrenn.ExecEvent{Type: wrenn.ExecExited, ExitCode: 143}
		close(s.events)
	})
	return nil
}

func (s *liveStream) Close() error {
	s.close.Do(func() { close(s.closed) })
	return nil
}

// TestExecStream: events come as they are sent, binary output decoded;
// Stop ends the command with its exit; closing the stream or ending its
// context stops it too, and Recv says why.
func TestExecStream(t *testing.T) {
	h := fakeHost()
	var mu sync.Mutex
	var reqs []wrenn.ExecRequest
	var streams []*liveStream
	h.StartExecFn = func(_ context.Context, _ string, req wrenn.ExecRequest) (wrenn.ExecStream, error) {
		mu.Lock()
		defer mu.Unlock()
		reqs = append(reqs, req)
		if req.Cmd == "once" {
			return &playback{evs: []wrenn.ExecEvent{{Type: wrenn.ExecStarted, PID: 9}, {Type: wrenn.ExecStdout, Data: []byte("out\n")},
				{Type: wrenn.ExecStderr, Data: []byte{0x80, 0x81}}, {Type: wrenn.ExecExited, ExitCode: 2}, {}}}, nil
		}
		s := newLiveStream(wrenn.ExecEvent{Type: wrenn.ExecStarted, PID: 7}, wrenn.ExecEvent{Type: wrenn.ExecStdout, Data: []byte("ready\n")})
		streams = append(streams, s)
		return s, nil
	}
	e := newEnv(t, h)
	ctx := context.Background()
	c := e.account("stream@example.com")
	sb := sandbox(t, c)

	t.Run("events", func(t *testing.T) {
		req := client.Command("once", "a")
		req.Envs, req.Cwd, req.Timeout = map[string]string{"X": "y"}, "/w", 3*time.Second
		st, err := c.ExecStream(ctx, sb.ID, req)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		var got []string
		for ev, err := range st.Events() {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s %d %q %d", ev.Type, ev.PID, ev.Data, ev.ExitCode))
		}
		want := []string{`start 9 "" 0`, `stdout 0 "out\n" 0`, `stderr 0 "\x80\x81" 0`, `exit 0 "" 2`}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("events %q, want %q", got, want)
		}
		mu.Lock()
		r := reqs[len(reqs)-1]
		mu.Unlock()
		if r.Cmd != "once" || r.Args[0] != "a" || r.Env["X"] != "y" || r.Dir != "/w" || r.Timeout != 3*time.Second {
			t.Errorf("agent got %+v", r)
		}
	})

	// recvUntil reads events up to the first of typ.
	recvUntil := func(t *testing.T, st *client.ExecStream, typ client.ExecEventType) client.ExecEvent {
		t.Helper()
		for {
			ev, err := st.Recv()
			if err != nil {
				t.Fatalf("Recv before %s: %v", typ, err)
			}
			if ev.Type == typ {
				return ev
			}
		}
	}
	last := func() *liveStream {
		mu.Lock()
		defer mu.Unlock()
		return streams[len(streams)-1]
	}
	waitClosed := func(t *testing.T, ch <-chan struct{}, what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("the server never %s the command", what)
		}
	}

	t.Run("stop", func(t *testing.T) {
		st, err := c.ExecStream(ctx, sb.ID, client.Command("sleep", "1000"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		if ev := recvUntil(t, st, client.EventStdout); string(ev.Data) != "ready\n" {
			t.Fatalf("stdout %q", ev.Data)
		}
		if err := st.Stop(); err != nil {
			t.Fatal(err)
		}
		if ev := recvUntil(t, st, client.EventExit); ev.ExitCode != 143 {
			t.Errorf("exit %d, want 143", ev.ExitCode)
		}
		if _, err := st.Recv(); !errors.Is(err, io.EOF) {
			t.Errorf("after exit: %v", err)
		}
	})

	t.Run("close", func(t *testing.T) {
		st, err := c.ExecStream(ctx, sb.ID, client.Command("sleep", "1000"))
		if err != nil {
			t.Fatal(err)
		}
		recvUntil(t, st, client.EventStdout)
		st.Close()
		waitClosed(t, last().stopped, "stopped")
		if _, err := st.Recv(); err == nil || errors.Is(err, io.EOF) {
			t.Errorf("Recv after Close = %v", err)
		}
	})

	t.Run("context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		st, err := c.ExecStream(cctx, sb.ID, client.Command("sleep", "1000"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		recvUntil(t, st, client.EventStdout)
		cancel()
		if _, err := st.Recv(); !errors.Is(err, context.Canceled) {
			t.Errorf("Recv after cancel = %v, want context.Canceled", err)
		}
		waitClosed(t, last().stopped, "stopped")
	})

	t.Run("errors", func(t *testing.T) {
		other := e.account("stream-other@example.com")
		_, err := other.ExecStream(ctx, sb.ID, client.Command("true"))
		wantCode(t, err, 404, client.CodeNotFound)
		st, err := c.ExecStream(ctx, sb.ID, client.Command(""))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		_, err = st.Recv()
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Code != client.CodeStream || ce.Message == "" {
			t.Fatalf("empty cmd: %v", err)
		}
	})
}

// echoTerminal echoes its input as output; kill ends it with 137.
type echoTerminal struct {
	tag    string
	events chan wrenn.TerminalEvent
	mu     sync.Mutex
	sizes  [][2]int
	closed chan struct{}
	once   sync.Once
}

func newEchoTerminal(tag string) *echoTerminal {
	t := &echoTerminal{tag: tag, events: make(chan wrenn.TerminalEvent, 16), closed: make(chan struct{})}
	t.events <- wrenn.TerminalEvent{Type: wrenn.TerminalStarted, Tag: tag, PID: 42}
	return t
}

func (t *echoTerminal) Recv() (wrenn.TerminalEvent, error) {
	select {
	case ev, ok := <-t.events:
		if !ok {
			return wrenn.TerminalEvent{}, io.EOF
		}
		if ev.Type == wrenn.TerminalExited {
			close(t.events)
		}
		return ev, nil
	case <-t.closed:
		return wrenn.TerminalEvent{}, wrenn.Errorf(wrenn.EConflict, "detached")
	}
}

func (t *echoTerminal) Input(b []byte) error {
	t.events <- wrenn.TerminalEvent{Type: wrenn.TerminalOutput, Data: append([]byte(nil), b...)}
	return nil
}

func (t *echoTerminal) Resize(cols, rows int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sizes = append(t.sizes, [2]int{cols, rows})
	return nil
}

func (t *echoTerminal) Kill() error {
	t.events <- wrenn.TerminalEvent{Type: wrenn.TerminalExited, ExitCode: 137}
	return nil
}

func (t *echoTerminal) Close() error {
	t.once.Do(func() { close(t.closed) })
	return nil
}

// TestTerminal: start a terminal, type into it and read the echo (binary
// bytes too), resize (a bad size is an error event, not the end), kill;
// connect by tag; an unknown tag is a stream error.
func TestTerminal(t *testing.T) {
	var mu sync.Mutex
	var opened []wrenn.TerminalRequest
	var last *echoTerminal
	h := &mock.TerminalAgent{Agent: fakeHost()}
	h.OpenTerminalFn = func(_ context.Context, _ string, req wrenn.TerminalRequest) (wrenn.Terminal, error) {
		mu.Lock()
		defer mu.Unlock()
		opened = append(opened, req)
		switch req.Tag {
		case "", "pty-0123abcd":
			last = newEchoTerminal("pty-0123abcd")
			return last, nil
		}
		return nil, wrenn.Errorf(wrenn.ENotFound, "no terminal %q in this sandbox", req.Tag)
	}
	e := newEnv(t, h)
	ctx := context.Background()
	c := e.account("pty@example.com")
	sb := sandbox(t, c)

	term, err := c.Terminal(ctx, sb.ID, client.TerminalOptions{Cmd: "/bin/sh", Cols: 100, Rows: 30, Envs: map[string]string{"A": "b"}, Cwd: "/tmp", User: "root"})
	if err != nil {
		t.Fatal(err)
	}
	defer term.Close()
	if term.Tag != "pty-0123abcd" || term.PID != 42 {
		t.Errorf("terminal %s pid %d", term.Tag, term.PID)
	}
	mu.Lock()
	if r := opened[0]; r.Cmd != "/bin/sh" || r.Cols != 100 || r.Rows != 30 || r.Env["A"] != "b" || r.Dir != "/tmp" || r.User != "root" {
		t.Errorf("agent got %+v", r)
	}
	mu.Unlock()
	if _, err := io.WriteString(term, "echo hi\n"); err != nil {
		t.Fatal(err)
	}
	ev, err := term.Recv()
	if err != nil || ev.Type != client.TerminalOutput || string(ev.Data) != "echo hi\n" {
		t.Fatalf("Recv = %+v, %v", ev, err)
	}
	if _, err := term.Write([]byte{0x1b, 0xff}); err != nil {
		t.Fatal(err)
	}
	if ev, err := term.Recv(); err != nil || string(ev.Data) != "\x1b\xff" {
		t.Fatalf("Recv = %+v, %v", ev, err)
	}
	if err := term.Resize(0, 10); err != nil {
		t.Fatal(err)
	}
	if ev, err := term.Recv(); err != nil || ev.Type != client.TerminalError || ev.Message == "" {
		t.Fatalf("bad resize: %+v, %v", ev, err)
	}
	if err := term.Resize(120, 40); err != nil {
		t.Fatal(err)
	}
	// A detach and a connect by tag.
	term.Close()
	again, err := c.ConnectTerminal(ctx, sb.ID, "pty-0123abcd")
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if again.Tag != "pty-0123abcd" {
		t.Errorf("connected to %q", again.Tag)
	}
	if err := again.Kill(); err != nil {
		t.Fatal(err)
	}
	var exit *client.TerminalEvent
	for ev, err := range again.Events() {
		if err != nil {
			t.Fatal(err)
		}
		if ev.Type == client.TerminalExit {
			exit = &ev
		}
	}
	if exit == nil || exit.ExitCode != 137 {
		t.Errorf("exit %+v", exit)
	}

	_, err = c.ConnectTerminal(ctx, sb.ID, "pty-ffffffff")
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != client.CodeStream || !strings.Contains(ce.Message, "pty-ffffffff") {
		t.Fatalf("unknown tag: %v", err)
	}
	_, err = e.account("pty-other@example.com").Terminal(ctx, sb.ID, client.TerminalOptions{})
	wantCode(t, err, 404, client.CodeNotFound)
}

// fakeWatch reports the events it is given, then fails.
type fakeWatch struct {
	evs    chan wrenn.FileEvent
	closed chan struct{}
	once   sync.Once
}

func (w *fakeWatch) Recv() (wrenn.FileEvent, error) {
	select {
	case ev, ok := <-w.evs:
		if !ok {
			return wrenn.FileEvent{}, wrenn.Errorf(wrenn.ETooLarge, "changes came faster than the watch could report them")
		}
		return ev, nil
	case <-w.closed:
		return wrenn.FileEvent{}, io.ErrClosedPipe
	}
}

func (w *fakeWatch) Close() error {
	w.once.Do(func() { close(w.closed) })
	return nil
}

// TestWatchDir: a watch's events, its failure as a stream error, its end
// with its context; a missing directory is refused before the upgrade.
func TestWatchDir(t *testing.T) {
	var mu sync.Mutex
	var watches []*fakeWatch
	var recursive []bool
	h := &mock.WatchAgent{Agent: fakeHost()}
	h.WatchDirFn = func(_ context.Context, _, path string, rec bool) (wrenn.FileWatch, error) {
		if path == "/missing" {
			return nil, wrenn.Errorf(wrenn.ENotFound, "no directory %s", path)
		}
		w := &fakeWatch{evs: make(chan wrenn.FileEvent, 4), closed: make(chan struct{})}
		w.evs <- wrenn.FileEvent{Op: wrenn.FileCreated, Path: path + "/a"}
		w.evs <- wrenn.FileEvent{Op: wrenn.FileWritten, Path: path + "/a"}
		mu.Lock()
		defer mu.Unlock()
		watches = append(watches, w)
		recursive = append(recursive, rec)
		return w, nil
	}
	e := newEnv(t, h)
	ctx := context.Background()
	c := e.account("watch@example.com")
	sb := sandbox(t, c)

	w, err := c.WatchDir(ctx, sb.ID, "/root/w", true)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	mu.Lock()
	close(watches[0].evs)
	mu.Unlock()
	var got []client.FileEvent
	var last error
	for ev, err := range w.Events() {
		if err != nil {
			last = err
			break
		}
		got = append(got, ev)
	}
	if fmt.Sprint(got) != "[{create /root/w/a} {write /root/w/a}]" || !recursive[0] {
		t.Errorf("events %v recursive %v", got, recursive)
	}
	if ce, ok := last.(*client.Error); !ok || ce.Code != client.CodeStream || !strings.Contains(ce.Message, "faster") {
		t.Errorf("end = %v", last)
	}

	cctx, cancel := context.WithCancel(ctx)
	w2, err := c.WatchDir(cctx, sb.ID, "/root", false)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if ev, err := w2.Recv(); err != nil || ev.Op != client.FileCreated {
		t.Fatalf("Recv = %+v, %v", ev, err)
	}
	w2.Recv()
	cancel()
	if _, err := w2.Recv(); !errors.Is(err, context.Canceled) {
		t.Errorf("after cancel: %v", err)
	}
	mu.Lock()
	ch := watches[1].closed
	rec := recursive[1]
	mu.Unlock()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal("the server kept the watch of a client that left")
	}
	if rec {
		t.Error("recursive = true, want false")
	}

	_, err = c.WatchDir(ctx, sb.ID, "/missing", false)
	wantCode(t, err, 404, client.CodeNotFound)
	_, err = c.WatchDir(ctx, sb.ID, "relative", false)
	wantCode(t, err, 400, client.CodeInvalid)
}

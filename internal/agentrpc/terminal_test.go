package agentrpc_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc"
	"github.com/wrennhq/wrenn/internal/mock"
)

type termHost struct {
	*mock.TerminalAgent
}

func (termHost) Info(context.Context) (*wrenn.HostInfo, error) {
	return &wrenn.HostInfo{ID: "h1", Accel: "kvm"}, nil
}

// echoTerminal echoes input as output; kill ends it with 137.
type echoTerminal struct {
	events chan wrenn.TerminalEvent
	mu     sync.Mutex
	size   [2]int
	closed chan struct{}
	once   sync.Once
}

func (t *echoTerminal) Recv() (wrenn.TerminalEvent, error) {
	select {
	case ev, ok := <-t.events:
		if !ok {
			return ev, io.EOF
		}
		if ev.Type == wrenn.TerminalExited {
			close(t.events)
		}
		return ev, nil
	case <-t.closed:
		return wrenn.TerminalEvent{}, errors.New("detached")
	}
}

func (t *echoTerminal) Input(b []byte) error {
	t.events <- wrenn.TerminalEvent{Type: wrenn.TerminalOutput, Data: b}
	return nil
}

func (t *echoTerminal) Resize(c, r int) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.size = [2]int{c, r}
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

func TestTerminalRoundTrips(t *testing.T) {
	ctx := context.Background()
	var got wrenn.TerminalRequest
	var terms []*echoTerminal
	h := termHost{&mock.TerminalAgent{Agent: &mock.Agent{}, OpenTerminalFn: func(_ context.Context, id string, req wrenn.TerminalRequest) (wrenn.Terminal, error) {
		if req.Tag == "pty-nosuch0" {
			return nil, wrenn.Errorf(wrenn.ENotFound, "no terminal %q", req.Tag)
		}
		got = req
		et := &echoTerminal{events: make(chan wrenn.TerminalEvent, 8), closed: make(chan struct{})}
		et.events <- wrenn.TerminalEvent{Type: wrenn.TerminalStarted, Tag: "pty-01234567", PID: 7}
		terms = append(terms, et)
		return et, nil
	}}}
	c := agentrpc.Dial(serve(t, h, "secret"), "secret")

	if _, err := c.OpenTerminal(ctx, "sb-1", wrenn.TerminalRequest{Tag: "pty-nosuch0"}); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("unknown tag: %v", err)
	}
	req := wrenn.TerminalRequest{Cmd: "bash", Args: []string{"-l"}, Env: map[string]string{"A": "b"}, Dir: "/tmp", User: "u", Cols: 100, Rows: 30}
	term, err := c.OpenTerminal(ctx, "sb-1", req)
	if err != nil {
		t.Fatal(err)
	}
	if got.Cmd != "bash" || got.Args[0] != "-l" || got.Env["A"] != "b" || got.Dir != "/tmp" || got.User != "u" || got.Cols != 100 || got.Rows != 30 {
		t.Errorf("the agent got %+v", got)
	}
	if ev, err := term.Recv(); err != nil || ev.Type != wrenn.TerminalStarted || ev.Tag != "pty-01234567" || ev.PID != 7 {
		t.Errorf("started: %+v %v", ev, err)
	}
	if err := term.Input([]byte("hi\x00\xff")); err != nil {
		t.Fatal(err)
	}
	if ev, err := term.Recv(); err != nil || ev.Type != wrenn.TerminalOutput || string(ev.Data) != "hi\x00\xff" {
		t.Errorf("output: %+v %v", ev, err)
	}
	if err := term.Resize(0, 1); wrenn.ErrorCode(err) != wrenn.EInvalid {
		t.Errorf("resize to 0 columns: %v", err)
	}
	if err := term.Resize(120, 40); err != nil {
		t.Fatal(err)
	}
	if err := term.Kill(); err != nil {
		t.Fatal(err)
	}
	if ev, err := term.Recv(); err != nil || ev.Type != wrenn.TerminalExited || ev.ExitCode != 137 {
		t.Errorf("exit: %+v %v", ev, err)
	}
	if _, err := term.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("after the exit: %v", err)
	}
	terms[0].mu.Lock()
	if terms[0].size != [2]int{120, 40} {
		t.Errorf("size %v", terms[0].size)
	}
	terms[0].mu.Unlock()
	term.Close()

	// Closing detaches: the agent lets its terminal go.
	term, err = c.OpenTerminal(ctx, "sb-1", wrenn.TerminalRequest{Tag: "pty-01234567"})
	if err != nil {
		t.Fatal(err)
	}
	term.Close()
	select {
	case <-terms[1].closed:
	case <-time.After(10 * time.Second):
		t.Error("the agent's terminal was not closed when the caller detached")
	}

	// An agent without terminals.
	c2 := agentrpc.Dial(serve(t, snapHost{&mock.Agent{}}, "secret"), "secret")
	if _, err := c2.OpenTerminal(ctx, "sb-1", wrenn.TerminalRequest{}); wrenn.ErrorCode(err) != wrenn.EHostAgent {
		t.Errorf("an agent without terminals: %v", err)
	}
}

package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/client"
)

// TestExec: a blocking exec's request reaches the agent whole, text and
// binary output come back as bytes, and a stopped sandbox is a conflict.
func TestExec(t *testing.T) {
	h := fakeHost()
	var got wrenn.ExecRequest
	h.ExecFn = func(_ context.Context, _ string, req wrenn.ExecRequest) (*wrenn.ExecResult, error) {
		got = req
		if req.Cmd == "bin" {
			return &wrenn.ExecResult{Stdout: []byte{0xff, 0x00, 'a'}, Stderr: []byte("é"), ExitCode: 3, Duration: 5 * time.Millisecond}, nil
		}
		return &wrenn.ExecResult{Stdout: []byte("hi\n"), Stderr: []byte("warn\n"), ExitCode: 0}, nil
	}
	e := newEnv(t, h)
	ctx := context.Background()
	c := e.account("exec@example.com")
	sb := sandbox(t, c)

	req := client.Command("echo", "hi")
	req.Envs, req.Cwd, req.Timeout = map[string]string{"K": "v"}, "/tmp", 1500*time.Millisecond
	res, err := c.Exec(ctx, sb.ID, req)
	if err != nil || string(res.Stdout) != "hi\n" || string(res.Stderr) != "warn\n" || res.ExitCode != 0 || res.SandboxID != sb.ID || res.Cmd != "echo" {
		t.Fatalf("Exec = %+v, %v", res, err)
	}
	if got.Cmd != "echo" || !slices.Equal(got.Args, []string{"hi"}) || got.Env["K"] != "v" || got.Dir != "/tmp" || got.Timeout != 2*time.Second {
		t.Errorf("agent got %+v", got)
	}
	res, err = c.Exec(ctx, sb.ID, client.Command("bin"))
	if err != nil || !bytes.Equal(res.Stdout, []byte{0xff, 0x00, 'a'}) || string(res.Stderr) != "é" || res.ExitCode != 3 || res.Duration != 5*time.Millisecond {
		t.Fatalf("binary Exec = %+v, %v", res, err)
	}
	_, err = c.Exec(ctx, sb.ID, client.Command(""))
	wantCode(t, err, 400, client.CodeInvalid)
	_, err = c.Exec(ctx, "sb-nothere", client.Command("true"))
	wantCode(t, err, 404, client.CodeNotFound)
	if _, err := c.PauseSandbox(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	// A paused sandbox without auto_pause is not running.
	_, err = c.Exec(ctx, sb.ID, client.Command("true"))
	wantCode(t, err, 409, client.CodeConflict)
}

// TestProcesses: start, list, kill and stream background processes.
func TestProcesses(t *testing.T) {
	h := fakeHost()
	var mu sync.Mutex
	var started wrenn.ProcessRequest
	var kills []string
	h.StartProcessFn = func(_ context.Context, _ string, req wrenn.ProcessRequest) (wrenn.Process, error) {
		if req.Tag == "taken" {
			return wrenn.Process{}, wrenn.Errorf(wrenn.EConflict, "a running process already has the tag %q", req.Tag)
		}
		started = req
		return wrenn.Process{PID: 42, Tag: "web", Cmd: req.Cmd, Args: req.Args, Running: true}, nil
	}
	h.ListProcessesFn = func(context.Context, string) ([]wrenn.Process, error) {
		return []wrenn.Process{{PID: 42, Tag: "web", Cmd: "sh", Args: []string{"-c", "serve"}, Running: true}, {PID: 7, Tag: "old"}}, nil
	}
	h.KillProcessFn = func(_ context.Context, _ string, sel wrenn.ProcessSelector, sig wrenn.Signal) error {
		if sel.Tag == "nobody" {
			return wrenn.Errorf(wrenn.ENotFound, "no such process")
		}
		mu.Lock()
		defer mu.Unlock()
		kills = append(kills, fmt.Sprintf("%s|%d|%s", sel.Tag, sel.PID, sig))
		return nil
	}
	h.ConnectProcessFn = func(_ context.Context, _ string, sel wrenn.ProcessSelector) (wrenn.ProcessStream, error) {
		if sel.Tag != "web" {
			return nil, wrenn.Errorf(wrenn.ENotFound, "no such process")
		}
		return &playback{evs: []wrenn.ExecEvent{
			{Type: wrenn.ExecStarted, PID: 42}, {Type: wrenn.ExecStdout, Data: []byte("listening\n")},
			{Type: wrenn.ExecStderr, Data: []byte{0xfe}}, {Type: wrenn.ExecExited, ExitCode: 0}, {},
		}}, nil
	}
	e := newEnv(t, h)
	ctx := context.Background()
	c := e.account("proc@example.com")
	sb := sandbox(t, c)

	req := client.Command("sh", "-c", "serve")
	req.Envs, req.Cwd = map[string]string{"PORT": "80"}, "/srv"
	p, err := c.StartProcess(ctx, sb.ID, req, "web")
	if err != nil || p.PID != 42 || p.Tag != "web" || p.Cmd != "sh" {
		t.Fatalf("StartProcess = %+v, %v", p, err)
	}
	if started.Tag != "web" || started.Env["PORT"] != "80" || started.Dir != "/srv" || !slices.Equal(started.Args, []string{"-c", "serve"}) {
		t.Errorf("agent got %+v", started)
	}
	_, err = c.StartProcess(ctx, sb.ID, req, "taken")
	wantCode(t, err, 409, client.CodeConflict)

	ps, err := c.ListProcesses(ctx, sb.ID)
	if err != nil || len(ps) != 1 || ps[0].Tag != "web" || !slices.Equal(ps[0].Args, []string{"-c", "serve"}) {
		t.Fatalf("ListProcesses = %+v, %v", ps, err)
	}
	if err := c.KillProcess(ctx, sb.ID, "web", ""); err != nil {
		t.Fatal(err)
	}
	if err := c.KillProcess(ctx, sb.ID, "42", client.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = c.KillProcess(ctx, sb.ID, "web", "SIGHUP")
	wantCode(t, err, 400, client.CodeInvalid)
	err = c.KillProcess(ctx, sb.ID, "nobody", "")
	wantCode(t, err, 404, client.CodeNotFound)
	if want := []string{"web|0|SIGTERM", "|42|SIGKILL"}; !slices.Equal(kills, want) {
		t.Errorf("kills = %q", kills)
	}

	st, err := c.ProcessStream(ctx, sb.ID, "web")
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var evs []client.ExecEvent
	for ev, err := range st.Events() {
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	want := []client.ExecEvent{{Type: client.EventStart, PID: 42}, {Type: client.EventStdout, Data: []byte("listening\n")},
		{Type: client.EventStderr, Data: []byte{0xfe}}, {Type: client.EventExit}}
	if fmt.Sprint(evs) != fmt.Sprint(want) {
		t.Errorf("events = %v, want %v", evs, want)
	}
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("Recv after exit = %v, want EOF", err)
	}
	_, err = c.ProcessStream(ctx, sb.ID, "gone")
	wantCode(t, err, 404, client.CodeNotFound)
}

// playback is a process or exec stream that plays its events back (a zero
// event is io.EOF), then blocks until closed.
type playback struct {
	mu     sync.Mutex
	evs    []wrenn.ExecEvent
	closed chan struct{}
	once   sync.Once
}

func (p *playback) init() {
	p.once.Do(func() {
		if p.closed == nil {
			p.closed = make(chan struct{})
		}
	})
}

func (p *playback) Recv() (wrenn.ExecEvent, error) {
	p.init()
	p.mu.Lock()
	if len(p.evs) == 0 {
		p.mu.Unlock()
		<-p.closed
		return wrenn.ExecEvent{}, context.Canceled
	}
	ev := p.evs[0]
	p.evs = p.evs[1:]
	p.mu.Unlock()
	if ev.Type == "" {
		return wrenn.ExecEvent{}, io.EOF
	}
	return ev, nil
}

func (p *playback) Stop() error { return nil }

func (p *playback) Close() error {
	p.init()
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.closed:
	default:
		close(p.closed)
	}
	return nil
}

package agentrpc_test

import (
	"context"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/agentrpc"
	"github.com/wrennhq/wrenn/internal/mock"
)

// eventStream plays back a list of events.
type eventStream struct {
	evs    []wrenn.ExecEvent
	closed chan struct{}
}

func (s *eventStream) Recv() (wrenn.ExecEvent, error) {
	if len(s.evs) == 0 {
		return wrenn.ExecEvent{}, io.EOF
	}
	ev := s.evs[0]
	s.evs = s.evs[1:]
	return ev, nil
}

func (s *eventStream) Close() error { close(s.closed); return nil }

func TestProcessRoundTrips(t *testing.T) {
	ctx := context.Background()
	events := []wrenn.ExecEvent{
		{Type: wrenn.ExecStarted, PID: 42},
		{Type: wrenn.ExecStdout, Data: []byte("out\xff")},
		{Type: wrenn.ExecStderr, Data: []byte("err")},
		{Type: wrenn.ExecExited, ExitCode: 143},
	}
	st := &eventStream{evs: events, closed: make(chan struct{})}
	var killed []string
	h := snapHost{&mock.Agent{
		StartProcessFn: func(_ context.Context, id string, req wrenn.ProcessRequest) (wrenn.Process, error) {
			want := wrenn.ProcessRequest{Cmd: "/bin/sh", Args: []string{"-c", "serve"}, Env: map[string]string{"A": "b"}, Dir: "/srv", Tag: "web"}
			if id != "sb-1" || !reflect.DeepEqual(req, want) {
				return wrenn.Process{}, wrenn.Errorf(wrenn.EInvalid, "start %s %+v", id, req)
			}
			return wrenn.Process{PID: 42, Tag: "web", Cmd: req.Cmd, Args: req.Args, Running: true}, nil
		},
		ListProcessesFn: func(context.Context, string) ([]wrenn.Process, error) {
			return []wrenn.Process{{PID: 42, Tag: "web", Cmd: "sh", Running: true}, {PID: 7, Tag: "t", ExitCode: 3}}, nil
		},
		KillProcessFn: func(_ context.Context, _ string, sel wrenn.ProcessSelector, sig wrenn.Signal) error {
			if sel.Tag == "nobody" {
				return wrenn.Errorf(wrenn.ENotFound, "no such process")
			}
			killed = append(killed, sel.Tag+"/"+string(sig))
			return nil
		},
		ConnectProcessFn: func(_ context.Context, _ string, sel wrenn.ProcessSelector) (wrenn.ProcessStream, error) {
			if sel.PID != 42 {
				return nil, wrenn.Errorf(wrenn.ENotFound, "no process %d", sel.PID)
			}
			return st, nil
		},
	}}
	c := agentrpc.Dial(serve(t, h, "secret"), "secret")

	p, err := c.StartProcess(ctx, "sb-1", wrenn.ProcessRequest{Cmd: "/bin/sh", Args: []string{"-c", "serve"}, Env: map[string]string{"A": "b"}, Dir: "/srv", Tag: "web"})
	if err != nil || p.PID != 42 || p.Tag != "web" || !p.Running {
		t.Errorf("start: %+v, %v", p, err)
	}
	ps, err := c.ListProcesses(ctx, "sb-1")
	if err != nil || len(ps) != 2 || ps[1].ExitCode != 3 || ps[1].Running {
		t.Errorf("list: %+v, %v", ps, err)
	}
	if err := c.KillProcess(ctx, "sb-1", wrenn.ProcessSelector{Tag: "web"}, wrenn.SIGKILL); err != nil {
		t.Error(err)
	}
	if err := c.KillProcess(ctx, "sb-1", wrenn.ProcessSelector{Tag: "nobody"}, ""); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("kill nobody: %v", err)
	}
	if !reflect.DeepEqual(killed, []string{"web/SIGKILL"}) {
		t.Errorf("killed %q", killed)
	}
	if _, err := c.ConnectProcess(ctx, "sb-1", wrenn.ProcessSelector{PID: 9}); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("connect to nobody: %v", err)
	}
	ps2, err := c.ConnectProcess(ctx, "sb-1", wrenn.ProcessSelector{PID: 42})
	if err != nil {
		t.Fatal(err)
	}
	defer ps2.Close()
	var got []wrenn.ExecEvent
	for {
		ev, err := ps2.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ev)
	}
	if !reflect.DeepEqual(got, events) {
		t.Errorf("events %+v, want %+v", got, events)
	}
	<-st.closed
}

func TestProcessUnimplemented(t *testing.T) {
	ctx := context.Background()
	c := agentrpc.Dial(serve(t, &fakeHost{}, "secret"), "secret")
	calls := map[string]func() error{
		"start":   func() error { _, err := c.StartProcess(ctx, "sb-1", wrenn.ProcessRequest{Cmd: "true"}); return err },
		"list":    func() error { _, err := c.ListProcesses(ctx, "sb-1"); return err },
		"kill":    func() error { return c.KillProcess(ctx, "sb-1", wrenn.ProcessSelector{PID: 1}, "") },
		"connect": func() error { _, err := c.ConnectProcess(ctx, "sb-1", wrenn.ProcessSelector{PID: 1}); return err },
	}
	for name, call := range calls {
		if err := call(); wrenn.ErrorCode(err) != wrenn.EHostAgent || !strings.Contains(wrenn.ErrorMessage(err), "background") {
			t.Errorf("%s: %v, want a host agent error", name, err)
		}
	}
}

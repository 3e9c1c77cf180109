package control_test

import (
	"context"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/mock"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

type nopTerminal struct{ closed bool }

func (*nopTerminal) Recv() (wrenn.TerminalEvent, error) { return wrenn.TerminalEvent{}, nil }
func (*nopTerminal) Input([]byte) error                 { return nil }
func (*nopTerminal) Resize(int, int) error              { return nil }
func (*nopTerminal) Kill() error                        { return nil }
func (t *nopTerminal) Close() error                     { t.closed = true; return nil }

// TestOpenTerminal: the client's request reaches the agent as asked; an
// attached terminal is activity until it is closed; bad sizes are refused
// before the agent, another team's sandbox is not found, a paused one a
// conflict, and an agent without terminals a host agent error.
func TestOpenTerminal(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	var got []wrenn.TerminalRequest
	term := &nopTerminal{}
	agent := &mock.TerminalAgent{Agent: &mock.Agent{
		CreateSandboxFn: func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) { return wrenn.SandboxNet{}, nil },
		PauseSandboxFn:  func(context.Context, string) error { return nil },
	}, OpenTerminalFn: func(_ context.Context, _ string, req wrenn.TerminalRequest) (wrenn.Terminal, error) {
		got = append(got, req)
		return term, nil
	}}
	svc, db := mustService(t, storetest.Engines(t)[0], agent, func(c *control.Config) {
		c.Now = func() time.Time { return now }
	})
	sb, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal", TimeoutSec: 60,
		Envs: map[string]string{"A": "sandbox's", "S": "s"}})
	if err != nil {
		t.Fatal(err)
	}
	p := control.TerminalParams{Cmd: "/bin/bash", Args: []string{"-l"}, Env: map[string]string{"A": "b"}, Dir: "/tmp", User: "root", Cols: 100, Rows: 30}
	tm, err := svc.OpenTerminal(ctx, "team-a", sb.ID, p)
	if err != nil {
		t.Fatal(err)
	}
	if r := got[0]; r.Cmd != "/bin/bash" || r.Args[0] != "-l" || r.Env["A"] != "b" || r.Env["S"] != "s" || r.Dir != "/tmp" || r.User != "root" || r.Cols != 100 || r.Rows != 30 || r.Tag != "" {
		t.Errorf("the agent got %+v", r)
	}
	now = now.Add(50 * time.Second)
	tm.Close()
	if !term.closed {
		t.Error("closing did not detach the agent's terminal")
	}
	if s, err := db.GetSandbox(ctx, "team-a", sb.ID); err != nil || s.LastActiveAt == nil || !s.LastActiveAt.Equal(now) {
		t.Errorf("last active %v, want the terminal's close at %v (%v)", s.LastActiveAt, now, err)
	}
	if _, err := svc.OpenTerminal(ctx, "team-a", sb.ID, control.TerminalParams{Tag: "pty-01234567", Cmd: "ignored"}); err != nil || got[1].Tag != "pty-01234567" || got[1].Cmd != "" {
		t.Errorf("connect: %+v %v", got[1], err)
	}
	for _, bad := range []control.TerminalParams{{Cols: -1}, {Rows: wrenn.MaxTerminalRows + 1}} {
		if _, err := svc.OpenTerminal(ctx, "team-a", sb.ID, bad); wrenn.ErrorCode(err) != wrenn.EInvalid {
			t.Errorf("%+v: %v, want invalid", bad, err)
		}
	}
	if _, err := svc.OpenTerminal(ctx, "team-b", sb.ID, control.TerminalParams{}); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("another team's sandbox: %v, want not found", err)
	}
	if _, err := svc.PauseSandbox(ctx, "team-a", sb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.OpenTerminal(ctx, "team-a", sb.ID, control.TerminalParams{}); wrenn.ErrorCode(err) != wrenn.EConflict {
		t.Errorf("a paused sandbox: %v, want conflict", err)
	}

	plain, _ := mustService(t, storetest.Engines(t)[0], agent.Agent)
	sb2, err := plain.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.OpenTerminal(ctx, "team-a", sb2.ID, control.TerminalParams{}); wrenn.ErrorCode(err) != wrenn.EHostAgent {
		t.Errorf("an agent without terminals: %v", err)
	}
}

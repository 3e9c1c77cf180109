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

func TestParseSelector(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want wrenn.ProcessSelector
		code string
	}{
		{"42", wrenn.ProcessSelector{PID: 42}, ""},
		{"web", wrenn.ProcessSelector{Tag: "web"}, ""},
		{"proc-0a1b2c3d", wrenn.ProcessSelector{Tag: "proc-0a1b2c3d"}, ""},
		{"0", wrenn.ProcessSelector{}, wrenn.ENotFound},
		{"99999999999", wrenn.ProcessSelector{}, wrenn.ENotFound},
		{"4x", wrenn.ProcessSelector{}, wrenn.ENotFound},
		{"", wrenn.ProcessSelector{}, wrenn.ENotFound},
	} {
		got, err := control.ParseSelector(tc.in)
		if wrenn.ErrorCode(err) != tc.code || (err == nil && got != tc.want) {
			t.Errorf("ParseSelector(%q) = %+v, %v", tc.in, got, err)
		}
	}
}

// TestProcesses: a background process gets the exec's env and directory
// and no timeout; the list holds running processes only; a stream keeps
// its sandbox active until closed; another team's sandbox is not found.
func TestProcesses(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	var got wrenn.ProcessRequest
	var gotSig wrenn.Signal
	agent := &mock.Agent{
		CreateSandboxFn: func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
			return wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "10.0.0.1"}, nil
		},
		StartProcessFn: func(_ context.Context, _ string, req wrenn.ProcessRequest) (wrenn.Process, error) {
			got = req
			return wrenn.Process{PID: 7, Tag: "web", Running: true}, nil
		},
		ListProcessesFn: func(context.Context, string) ([]wrenn.Process, error) {
			return []wrenn.Process{{PID: 1, Tag: "a", ExitCode: 2}, {PID: 7, Tag: "web", Running: true}}, nil
		},
		KillProcessFn: func(_ context.Context, _ string, _ wrenn.ProcessSelector, sig wrenn.Signal) error {
			gotSig = sig
			return nil
		},
		ConnectProcessFn: func(context.Context, string, wrenn.ProcessSelector) (wrenn.ProcessStream, error) {
			return nopStream{}, nil
		},
	}
	svc, db := mustService(t, storetest.Engines(t)[0], agent, func(c *control.Config) {
		c.Now = func() time.Time { return now }
	})
	sb, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal", TimeoutSec: 60,
		Envs: map[string]string{"A": "sandbox", "Z": "sandbox"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.StartProcess(ctx, "team-a", sb.ID, control.ExecParams{Cmd: "serve", Env: map[string]string{"A": "b"}, Dir: "/srv", TimeoutSec: 30}, "web")
	if err != nil || p.PID != 7 || got.Env["A"] != "b" || got.Env["Z"] != "sandbox" || got.Dir != "/srv" || got.Tag != "web" {
		t.Errorf("start: %+v, %v; agent got %+v", p, err, got)
	}
	if _, err := svc.StartProcess(ctx, "team-a", sb.ID, control.ExecParams{Cmd: "serve"}, "12"); wrenn.ErrorCode(err) != wrenn.EInvalid {
		t.Errorf("numeric tag: %v", err)
	}
	if _, err := svc.StartProcess(ctx, "team-b", sb.ID, control.ExecParams{Cmd: "serve"}, ""); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("another team's sandbox: %v", err)
	}
	ps, err := svc.ListProcesses(ctx, "team-a", sb.ID)
	if err != nil || len(ps) != 1 || ps[0].Tag != "web" {
		t.Errorf("list: %+v, %v", ps, err)
	}
	if err := svc.KillProcess(ctx, "team-a", sb.ID, wrenn.ProcessSelector{Tag: "web"}, ""); err != nil || gotSig != wrenn.SIGTERM {
		t.Errorf("kill: %v, signal %q", err, gotSig)
	}
	if err := svc.KillProcess(ctx, "team-a", sb.ID, wrenn.ProcessSelector{Tag: "web"}, "SIGHUP"); wrenn.ErrorCode(err) != wrenn.EInvalid {
		t.Errorf("kill with SIGHUP: %v", err)
	}

	// A stream open keeps the sandbox active; closing it is activity too.
	st, err := svc.ConnectProcess(ctx, "team-a", sb.ID, wrenn.ProcessSelector{PID: 7})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	st.Close()
	rec, err := db.GetSandbox(ctx, "team-a", sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.LastActiveAt == nil || !rec.LastActiveAt.Equal(now) {
		t.Errorf("last active %v, want the stream's close at %v", rec.LastActiveAt, now)
	}
}

type nopStream struct{}

func (nopStream) Recv() (wrenn.ExecEvent, error) { return wrenn.ExecEvent{}, nil }
func (nopStream) Close() error                   { return nil }

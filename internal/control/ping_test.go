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

// TestPingSandbox: a ping records activity on a running sandbox, so its
// inactivity timeout starts again; a paused one is a conflict, another
// team's not found.
func TestPingSandbox(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	net := wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "10.0.0.1"}
	agent := &mock.Agent{
		CreateSandboxFn: func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) { return net, nil },
		PauseSandboxFn:  func(context.Context, string) error { return nil },
	}
	svc, db := mustService(t, storetest.Engines(t)[0], agent, func(c *control.Config) {
		c.Now = func() time.Time { return now }
	})
	sb, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal", TimeoutSec: 60})
	if err != nil {
		t.Fatal(err)
	}
	now = now.Add(50 * time.Second)
	if err := svc.PingSandbox(ctx, "team-a", sb.ID); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetSandbox(ctx, "team-a", sb.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.LastActiveAt == nil || !got.LastActiveAt.Equal(now) {
		t.Errorf("last active %v after a ping at %v", got.LastActiveAt, now)
	}
	if err := svc.PingSandbox(ctx, "team-b", sb.ID); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("another team's ping: %v, want not found", err)
	}
	if _, err := svc.PauseSandbox(ctx, "team-a", sb.ID); err != nil {
		t.Fatal(err)
	}
	if err := svc.PingSandbox(ctx, "team-a", sb.ID); wrenn.ErrorCode(err) != wrenn.EConflict {
		t.Errorf("ping of a paused sandbox: %v, want conflict", err)
	}
}

package control_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/mock"
	"github.com/wrennhq/wrenn/internal/store"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// mustService returns a control plane over a fresh store holding team-a
// and the base template minimal, with agent as its host agent (id host-1).
// Each of edits may change its configuration first.
func mustService(t *testing.T, engine string, agent wrenn.Agent, edits ...func(*control.Config)) (*control.Service, *store.DB) {
	t.Helper()
	ctx := context.Background()
	db := storetest.MustOpen(t, engine)
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	if err := db.CreateAccount(ctx, &wrenn.User{ID: "usr-a", Email: "a@example.com", PasswordHash: "x", CreatedAt: now},
		&wrenn.Team{ID: "team-a", Name: "a", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutTemplate(ctx, &wrenn.Template{Name: "minimal", Type: wrenn.TemplateBase, CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	c := control.Config{Sandboxes: db, Templates: db, Quotas: db, Agent: agent, HostID: "host-1",
		Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, edit := range edits {
		edit(&c)
	}
	return control.NewService(c), db
}

// TestSandboxHost: a sandbox's record names the host agent that holds it,
// from the moment it is recorded pending, and again after a resume.
func TestSandboxHost(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			var db *store.DB
			var pendingHost string
			net := wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "10.0.0.1"}
			agent := &mock.Agent{
				CreateSandboxFn: func(ctx context.Context, spec wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
					sb, err := db.GetSandbox(ctx, spec.TeamID, spec.ID)
					if err != nil {
						return wrenn.SandboxNet{}, err
					}
					pendingHost = sb.HostID
					return net, nil
				},
				PauseSandboxFn:  func(context.Context, string) error { return nil },
				ResumeSandboxFn: func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) { return net, nil },
			}
			var svc *control.Service
			svc, db = mustService(t, engine, agent)
			sb, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"})
			if err != nil {
				t.Fatal(err)
			}
			if pendingHost != "host-1" {
				t.Errorf("the pending record names host %q, want host-1", pendingHost)
			}
			check := func(when string) {
				t.Helper()
				got, err := db.GetSandbox(ctx, "team-a", sb.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.HostID != "host-1" {
					t.Errorf("%s the record names host %q, want host-1", when, got.HostID)
				}
			}
			check("once running")
			if _, err := svc.PauseSandbox(ctx, "team-a", sb.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.ResumeSandbox(ctx, "team-a", sb.ID); err != nil {
				t.Fatal(err)
			}
			check("after a resume")
		})
	}
}

package control_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/mock"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// quotaAgent is a host agent that starts, pauses, resumes, snapshots and
// destroys whatever it is asked to.
func quotaAgent() *mock.Agent {
	net := wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "10.0.0.1"}
	return &mock.Agent{
		CreateSandboxFn:  func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) { return net, nil },
		DestroySandboxFn: func(context.Context, string) error { return nil },
		PauseSandboxFn:   func(context.Context, string) error { return nil },
		ResumeSandboxFn:  func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) { return net, nil },
		CreateSnapshotFn: func(_ context.Context, _ string, t *wrenn.Template) error {
			t.SizeBytes = 300 * wrenn.MiB
			return nil
		},
	}
}

func withLimits(l control.Limits) func(*control.Config) {
	return func(c *control.Config) { c.Limits = l }
}

func wantCode(t *testing.T, err error, code, msg string) {
	t.Helper()
	if wrenn.ErrorCode(err) != code || (msg != "" && wrenn.ErrorMessage(err) != msg) {
		t.Fatalf("error = %v, want %s %q", err, code, msg)
	}
}

// TestQuotaRunningSandboxes: a team at its running-sandbox limit is
// refused, naming the limit, and can create again once it destroys one.
func TestQuotaRunningSandboxes(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			svc, _ := mustService(t, engine, quotaAgent(), withLimits(control.Limits{Quota: wrenn.Quota{Sandboxes: 2}}))
			a, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"}); err != nil {
				t.Fatal(err)
			}
			_, err = svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"})
			wantCode(t, err, wrenn.EQuotaExceeded, "team quota: 2 running sandboxes (2 running now)")
			if err := svc.DestroySandbox(ctx, "team-a", a.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"}); err != nil {
				t.Fatalf("create after a destroy: %v", err)
			}
		})
	}
}

// TestMaxSizes: sizes above the operator's maximums are invalid, and the
// message says the maximum.
func TestMaxSizes(t *testing.T) {
	ctx := context.Background()
	svc, _ := mustService(t, "sqlite", quotaAgent(), withLimits(control.Limits{MaxVCPUs: 2, MaxMemoryMB: 1024}))
	for _, tc := range []struct {
		p    control.CreateParams
		want string
	}{
		{control.CreateParams{Template: "minimal", VCPUs: 3}, "vcpus must be between 1 and 2 (this server's maximum)"},
		{control.CreateParams{Template: "minimal", MemoryMB: 2048}, "memory_mb must be between 128 and 1024 (this server's maximum)"},
	} {
		_, err := svc.CreateSandbox(ctx, "team-a", tc.p)
		wantCode(t, err, wrenn.EInvalid, tc.want)
	}
	if _, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal", VCPUs: 2, MemoryMB: 1024}); err != nil {
		t.Fatal(err)
	}
	// The defaults are those of the API before they were configurable.
	svc, _ = mustService(t, "sqlite", quotaAgent())
	_, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal", VCPUs: 9})
	wantCode(t, err, wrenn.EInvalid, "vcpus must be between 1 and 8 (this server's maximum)")
}

// TestQuotaResume: a paused sandbox does not count against running
// sandboxes, so resuming it checks the quota again; a refused or failed
// resume leaves it paused.
func TestQuotaResume(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			agent := quotaAgent()
			svc, db := mustService(t, engine, agent, withLimits(control.Limits{Quota: wrenn.Quota{Sandboxes: 1}}))
			a, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := svc.PauseSandbox(ctx, "team-a", a.ID); err != nil {
				t.Fatal(err)
			}
			b, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"})
			if err != nil {
				t.Fatalf("create beside a paused sandbox: %v", err)
			}
			_, err = svc.ResumeSandbox(ctx, "team-a", a.ID)
			wantCode(t, err, wrenn.EQuotaExceeded, "team quota: 1 running sandboxes (1 running now)")
			mustStatus(t, db, a.ID, wrenn.StatusPaused)

			if err := svc.DestroySandbox(ctx, "team-a", b.ID); err != nil {
				t.Fatal(err)
			}
			agent.ResumeSandboxFn = func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
				return wrenn.SandboxNet{}, errors.New("no room")
			}
			_, err = svc.ResumeSandbox(ctx, "team-a", a.ID)
			wantCode(t, err, wrenn.EHostAgent, "")
			mustStatus(t, db, a.ID, wrenn.StatusPaused)

			agent.ResumeSandboxFn = quotaAgent().ResumeSandboxFn
			sb, err := svc.ResumeSandbox(ctx, "team-a", a.ID)
			if err != nil || sb.Status != wrenn.StatusRunning {
				t.Fatalf("resume = %+v, %v", sb, err)
			}
			_, err = svc.ResumeSandbox(ctx, "team-a", a.ID)
			wantCode(t, err, wrenn.EConflict, "sandbox is running, not paused")
		})
	}
}

// TestQuotaSnapshotStorage: a snapshot is refused when the team's snapshot
// templates and paused sandboxes, with the sandbox's memory, would pass
// the quota; the sandbox is not consumed.
func TestQuotaSnapshotStorage(t *testing.T) {
	ctx := context.Background()
	agent := quotaAgent()
	svc, db := mustService(t, "sqlite", agent, withLimits(control.Limits{Quota: wrenn.Quota{SnapshotMB: 1200}}))
	create := func() *wrenn.Sandbox {
		t.Helper()
		sb, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"}) // 512 MiB
		if err != nil {
			t.Fatal(err)
		}
		return sb
	}
	a := create()
	if _, err := svc.CreateSnapshot(ctx, "team-a", control.SnapshotParams{SandboxID: a.ID, Name: "one"}); err != nil {
		t.Fatal(err) // 300 MiB recorded
	}
	b := create()
	if _, err := svc.PauseSandbox(ctx, "team-a", b.ID); err != nil {
		t.Fatal(err) // 512 MiB as paused
	}
	c := create()
	_, err := svc.CreateSnapshot(ctx, "team-a", control.SnapshotParams{SandboxID: c.ID, Name: "two"})
	wantCode(t, err, wrenn.EQuotaExceeded, "team quota: 1200 MiB of snapshot storage (812 MiB in use, about 512 MiB more asked)")
	mustStatus(t, db, c.ID, wrenn.StatusRunning)

	// Replacing a template frees what it held.
	if _, err := svc.CreateSnapshot(ctx, "team-a", control.SnapshotParams{SandboxID: c.ID, Name: "one", Overwrite: true}); err != nil {
		t.Fatalf("replace a template: %v", err)
	}
}

// TestHostFull: an agent that has no room says so, and the client hears
// it as is, not as a host agent failure.
func TestHostFull(t *testing.T) {
	ctx := context.Background()
	agent := quotaAgent()
	full := wrenn.Errorf(wrenn.EHostFull, "host is full: the sandbox needs 2 vCPUs, 1 of 8 free")
	agent.CreateSandboxFn = func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) { return wrenn.SandboxNet{}, full }
	svc, db := mustService(t, "sqlite", agent)
	_, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal", VCPUs: 2})
	wantCode(t, err, wrenn.EHostFull, full.Message)
	if sbs, _ := db.ListSandboxes(ctx, "team-a"); len(sbs) != 0 {
		t.Errorf("a refused create left %d records", len(sbs))
	}
}

func mustStatus(t *testing.T, db interface {
	GetSandbox(context.Context, string, string) (*wrenn.Sandbox, error)
}, id string, want wrenn.SandboxStatus) {
	t.Helper()
	sb, err := db.GetSandbox(context.Background(), "team-a", id)
	if err != nil {
		t.Fatal(err)
	}
	if sb.Status != want {
		t.Fatalf("sandbox is %s, want %s", sb.Status, want)
	}
}

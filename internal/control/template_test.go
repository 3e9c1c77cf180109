package control_test

import (
	"context"
	"errors"
	"testing"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/mock"
)

// TestSnapshotNotRecorded: when the agent has made a template but its
// record cannot be written, the agent's files are deleted (nothing could
// ever use or delete them), a record it replaced goes too (its files are
// gone), and the sandbox it consumed is recorded as error, not running.
func TestSnapshotNotRecorded(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing bool // a template of that name exists, and is overwritten
	}{
		{"new", false},
		{"overwrite", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var deleted []string
			net := wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "10.0.0.1"}
			agent := &mock.Agent{
				CreateSandboxFn: func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) { return net, nil },
				CreateSnapshotFn: func(_ context.Context, _ string, tm *wrenn.Template) error {
					v, m := 1, 512
					tm.VCPUs, tm.MemoryMB = &v, &m
					return nil
				},
				DeleteSnapshotFn: func(_ context.Context, teamID, name string) error {
					deleted = append(deleted, teamID+"/"+name)
					return nil
				},
			}
			broken := errors.New("disk full")
			svc, db := mustService(t, "sqlite", agent, func(c *control.Config) {
				c.Templates = failingPut{TemplateStore: c.Templates, err: broken}
			})
			sb, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"})
			if err != nil {
				t.Fatal(err)
			}
			if tc.existing {
				if err := db.PutTemplate(ctx, &wrenn.Template{Name: "prepared", TeamID: "team-a", Type: wrenn.TemplateSnapshot}); err != nil {
					t.Fatal(err)
				}
			}
			_, err = svc.CreateSnapshot(ctx, "team-a", control.SnapshotParams{SandboxID: sb.ID, Name: "prepared", Overwrite: tc.existing})
			if !errors.Is(err, broken) || wrenn.ErrorCode(err) != wrenn.EInternal {
				t.Errorf("snapshot = %v, want the store's failure", err)
			}
			if len(deleted) != 1 || deleted[0] != "team-a/prepared" {
				t.Errorf("the agent was asked to delete %v, want [team-a/prepared]", deleted)
			}
			if _, err := db.GetTemplate(ctx, "team-a", "prepared"); wrenn.ErrorCode(err) != wrenn.ENotFound {
				t.Errorf("a template record is left: %v", err)
			}
			if got, err := db.GetSandbox(ctx, "team-a", sb.ID); err != nil || got.Status != wrenn.StatusError {
				t.Errorf("the consumed sandbox is %+v (%v), want error", got, err)
			}
		})
	}
}

// failingPut is a template store whose writes fail.
type failingPut struct {
	control.TemplateStore
	err error
}

func (f failingPut) PutTemplate(context.Context, *wrenn.Template) error { return f.err }

// Deleting a template removes its record first: files a failed delete
// leaves are the reconciler's to remove, and no record names files that
// are gone.
func TestDeleteSnapshotRecordFirst(t *testing.T) {
	ctx := context.Background()
	agent := &mock.Agent{
		CreateSandboxFn: func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) { return wrenn.SandboxNet{}, nil },
		CreateSnapshotFn: func(_ context.Context, _ string, tm *wrenn.Template) error {
			v, m := 1, 512
			tm.VCPUs, tm.MemoryMB = &v, &m
			return nil
		},
		DeleteSnapshotFn: func(context.Context, string, string) error { return errors.New("agent unreachable") },
	}
	svc, db := mustService(t, "sqlite", agent)
	sb, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateSnapshot(ctx, "team-a", control.SnapshotParams{SandboxID: sb.ID, Name: "snap"}); err != nil {
		t.Fatal(err)
	}
	if err := svc.DeleteSnapshot(ctx, "team-a", "snap"); err != nil {
		t.Fatalf("delete with the agent failing: %v", err)
	}
	if _, err := db.GetTemplate(ctx, "team-a", "snap"); wrenn.ErrorCode(err) != wrenn.ENotFound {
		t.Errorf("the record is left: %v", err)
	}
}

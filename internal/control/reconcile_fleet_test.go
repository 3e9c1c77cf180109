package control_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// TestReconcileOneHost: a fleet's reconciler of one host (HostID) leaves
// the sandboxes recorded on other hosts alone — those its host does not
// hold are not its to fail — and still fails its own host's missing ones
// and destroys its orphans.
func TestReconcileOneHost(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.MustOpen(t, engine)
			base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
			now := base
			mustTeamA(t, db, base)
			for id, host := range map[string]string{"sb-mine": "host-1", "sb-mine-gone": "host-1", "sb-theirs": "host-2"} {
				sb := &wrenn.Sandbox{ID: id, TeamID: "team-a", Template: "minimal", Status: wrenn.StatusRunning, VCPUs: 1, MemoryMB: 512,
					HostID: host, CreatedAt: base, LastActiveAt: &base, LastUpdated: base}
				if err := db.CreateSandbox(ctx, sb); err != nil {
					t.Fatal(err)
				}
			}
			host := &fakeHost{running: map[string]bool{"sb-mine": true, "sb-orphan": true}}
			r := control.NewReconciler(control.ReconcilerConfig{Store: db, Host: host.agent(), Now: func() time.Time { return now },
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), HostID: "host-1"})
			for range 2 {
				if err := r.Once(ctx); err != nil {
					t.Fatal(err)
				}
				now = now.Add(11 * time.Second)
			}
			for id, want := range map[string]wrenn.SandboxStatus{"sb-mine": wrenn.StatusRunning, "sb-mine-gone": wrenn.StatusError,
				"sb-theirs": wrenn.StatusRunning} {
				if sb, err := db.GetSandbox(ctx, "team-a", id); err != nil || sb.Status != want {
					t.Errorf("%s is %v (%v), want %s", id, sb.Status, err, want)
				}
			}
			if _, ok := host.running["sb-orphan"]; ok {
				t.Error("the host's orphan VM was not destroyed")
			}
		})
	}
}

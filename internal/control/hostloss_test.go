package control_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/mock"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// TestReconcileHostComeback (issue 13, host loss): while its host cannot
// be reached a reconciler changes nothing; once it can, each missing
// sandbox the host still runs is running again, each the host lost (or
// whose VM died) is error, and the VMs the control plane gave up on or
// destroyed meanwhile (error, stopped) are ended on the host; another
// host's missing sandbox is left alone. Two reconcilers of the host at
// once (two control planes) move each record once.
func TestReconcileHostComeback(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.MustOpen(t, engine)
			base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
			now := base
			mustTeamA(t, db, base)
			mk := func(id, host string, status wrenn.SandboxStatus) {
				sb := &wrenn.Sandbox{ID: id, TeamID: "team-a", Template: "minimal", Status: status, VCPUs: 1, MemoryMB: 512,
					TimeoutSec: 300, HostID: host, CreatedAt: base, LastActiveAt: &base, LastUpdated: base}
				if err := db.CreateSandbox(ctx, sb); err != nil {
					t.Fatal(err)
				}
			}
			mk("sb-back", "host-1", wrenn.StatusMissing)
			mk("sb-back-paused", "host-1", wrenn.StatusMissing)
			mk("sb-lost", "host-1", wrenn.StatusMissing)
			mk("sb-dead", "host-1", wrenn.StatusMissing)
			mk("sb-given-up", "host-1", wrenn.StatusError)
			mk("sb-destroyed", "host-1", wrenn.StatusStopped)
			mk("sb-paused", "host-1", wrenn.StatusPaused)
			mk("sb-theirs", "host-2", wrenn.StatusMissing)
			host := &fakeHost{
				running: map[string]bool{"sb-back": true, "sb-dead": false, "sb-given-up": true, "sb-destroyed": true},
				paused:  map[string]bool{"sb-back-paused": true, "sb-paused": true},
			}
			var mu sync.Mutex
			away := true
			a := host.agent()
			list := a.ListSandboxesFn
			a.ListSandboxesFn = func(ctx context.Context) ([]wrenn.SandboxState, error) {
				mu.Lock()
				defer mu.Unlock()
				if away {
					return nil, wrenn.Errorf(wrenn.EHostAgent, "the sandbox's host host-1 is unreachable")
				}
				return list(ctx)
			}
			var logs strings.Builder
			var logMu sync.Mutex
			newReconciler := func() *control.Reconciler {
				return control.NewReconciler(control.ReconcilerConfig{Store: db, Host: a, Now: func() time.Time { return now },
					Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil)), HostID: "host-1"})
			}
			rs := []*control.Reconciler{newReconciler(), newReconciler()}
			status := func() map[string]wrenn.SandboxStatus {
				out := map[string]wrenn.SandboxStatus{}
				for _, id := range []string{"sb-back", "sb-back-paused", "sb-lost", "sb-dead", "sb-given-up", "sb-destroyed", "sb-paused", "sb-theirs"} {
					sb, err := db.GetSandbox(ctx, "team-a", id)
					if err != nil {
						t.Fatal(err)
					}
					out[id] = sb.Status
				}
				return out
			}
			before := status()
			for _, r := range rs {
				if err := r.Once(ctx); err == nil {
					t.Fatal("a pass on a host that cannot be reached did not fail")
				}
			}
			if got := status(); !equalMaps(got, before) || len(host.destroyed) != 0 {
				t.Fatalf("a pass on an unreachable host changed %v to %v, destroyed %v", before, got, host.destroyed)
			}

			mu.Lock()
			away = false
			mu.Unlock()
			var wg sync.WaitGroup
			for _, r := range rs {
				wg.Go(func() {
					if err := r.Once(ctx); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			want := map[string]wrenn.SandboxStatus{"sb-back": wrenn.StatusRunning, "sb-back-paused": wrenn.StatusRunning,
				"sb-lost": wrenn.StatusError, "sb-dead": wrenn.StatusError, "sb-given-up": wrenn.StatusError,
				"sb-destroyed": wrenn.StatusStopped, "sb-paused": wrenn.StatusPaused, "sb-theirs": wrenn.StatusMissing}
			if got := status(); !equalMaps(got, want) {
				t.Fatalf("after the host came back: %v, want %v", got, want)
			}
			host.mu.Lock()
			for _, id := range []string{"sb-given-up", "sb-destroyed", "sb-dead"} {
				if _, held := host.running[id]; held || !slices.Contains(host.destroyed, id) {
					t.Errorf("%s was not ended on the host (destroyed %v)", id, host.destroyed)
				}
			}
			if !host.running["sb-back"] || !host.paused["sb-back-paused"] {
				t.Errorf("a sandbox found again was touched: running %v, paused %v", host.running, host.paused)
			}
			host.mu.Unlock()
			logMu.Lock()
			out := logs.String()
			logMu.Unlock()
			if strings.Count(out, "sandbox found again on its host") != 2 || strings.Count(out, "the host answers again") != 2 {
				t.Errorf("the comeback is not reported once per sandbox and per reconciler:\n%s", out)
			}

			// The one the host had paused while recorded running is resumed
			// by later passes, as any such sandbox is.
			for range 2 {
				now = now.Add(11 * time.Second)
				if err := rs[0].Once(ctx); err != nil {
					t.Fatal(err)
				}
			}
			host.mu.Lock()
			defer host.mu.Unlock()
			if !host.running["sb-back-paused"] {
				t.Errorf("the sandbox found paused was not resumed: running %v, paused %v", host.running, host.paused)
			}
		})
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func equalMaps[K, V comparable](a, b map[K]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestMissingSandboxOperations: a missing sandbox is listed and read as
// missing; every operation that needs its VM is a 502 (host_agent_error)
// saying its host is unreachable, a resume a conflict, and a destroy
// records it stopped without its host (reached if it answers, and
// otherwise left to end the VM when it returns). An error sandbox on a
// host that cannot be reached is destroyed the same way.
func TestMissingSandboxOperations(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			var mu sync.Mutex
			var calls []string
			f := &fakeFleet{order: []string{"host-2"}, agents: map[string]wrenn.Agent{"host-2": hostAgent(&calls, &mu, "host-2", false)}}
			svc, db := mustService(t, engine, &mock.Agent{}, func(c *control.Config) { c.Fleet = f })
			mk := func(status wrenn.SandboxStatus) string {
				sb, err := svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal"})
				if err != nil {
					t.Fatal(err)
				}
				if status != wrenn.StatusRunning {
					if _, err := db.TransitionSandbox(ctx, "team-a", sb.ID, []wrenn.SandboxStatus{wrenn.StatusRunning}, status, time.Now()); err != nil {
						t.Fatal(err)
					}
				}
				return sb.ID
			}
			missing, missingBack, failed := mk(wrenn.StatusMissing), mk(wrenn.StatusMissing), mk(wrenn.StatusError)
			delete(f.agents, "host-2") // lost
			calls = nil

			sb, err := svc.GetSandbox(ctx, "team-a", missing)
			if err != nil || sb.Status != wrenn.StatusMissing {
				t.Fatalf("get a missing sandbox: %+v, %v", sb, err)
			}
			for what, filter := range map[string]control.ListFilter{"default": {}, "status=missing": {Statuses: []wrenn.SandboxStatus{wrenn.StatusMissing}}} {
				sbs, err := svc.ListSandboxes(ctx, "team-a", filter)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.ContainsFunc(sbs, func(sb *wrenn.Sandbox) bool { return sb.ID == missing }) {
					t.Errorf("list (%s) leaves the missing sandbox out", what)
				}
			}
			wantMissing := func(what string, err error) {
				t.Helper()
				if wrenn.ErrorCode(err) != wrenn.EHostAgent ||
					wrenn.ErrorMessage(err) != "sandbox is missing: its host host-2 is unreachable (it runs again if the host comes back in time, and is given up as error if not)" {
					t.Errorf("%s of a missing sandbox: %v", what, err)
				}
			}
			_, err = svc.Exec(ctx, "team-a", missing, control.ExecParams{Cmd: "true"})
			wantMissing("exec", err)
			_, err = svc.StartExec(ctx, "team-a", missing, control.ExecParams{Cmd: "true"})
			wantMissing("exec stream", err)
			wantMissing("check running", svc.CheckRunning(ctx, "team-a", missing))
			_, err = svc.PauseSandbox(ctx, "team-a", missing)
			wantMissing("pause", err)
			_, err = svc.CreateSnapshot(ctx, "team-a", control.SnapshotParams{SandboxID: missing})
			wantMissing("snapshot", err)
			_, err = svc.SandboxMetrics(ctx, "team-a", missing, "")
			wantMissing("metrics", err)
			_, err = svc.ReadFile(ctx, "team-a", missing, "/etc/hostname")
			wantMissing("read a file", err)
			_, err = svc.ListProcesses(ctx, "team-a", missing)
			wantMissing("list processes", err)
			if _, err := svc.ResumeSandbox(ctx, "team-a", missing); wrenn.ErrorCode(err) != wrenn.EConflict ||
				wrenn.ErrorMessage(err) != "sandbox is missing, not paused" {
				t.Errorf("resume of a missing sandbox: %v", err)
			}
			if err := svc.PingSandbox(ctx, "team-a", missing); wrenn.ErrorCode(err) != wrenn.EConflict {
				t.Errorf("ping of a missing sandbox: %v", err)
			}

			// Destroys: recorded stopped with the host away.
			for _, id := range []string{missing, failed} {
				if err := svc.DestroySandbox(ctx, "team-a", id); err != nil {
					t.Fatalf("destroy %s with its host away: %v", id, err)
				}
				if sb, err := db.GetSandbox(ctx, "team-a", id); err != nil || sb.Status != wrenn.StatusStopped {
					t.Fatalf("destroyed %s is %+v, %v", id, sb, err)
				}
			}
			if len(calls) != 0 {
				t.Fatalf("the lost host's agent was called: %v", calls)
			}
			// With the host answering again, a destroy reaches it.
			f.agents["host-2"] = hostAgent(&calls, &mu, "host-2", false)
			if err := svc.DestroySandbox(ctx, "team-a", missingBack); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(calls, []string{"host-2 destroy"}) {
				t.Fatalf("agent calls %v, want the destroy", calls)
			}
			// Even if it fails there: the control plane counts it lost.
			again := mk(wrenn.StatusRunning)
			f.agents["host-2"] = &mock.Agent{DestroySandboxFn: func(context.Context, string) error { return errors.New("connection reset") }}
			if _, err := db.TransitionSandbox(ctx, "team-a", again, []wrenn.SandboxStatus{wrenn.StatusRunning}, wrenn.StatusMissing, time.Now()); err != nil {
				t.Fatal(err)
			}
			if err := svc.DestroySandbox(ctx, "team-a", again); err != nil {
				t.Fatalf("destroy of a missing sandbox its host fails: %v", err)
			}
		})
	}
}

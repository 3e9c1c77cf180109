package control_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/mock"
	"github.com/wrennhq/wrenn/internal/store"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// fakeHost is a host agent that holds a set of sandboxes in memory.
type fakeHost struct {
	mu        sync.Mutex
	running   map[string]bool
	paused    map[string]bool
	destroyed []string
	templates map[[2]string]bool // team, name: template files it holds
}

func (h *fakeHost) agent() *mock.Agent {
	return &mock.Agent{
		ListSandboxesFn: func(context.Context) ([]wrenn.SandboxState, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			var out []wrenn.SandboxState
			for id, r := range h.running {
				out = append(out, wrenn.SandboxState{ID: id, Running: r})
			}
			for id := range h.paused {
				out = append(out, wrenn.SandboxState{ID: id, Paused: true})
			}
			return out, nil
		},
		PauseSandboxFn: func(_ context.Context, id string) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			delete(h.running, id)
			h.paused[id] = true
			return nil
		},
		ResumeSandboxFn: func(_ context.Context, spec wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			if !h.paused[spec.ID] {
				return wrenn.SandboxNet{}, wrenn.Errorf(wrenn.EConflict, "sandbox is not paused")
			}
			delete(h.paused, spec.ID)
			h.running[spec.ID] = true
			return wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "10.201.0.9"}, nil
		},
		DestroySandboxFn: func(_ context.Context, id string) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			delete(h.running, id)
			h.destroyed = append(h.destroyed, id)
			return nil
		},
		ListSnapshotsFn: func(context.Context) ([]wrenn.Template, error) {
			h.mu.Lock()
			defer h.mu.Unlock()
			var out []wrenn.Template
			for k := range h.templates {
				out = append(out, wrenn.Template{TeamID: k[0], Name: k[1], Type: wrenn.TemplateSnapshot})
			}
			return out, nil
		},
		DeleteSnapshotFn: func(_ context.Context, team, name string) error {
			h.mu.Lock()
			defer h.mu.Unlock()
			delete(h.templates, [2]string{team, name})
			return nil
		},
	}
}

func TestReconcile(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.MustOpen(t, engine)
			base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
			now := base
			clock := func() time.Time { return now }
			host := &fakeHost{running: map[string]bool{}}
			mustTeamA(t, db, base)
			r := control.NewReconciler(control.ReconcilerConfig{
				Store: db, Host: host.agent(), Now: clock, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			mk := func(id string, status wrenn.SandboxStatus, timeout int, lastActive time.Time) {
				t.Helper()
				sb := &wrenn.Sandbox{ID: id, TeamID: "team-a", Template: "minimal", Status: status, VCPUs: 1, MemoryMB: 512,
					TimeoutSec: timeout, CreatedAt: base, LastActiveAt: &lastActive, LastUpdated: base}
				if err := db.CreateSandbox(ctx, sb); err != nil {
					t.Fatal(err)
				}
			}
			mk("sb-healthy", wrenn.StatusRunning, 300, base)
			mk("sb-crashed", wrenn.StatusRunning, 300, base)
			mk("sb-vanished", wrenn.StatusRunning, 300, base)
			mk("sb-idle", wrenn.StatusRunning, 60, base)
			mk("sb-forever", wrenn.StatusRunning, 0, base)
			mk("sb-paused", wrenn.StatusPaused, 60, base)
			mk("sb-creating", wrenn.StatusPending, 60, base)
			mk("sb-pause-missed", wrenn.StatusRunning, 300, base)
			mk("sb-resume-missed", wrenn.StatusPaused, 300, base)
			mk("sb-paused-lost", wrenn.StatusPaused, 300, base)
			host.running = map[string]bool{"sb-healthy": true, "sb-crashed": false, "sb-idle": true, "sb-forever": true, "sb-orphan": true,
				"sb-resume-missed": true}
			host.paused = map[string]bool{"sb-paused": true, "sb-pause-missed": true}

			now = base.Add(61 * time.Second)
			if err := r.Once(ctx); err != nil {
				t.Fatal(err)
			}
			// A disagreement may be an operation in flight: the first pass
			// leaves it alone.
			for id, st := range map[string]wrenn.SandboxStatus{"sb-vanished": wrenn.StatusRunning,
				"sb-pause-missed": wrenn.StatusRunning, "sb-resume-missed": wrenn.StatusPaused, "sb-paused-lost": wrenn.StatusPaused} {
				if sb, err := db.GetSandbox(ctx, "team-a", id); err != nil || sb.Status != st {
					t.Errorf("after one pass %s is %v (%v), want %s", id, sb.Status, err, st)
				}
			}
			now = now.Add(11 * time.Second)
			if err := r.Once(ctx); err != nil {
				t.Fatal(err)
			}
			want := map[string]wrenn.SandboxStatus{
				"sb-healthy":  wrenn.StatusRunning,
				"sb-crashed":  wrenn.StatusError,
				"sb-vanished": wrenn.StatusError,
				"sb-idle":     wrenn.StatusStopped,
				"sb-forever":  wrenn.StatusRunning,
				"sb-paused":   wrenn.StatusPaused,  // no timeout destroys a paused sandbox
				"sb-creating": wrenn.StatusPending, // still within its grace
				// A crash between the host's pause or resume and the record:
				// the record stands, and the host is brought back to it.
				"sb-pause-missed":  wrenn.StatusRunning,
				"sb-resume-missed": wrenn.StatusPaused,
				"sb-paused-lost":   wrenn.StatusError,
			}
			for id, st := range want {
				sb, err := db.GetSandbox(ctx, "team-a", id)
				if err != nil {
					t.Fatal(err)
				}
				if sb.Status != st {
					t.Errorf("%s is %s, want %s", id, sb.Status, st)
				}
			}
			for _, id := range []string{"sb-crashed", "sb-idle", "sb-orphan"} {
				if _, ok := host.running[id]; ok {
					t.Errorf("%s still held by the host", id)
				}
			}
			if host.running["sb-resume-missed"] || !host.paused["sb-resume-missed"] {
				t.Error("a sandbox recorded paused still runs on the host")
			}
			if !host.running["sb-pause-missed"] || host.paused["sb-pause-missed"] {
				t.Error("a sandbox recorded running is still paused on the host")
			}
			if sb, _ := db.GetSandbox(ctx, "team-a", "sb-pause-missed"); sb.HostIP != "10.201.0.9" {
				t.Errorf("the resumed sandbox is recorded at %q, not where it runs now", sb.HostIP)
			}
			if _, ok := host.running["sb-healthy"]; !ok {
				t.Error("a healthy sandbox was destroyed")
			}

			now = base.Add(11 * time.Minute)
			if err := r.Once(ctx); err != nil {
				t.Fatal(err)
			}
			if sb, _ := db.GetSandbox(ctx, "team-a", "sb-creating"); sb.Status != wrenn.StatusError {
				t.Errorf("a creation that never finished is %s, want error", sb.Status)
			}
		})
	}
}

// afterFirst wraps a reconciler's store and host so that between runs once,
// right after whichever of the two reads of a pass comes first: the other
// read then sees the world as it is after between.
type afterFirst struct {
	once    sync.Once
	between func()
}

type hookedStore struct {
	control.ReconcileStore
	hook *afterFirst
}

func (s hookedStore) SandboxesByStatus(ctx context.Context, statuses ...wrenn.SandboxStatus) ([]*wrenn.Sandbox, error) {
	sbs, err := s.ReconcileStore.SandboxesByStatus(ctx, statuses...)
	s.hook.once.Do(s.hook.between)
	return sbs, err
}

func (h *afterFirst) host(a *mock.Agent) *mock.Agent {
	list := a.ListSandboxesFn
	a.ListSandboxesFn = func(ctx context.Context) ([]wrenn.SandboxState, error) {
		states, err := list(ctx)
		h.once.Do(h.between)
		return states, err
	}
	return a
}

// TestReconcileCreateBetweenReads: a create that lands between the
// reconciler's two reads (its record written pending, then the agent
// starting its VM) must not be taken for an orphan and destroyed, while a
// VM nobody has a record of still is.
func TestReconcileCreateBetweenReads(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.MustOpen(t, engine)
			now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
			if err := db.CreateAccount(ctx, &wrenn.User{ID: "usr-a", Email: "a@example.com", PasswordHash: "x", CreatedAt: now},
				&wrenn.Team{ID: "team-a", Name: "a", CreatedAt: now}); err != nil {
				t.Fatal(err)
			}
			host := &fakeHost{running: map[string]bool{"sb-orphan": true}, paused: map[string]bool{}}
			sb := &wrenn.Sandbox{ID: "sb-new", TeamID: "team-a", Template: "minimal", Status: wrenn.StatusPending,
				VCPUs: 1, MemoryMB: 512, TimeoutSec: 300, CreatedAt: now, LastUpdated: now}
			// What CreateSandbox does before it answers: record pending,
			// then the agent starts the VM.
			hook := &afterFirst{between: func() {
				if err := db.CreateSandbox(ctx, sb); err != nil {
					t.Error(err)
				}
				host.mu.Lock()
				host.running[sb.ID] = true
				host.mu.Unlock()
			}}
			r := control.NewReconciler(control.ReconcilerConfig{
				Store: hookedStore{db, hook}, Host: hook.host(host.agent()), Now: func() time.Time { return now },
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err := r.Once(ctx); err != nil {
				t.Fatal(err)
			}
			// The create finishes: the record says running.
			started := now
			sb.Status, sb.StartedAt, sb.LastActiveAt = wrenn.StatusRunning, &started, &started
			if err := db.UpdateSandbox(ctx, sb); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				now = now.Add(11 * time.Second)
				if err := r.Once(ctx); err != nil {
					t.Fatal(err)
				}
			}
			host.mu.Lock()
			defer host.mu.Unlock()
			if !host.running[sb.ID] {
				t.Errorf("the sandbox created between the reads was destroyed (destroyed: %v)", host.destroyed)
			}
			if _, ok := host.running["sb-orphan"]; ok {
				t.Error("a vm without a record was left running")
			}
			if got, err := db.GetSandbox(ctx, "team-a", sb.ID); err != nil || got.Status != wrenn.StatusRunning {
				t.Errorf("the new sandbox's record is %+v (%v), want running", got, err)
			}
		})
	}
}

// TestReconcileHugeTimeout: a record whose timeout is past what a
// time.Duration holds (written before create checked the range) is never
// idle, rather than idle at once because the conversion wrapped.
func TestReconcileHugeTimeout(t *testing.T) {
	ctx := context.Background()
	db := storetest.MustOpen(t, storetest.Engines(t)[0])
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	if err := db.CreateAccount(ctx, &wrenn.User{ID: "usr-a", Email: "a@example.com", PasswordHash: "x", CreatedAt: now},
		&wrenn.Team{ID: "team-a", Name: "a", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	host := &fakeHost{running: map[string]bool{}, paused: map[string]bool{}}
	for _, timeout := range []int{10000000000, 18446744074, 4611686018427387904, 9223372036854775807} {
		id := fmt.Sprintf("sb-%d", timeout)
		if err := db.CreateSandbox(ctx, &wrenn.Sandbox{ID: id, TeamID: "team-a", Template: "minimal", Status: wrenn.StatusRunning,
			VCPUs: 1, MemoryMB: 512, TimeoutSec: timeout, CreatedAt: now, LastActiveAt: &now, LastUpdated: now}); err != nil {
			t.Fatal(err)
		}
		host.running[id] = true
	}
	r := control.NewReconciler(control.ReconcilerConfig{
		Store: db, Host: host.agent(), Now: func() time.Time { return now.Add(time.Hour) },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err := r.Once(ctx); err != nil {
		t.Fatal(err)
	}
	if len(host.destroyed) != 0 {
		t.Errorf("sandboxes with huge timeouts destroyed after an hour: %v", host.destroyed)
	}
}

// TestReconcileActiveAfterRead: activity recorded after a pass read the
// records (say by another control plane's running command) keeps an idle
// sandbox from being stopped by that pass.
func TestReconcileActiveAfterRead(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.MustOpen(t, engine)
			base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
			now := base.Add(time.Minute)
			mustTeamA(t, db, base)
			if err := db.CreateSandbox(ctx, &wrenn.Sandbox{ID: "sb-busy", TeamID: "team-a", Template: "minimal", Status: wrenn.StatusRunning,
				VCPUs: 1, MemoryMB: 512, TimeoutSec: 15, CreatedAt: base, LastActiveAt: &base, LastUpdated: base}); err != nil {
				t.Fatal(err)
			}
			host := &fakeHost{running: map[string]bool{"sb-busy": true}, paused: map[string]bool{}}
			st := &touchingStore{ReconcileStore: db, touch: func() {
				if err := db.TouchSandbox(ctx, "team-a", "sb-busy", now); err != nil {
					t.Error(err)
				}
			}}
			r := control.NewReconciler(control.ReconcilerConfig{
				Store: st, Host: host.agent(), Now: func() time.Time { return now },
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			})
			if err := r.Once(ctx); err != nil {
				t.Fatal(err)
			}
			if len(host.destroyed) != 0 {
				t.Errorf("a sandbox active since the records were read was destroyed: %v", host.destroyed)
			}
			if sb, err := db.GetSandbox(ctx, "team-a", "sb-busy"); err != nil || sb.Status != wrenn.StatusRunning {
				t.Errorf("the sandbox is %+v (%v), want running", sb, err)
			}
		})
	}
}

// touchingStore runs touch right after the records are read.
type touchingStore struct {
	control.ReconcileStore
	touch func()
}

func (s *touchingStore) SandboxesByStatus(ctx context.Context, statuses ...wrenn.SandboxStatus) ([]*wrenn.Sandbox, error) {
	sbs, err := s.ReconcileStore.SandboxesByStatus(ctx, statuses...)
	s.touch()
	return sbs, err
}

// Template files no record names are removed once that has lasted the
// settle grace: a snapshot in flight has its files before its record.
func TestReconcileSweepsTemplates(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.MustOpen(t, engine)
			base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
			now := base
			mustTeamA(t, db, base)
			if err := db.PutTemplate(ctx, &wrenn.Template{Name: "kept", TeamID: "team-a", Type: wrenn.TemplateSnapshot, CreatedAt: base}); err != nil {
				t.Fatal(err)
			}
			host := &fakeHost{running: map[string]bool{}, paused: map[string]bool{},
				templates: map[[2]string]bool{{"team-a", "kept"}: true, {"team-a", "orphan"}: true, {"team-a", "in-flight"}: true}}
			r := control.NewReconciler(control.ReconcilerConfig{Store: db, Host: host.agent(), Now: func() time.Time { return now },
				Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err := r.Once(ctx); err != nil {
				t.Fatal(err)
			}
			if len(host.templates) != 3 {
				t.Fatalf("the first pass removed template files: %v", host.templates)
			}
			// The snapshot in flight gets its record; the orphan never does.
			if err := db.PutTemplate(ctx, &wrenn.Template{Name: "in-flight", TeamID: "team-a", Type: wrenn.TemplateSnapshot, CreatedAt: base}); err != nil {
				t.Fatal(err)
			}
			now = now.Add(11 * time.Second)
			if err := r.Once(ctx); err != nil {
				t.Fatal(err)
			}
			want := map[[2]string]bool{{"team-a", "kept"}: true, {"team-a", "in-flight"}: true}
			if fmt.Sprint(host.templates) != fmt.Sprint(want) {
				t.Errorf("template files left: %v, want %v", host.templates, want)
			}
		})
	}
}

// TestReconcileAutoPauseAndRetention: an idle sandbox whose timeout pauses
// it is paused, not destroyed, and reads paused by its timeout; a stopped
// record is deleted once past its retention.
func TestReconcileAutoPauseAndRetention(t *testing.T) {
	for _, engine := range storetest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.MustOpen(t, engine)
			base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
			now := base
			clock := func() time.Time { return now }
			host := &fakeHost{running: map[string]bool{"sb-idle": true, "sb-kill": true}, paused: map[string]bool{}}
			mustTeamA(t, db, base)
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			svc := control.NewService(control.Config{Sandboxes: db, Templates: db, Quotas: db, Agent: host.agent(), Now: clock, Logger: log})
			r := control.NewReconciler(control.ReconcilerConfig{Store: db, Host: host.agent(), Now: clock, Logger: log,
				AutoPause: svc.AutoPause, StoppedRetention: time.Hour})
			for id, autoPause := range map[string]bool{"sb-idle": true, "sb-kill": false} {
				sb := &wrenn.Sandbox{ID: id, TeamID: "team-a", Template: "minimal", Status: wrenn.StatusRunning, VCPUs: 1, MemoryMB: 512,
					TimeoutSec: 60, AutoPause: autoPause, CreatedAt: base, LastActiveAt: &base, LastUpdated: base}
				if err := db.CreateSandbox(ctx, sb); err != nil {
					t.Fatal(err)
				}
			}
			now = base.Add(61 * time.Second)
			if err := r.Once(ctx); err != nil {
				t.Fatal(err)
			}
			idle, _ := db.GetSandbox(ctx, "team-a", "sb-idle")
			if idle.Status != wrenn.StatusPaused || !idle.AutoPaused || !host.paused["sb-idle"] {
				t.Errorf("idle auto-pause sandbox: %s, auto-paused %v, paused on host %v", idle.Status, idle.AutoPaused, host.paused["sb-idle"])
			}
			kill, _ := db.GetSandbox(ctx, "team-a", "sb-kill")
			if kill.Status != wrenn.StatusStopped {
				t.Errorf("idle sandbox without auto-pause: %s, want stopped", kill.Status)
			}
			// The next operation resumes the paused one.
			if err := svc.PingSandbox(ctx, "team-a", "sb-idle"); wrenn.ErrorCode(err) != wrenn.EConflict {
				t.Errorf("ping of an auto-paused sandbox: %v, want a conflict (ping does not resume)", err)
			}
			now = now.Add(59 * time.Minute)
			if err := r.Once(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := db.GetSandbox(ctx, "team-a", "sb-kill"); err != nil {
				t.Errorf("stopped record gone before its retention: %v", err)
			}
			now = now.Add(2 * time.Minute)
			if err := r.Once(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := db.GetSandbox(ctx, "team-a", "sb-kill"); wrenn.ErrorCode(err) != wrenn.ENotFound {
				t.Errorf("stopped record past its retention: %v, want not found", err)
			}
		})
	}
}

// mustTeamA makes the account usr-a, with its team team-a, at base.
func mustTeamA(t *testing.T, db *store.DB, base time.Time) {
	t.Helper()
	if err := db.CreateAccount(context.Background(), &wrenn.User{ID: "usr-a", Email: "a@example.com", PasswordHash: "x", CreatedAt: base},
		&wrenn.Team{ID: "team-a", Name: "a", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
}

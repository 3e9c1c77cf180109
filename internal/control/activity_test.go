package control_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/clocktest"
	"github.com/wrennhq/wrenn/internal/control"
	"github.com/wrennhq/wrenn/internal/mock"
	"github.com/wrennhq/wrenn/internal/store"
	"github.com/wrennhq/wrenn/internal/store/storetest"
)

// blockedStream is a streamed command that runs until released.
type blockedStream struct{ release <-chan struct{} }

func (b blockedStream) Recv() (wrenn.ExecEvent, error) {
	<-b.release
	return wrenn.ExecEvent{}, io.EOF
}
func (blockedStream) Stop() error  { return nil }
func (blockedStream) Close() error { return nil }

// blockedReader is a transfer that lasts until released.
type blockedReader struct{ release <-chan struct{} }

func (b blockedReader) Read([]byte) (int, error) {
	<-b.release
	return 0, io.EOF
}

// activityFixture is a control plane with a fake agent whose operations
// all run until released, a real store, a reconciler and one fake clock.
type activityFixture struct {
	svc     *control.Service
	rec     *control.Reconciler
	db      *store.DB
	clock   *clocktest.Clock
	release chan struct{}

	mu        sync.Mutex
	destroyed []string
}

func newActivityFixture(t *testing.T, engine string) *activityFixture {
	t.Helper()
	ctx := context.Background()
	base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	f := &activityFixture{db: storetest.MustOpen(t, engine), clock: clocktest.New(base), release: make(chan struct{})}
	mustTeamA(t, f.db, base)
	if err := f.db.PutTemplate(ctx, &wrenn.Template{Name: "minimal", Type: wrenn.TemplateBase, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	agent := &mock.Agent{
		CreateSandboxFn: func(context.Context, wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
			return wrenn.SandboxNet{GuestIP: "169.254.0.21", HostIP: "10.0.0.1"}, nil
		},
		DestroySandboxFn: func(_ context.Context, id string) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.destroyed = append(f.destroyed, id)
			return nil
		},
		ListSandboxesFn: func(context.Context) ([]wrenn.SandboxState, error) {
			sbs, err := f.db.SandboxesByStatus(ctx, wrenn.StatusRunning)
			var out []wrenn.SandboxState
			for _, sb := range sbs {
				out = append(out, wrenn.SandboxState{ID: sb.ID, Running: true})
			}
			return out, err
		},
		ExecFn: func(context.Context, string, wrenn.ExecRequest) (*wrenn.ExecResult, error) {
			<-f.release
			return &wrenn.ExecResult{}, nil
		},
		StartExecFn: func(context.Context, string, wrenn.ExecRequest) (wrenn.ExecStream, error) {
			return blockedStream{f.release}, nil
		},
		WriteFileFn: func(_ context.Context, _, _ string, r io.Reader) error {
			_, err := io.Copy(io.Discard, r)
			return err
		},
		ReadFileFn: func(context.Context, string, string) (io.ReadCloser, error) {
			return io.NopCloser(blockedReader{f.release}), nil
		},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	f.svc = control.NewService(control.Config{Sandboxes: f.db, Templates: f.db, Quotas: f.db, Agent: agent,
		Now: f.clock.Now, After: f.clock.After, Logger: log})
	f.rec = control.NewReconciler(control.ReconcilerConfig{Store: f.db, Host: agent, Now: f.clock.Now, Logger: log})
	return f
}

// TestActivityWhileRunning: a sandbox with a 15 s timeout stays up while a
// command (blocking or streamed) or a file transfer runs for 40 s, and
// times out 15 s after it ends.
func TestActivityWhileRunning(t *testing.T) {
	const timeout = 15
	ops := []struct {
		name string
		// start begins the operation and returns what ends it, once the
		// fixture releases it.
		start func(t *testing.T, f *activityFixture, id string) (end func())
	}{
		{"exec", func(t *testing.T, f *activityFixture, id string) func() {
			errc := make(chan error, 1)
			go func() {
				_, err := f.svc.Exec(context.Background(), "team-a", id, control.ExecParams{Cmd: "sleep 40"})
				errc <- err
			}()
			return func() {
				if err := <-errc; err != nil {
					t.Errorf("exec: %v", err)
				}
			}
		}},
		{"stream", func(t *testing.T, f *activityFixture, id string) func() {
			st, err := f.svc.StartExec(context.Background(), "team-a", id, control.ExecParams{Cmd: "sleep 40"})
			if err != nil {
				t.Fatal(err)
			}
			return func() {
				if _, err := st.Recv(); err != io.EOF {
					t.Errorf("stream: %v", err)
				}
				st.Close()
			}
		}},
		{"upload", func(t *testing.T, f *activityFixture, id string) func() {
			errc := make(chan error, 1)
			go func() {
				errc <- f.svc.WriteFile(context.Background(), "team-a", id, "/root/f", blockedReader{f.release})
			}()
			return func() {
				if err := <-errc; err != nil {
					t.Errorf("upload: %v", err)
				}
			}
		}},
		{"download", func(t *testing.T, f *activityFixture, id string) func() {
			rc, err := f.svc.ReadFile(context.Background(), "team-a", id, "/root/f")
			if err != nil {
				t.Fatal(err)
			}
			return func() {
				if _, err := io.Copy(io.Discard, rc); err != nil {
					t.Errorf("download: %v", err)
				}
				rc.Close()
			}
		}},
	}
	for _, engine := range storetest.Engines(t) {
		for _, op := range ops {
			t.Run(engine+"/"+op.name, func(t *testing.T) {
				ctx := context.Background()
				f := newActivityFixture(t, engine)
				sb, err := f.svc.CreateSandbox(ctx, "team-a", control.CreateParams{Template: "minimal", TimeoutSec: timeout})
				if err != nil {
					t.Fatal(err)
				}
				end := op.start(t, f, sb.ID)
				// 40 s pass while it runs, the reconciler looking every 5 s.
				for range 8 {
					f.clock.AdvanceWaited(t, 5*time.Second, 2*time.Second)
					if err := f.rec.Once(ctx); err != nil {
						t.Fatal(err)
					}
				}
				f.mu.Lock()
				destroyed := strings.Join(f.destroyed, " ")
				f.mu.Unlock()
				if destroyed != "" {
					t.Fatalf("%s: the sandbox was destroyed for inactivity while it ran: %s", op.name, destroyed)
				}
				f.clock.Advance(2 * time.Second)
				endedAt := f.clock.Now()
				close(f.release)
				end()
				got, err := f.db.GetSandbox(ctx, "team-a", sb.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.Status != wrenn.StatusRunning || got.LastActiveAt == nil || !got.LastActiveAt.Equal(endedAt) {
					t.Fatalf("after the %s ended: %s, last active %v, want running, %v", op.name, got.Status, got.LastActiveAt, endedAt)
				}
				// The end of the operation is the last activity: the timeout
				// counts from there, and nothing keeps the sandbox up after.
				f.clock.Advance(timeout*time.Second - time.Second)
				if err := f.rec.Once(ctx); err != nil {
					t.Fatal(err)
				}
				if got, _ := f.db.GetSandbox(ctx, "team-a", sb.ID); got.Status != wrenn.StatusRunning {
					t.Fatalf("%d s after the %s ended the sandbox is %s, want running", timeout-1, op.name, got.Status)
				}
				f.clock.Advance(time.Second)
				if err := f.rec.Once(ctx); err != nil {
					t.Fatal(err)
				}
				if got, _ := f.db.GetSandbox(ctx, "team-a", sb.ID); got.Status != wrenn.StatusStopped {
					t.Errorf("%d s after the %s ended the sandbox is %s, want stopped", timeout, op.name, got.Status)
				}
			})
		}
	}
}

// Package mock holds fakes for unit tests of the logic around Wrenn's parts:
// structs of function fields, one per interface method. A nil field fails
// loudly when called. End-to-end tests never use them.
package mock

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
)

var (
	_ wrenn.Agent        = (*Agent)(nil)
	_ wrenn.Snapshotter  = (*Agent)(nil)
	_ wrenn.FileSystem   = (*Agent)(nil)
	_ control.HostLister = (*Agent)(nil)
	_ wrenn.Metrics      = (*Agent)(nil)
)

// Agent is a fake host agent.
type Agent struct {
	CreateSandboxFn  func(ctx context.Context, spec wrenn.SandboxSpec) (wrenn.SandboxNet, error)
	DestroySandboxFn func(ctx context.Context, id string) error
	ExecFn           func(ctx context.Context, id string, req wrenn.ExecRequest) (*wrenn.ExecResult, error)
	StartExecFn      func(ctx context.Context, id string, req wrenn.ExecRequest) (wrenn.ExecStream, error)
	WriteFileFn      func(ctx context.Context, id, path string, r io.Reader) error
	ReadFileFn       func(ctx context.Context, id, path string) (io.ReadCloser, error)
	PauseSandboxFn   func(ctx context.Context, id string) error
	ResumeSandboxFn  func(ctx context.Context, spec wrenn.SandboxSpec) (wrenn.SandboxNet, error)
	CreateSnapshotFn func(ctx context.Context, sandboxID string, t *wrenn.Template) error
	DeleteSnapshotFn func(ctx context.Context, teamID, name string) error
	ListSnapshotsFn  func(ctx context.Context) ([]wrenn.Template, error)
	ListSandboxesFn  func(ctx context.Context) ([]wrenn.SandboxState, error)
	ListDirFn        func(ctx context.Context, id, path string, depth int) ([]wrenn.FileEntry, error)
	MakeDirFn        func(ctx context.Context, id, path string, parents bool) (wrenn.FileEntry, error)
	RemoveFn         func(ctx context.Context, id, path string) error
	StatFn           func(ctx context.Context, id, path string) (wrenn.FileEntry, error)
	MoveFn           func(ctx context.Context, id, src, dst string) (wrenn.FileEntry, error)
	// Metrics (issue 11).
	SandboxMetricsFn func(ctx context.Context, id string, window time.Duration) ([]wrenn.MetricPoint, error)
	// Background processes (process.go).
	StartProcessFn   func(ctx context.Context, id string, req wrenn.ProcessRequest) (wrenn.Process, error)
	ListProcessesFn  func(ctx context.Context, id string) ([]wrenn.Process, error)
	KillProcessFn    func(ctx context.Context, id string, sel wrenn.ProcessSelector, sig wrenn.Signal) error
	ConnectProcessFn func(ctx context.Context, id string, sel wrenn.ProcessSelector) (wrenn.ProcessStream, error)
}

func (a *Agent) ListSandboxes(ctx context.Context) ([]wrenn.SandboxState, error) {
	if a.ListSandboxesFn == nil {
		return nil, unset("ListSandboxesFn")
	}
	return a.ListSandboxesFn(ctx)
}

func unset(name string) error { return fmt.Errorf("mock.Agent.%s not set", name) }

func (a *Agent) CreateSandbox(ctx context.Context, spec wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
	if a.CreateSandboxFn == nil {
		return wrenn.SandboxNet{}, unset("CreateSandboxFn")
	}
	return a.CreateSandboxFn(ctx, spec)
}

func (a *Agent) DestroySandbox(ctx context.Context, id string) error {
	if a.DestroySandboxFn == nil {
		return unset("DestroySandboxFn")
	}
	return a.DestroySandboxFn(ctx, id)
}

func (a *Agent) Exec(ctx context.Context, id string, req wrenn.ExecRequest) (*wrenn.ExecResult, error) {
	if a.ExecFn == nil {
		return nil, unset("ExecFn")
	}
	return a.ExecFn(ctx, id, req)
}

func (a *Agent) StartExec(ctx context.Context, id string, req wrenn.ExecRequest) (wrenn.ExecStream, error) {
	if a.StartExecFn == nil {
		return nil, unset("StartExecFn")
	}
	return a.StartExecFn(ctx, id, req)
}

func (a *Agent) WriteFile(ctx context.Context, id, path string, r io.Reader) error {
	if a.WriteFileFn == nil {
		return unset("WriteFileFn")
	}
	return a.WriteFileFn(ctx, id, path, r)
}

func (a *Agent) ReadFile(ctx context.Context, id, path string) (io.ReadCloser, error) {
	if a.ReadFileFn == nil {
		return nil, unset("ReadFileFn")
	}
	return a.ReadFileFn(ctx, id, path)
}

func (a *Agent) PauseSandbox(ctx context.Context, id string) error {
	if a.PauseSandboxFn == nil {
		return unset("PauseSandboxFn")
	}
	return a.PauseSandboxFn(ctx, id)
}

func (a *Agent) ResumeSandbox(ctx context.Context, spec wrenn.SandboxSpec) (wrenn.SandboxNet, error) {
	if a.ResumeSandboxFn == nil {
		return wrenn.SandboxNet{}, unset("ResumeSandboxFn")
	}
	return a.ResumeSandboxFn(ctx, spec)
}

func (a *Agent) CreateSnapshot(ctx context.Context, sandboxID string, t *wrenn.Template) error {
	if a.CreateSnapshotFn == nil {
		return unset("CreateSnapshotFn")
	}
	return a.CreateSnapshotFn(ctx, sandboxID, t)
}

func (a *Agent) ListSnapshots(ctx context.Context) ([]wrenn.Template, error) {
	if a.ListSnapshotsFn == nil {
		return nil, unset("ListSnapshotsFn")
	}
	return a.ListSnapshotsFn(ctx)
}

func (a *Agent) DeleteSnapshot(ctx context.Context, teamID, name string) error {
	if a.DeleteSnapshotFn == nil {
		return unset("DeleteSnapshotFn")
	}
	return a.DeleteSnapshotFn(ctx, teamID, name)
}

func (a *Agent) ListDir(ctx context.Context, id, path string, depth int) ([]wrenn.FileEntry, error) {
	if a.ListDirFn == nil {
		return nil, unset("ListDirFn")
	}
	return a.ListDirFn(ctx, id, path, depth)
}

func (a *Agent) MakeDir(ctx context.Context, id, path string, parents bool) (wrenn.FileEntry, error) {
	if a.MakeDirFn == nil {
		return wrenn.FileEntry{}, unset("MakeDirFn")
	}
	return a.MakeDirFn(ctx, id, path, parents)
}

func (a *Agent) Remove(ctx context.Context, id, path string) error {
	if a.RemoveFn == nil {
		return unset("RemoveFn")
	}
	return a.RemoveFn(ctx, id, path)
}

func (a *Agent) Stat(ctx context.Context, id, path string) (wrenn.FileEntry, error) {
	if a.StatFn == nil {
		return wrenn.FileEntry{}, unset("StatFn")
	}
	return a.StatFn(ctx, id, path)
}

func (a *Agent) Move(ctx context.Context, id, src, dst string) (wrenn.FileEntry, error) {
	if a.MoveFn == nil {
		return wrenn.FileEntry{}, unset("MoveFn")
	}
	return a.MoveFn(ctx, id, src, dst)
}

// Metrics (issue 11).

func (a *Agent) SandboxMetrics(ctx context.Context, id string, window time.Duration) ([]wrenn.MetricPoint, error) {
	if a.SandboxMetricsFn == nil {
		return nil, unset("SandboxMetricsFn")
	}
	return a.SandboxMetricsFn(ctx, id, window)
}

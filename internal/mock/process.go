package mock

import (
	"context"

	"github.com/wrennhq/wrenn"
)

var _ wrenn.Processes = (*Agent)(nil)

func (a *Agent) StartProcess(ctx context.Context, id string, req wrenn.ProcessRequest) (wrenn.Process, error) {
	if a.StartProcessFn == nil {
		return wrenn.Process{}, unset("StartProcessFn")
	}
	return a.StartProcessFn(ctx, id, req)
}

func (a *Agent) ListProcesses(ctx context.Context, id string) ([]wrenn.Process, error) {
	if a.ListProcessesFn == nil {
		return nil, unset("ListProcessesFn")
	}
	return a.ListProcessesFn(ctx, id)
}

func (a *Agent) KillProcess(ctx context.Context, id string, sel wrenn.ProcessSelector, sig wrenn.Signal) error {
	if a.KillProcessFn == nil {
		return unset("KillProcessFn")
	}
	return a.KillProcessFn(ctx, id, sel, sig)
}

func (a *Agent) ConnectProcess(ctx context.Context, id string, sel wrenn.ProcessSelector) (wrenn.ProcessStream, error) {
	if a.ConnectProcessFn == nil {
		return nil, unset("ConnectProcessFn")
	}
	return a.ConnectProcessFn(ctx, id, sel)
}

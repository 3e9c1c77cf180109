package agent

import (
	"context"

	"github.com/wrennhq/wrenn"
)

// Background processes belong to the guest's envd, which keeps them
// across this agent's restarts and across a pause and resume (the VM's
// memory holds them): the agent only passes requests on.

var _ wrenn.Processes = (*Manager)(nil)

// StartProcess starts a background process in a running sandbox.
func (m *Manager) StartProcess(ctx context.Context, id string, req wrenn.ProcessRequest) (wrenn.Process, error) {
	sb, c, err := m.client(id)
	if err != nil {
		return wrenn.Process{}, err
	}
	p, err := c.Spawn(ctx, req)
	return p, explain(sb, err)
}

// ListProcesses lists a running sandbox's background processes.
func (m *Manager) ListProcesses(ctx context.Context, id string) ([]wrenn.Process, error) {
	sb, c, err := m.client(id)
	if err != nil {
		return nil, err
	}
	ps, err := c.Processes(ctx)
	return ps, explain(sb, err)
}

// KillProcess ends a background process's group in a running sandbox.
func (m *Manager) KillProcess(ctx context.Context, id string, sel wrenn.ProcessSelector, sig wrenn.Signal) error {
	sb, c, err := m.client(id)
	if err != nil {
		return err
	}
	return explain(sb, c.Kill(ctx, sel, sig))
}

// ConnectProcess streams a background process's output.
func (m *Manager) ConnectProcess(ctx context.Context, id string, sel wrenn.ProcessSelector) (wrenn.ProcessStream, error) {
	sb, c, err := m.client(id)
	if err != nil {
		return nil, err
	}
	st, err := c.Attach(ctx, sel)
	if err != nil {
		return nil, explain(sb, err)
	}
	return st, nil
}

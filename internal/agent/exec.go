package agent

import (
	"context"
	"io"

	"github.com/wrennhq/wrenn"
)

// Exec runs a command to completion in a running sandbox.
func (m *Manager) Exec(ctx context.Context, id string, req wrenn.ExecRequest) (*wrenn.ExecResult, error) {
	c, err := m.client(id)
	if err != nil {
		return nil, err
	}
	res, err := c.Exec(ctx, req)
	return res, m.explain(id, err)
}

// StartExec starts a streamed command in a running sandbox.
func (m *Manager) StartExec(ctx context.Context, id string, req wrenn.ExecRequest) (wrenn.ExecStream, error) {
	c, err := m.client(id)
	if err != nil {
		return nil, err
	}
	st, err := c.StartExec(ctx, req)
	if err != nil {
		return nil, m.explain(id, err)
	}
	return st, nil
}

// WriteFile streams r into a file of a running sandbox.
func (m *Manager) WriteFile(ctx context.Context, id, path string, r io.Reader) error {
	c, err := m.client(id)
	if err != nil {
		return err
	}
	return m.explain(id, c.WriteFile(ctx, path, r))
}

// ReadFile streams a file out of a running sandbox.
func (m *Manager) ReadFile(ctx context.Context, id, path string) (io.ReadCloser, error) {
	c, err := m.client(id)
	if err != nil {
		return nil, err
	}
	rc, err := c.ReadFile(ctx, path)
	if err != nil {
		return nil, m.explain(id, err)
	}
	return rc, nil
}

// explain turns the failure of an operation that a pause, snapshot or
// destroy cut off into the conflict it is, rather than a fault.
func (m *Manager) explain(id string, err error) error {
	if err == nil || wrenn.ErrorCode(err) != wrenn.EInternal {
		return err
	}
	sb, gerr := m.get(id)
	if gerr != nil {
		return wrenn.Errorf(wrenn.EConflict, "the sandbox was destroyed or made into a template")
	}
	// A pause cuts operations off before it is done: let it finish.
	sb.op.Lock()
	sb.op.Unlock() //nolint:staticcheck // waiting for the lifecycle operation, not guarding anything
	sb.mu.Lock()
	defer sb.mu.Unlock()
	switch {
	case sb.paused:
		return wrenn.Errorf(wrenn.EConflict, "the sandbox was paused")
	case sb.gone:
		return wrenn.Errorf(wrenn.EConflict, "the sandbox was destroyed or made into a template")
	}
	return err
}

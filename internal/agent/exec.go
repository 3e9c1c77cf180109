package agent

import (
	"context"
	"io"

	"github.com/wrennhq/wrenn"
	"github.com/wrennhq/wrenn/internal/control"
)

// Exec runs a command to completion in a running sandbox.
func (m *Manager) Exec(ctx context.Context, id string, req wrenn.ExecRequest) (*wrenn.ExecResult, error) {
	c, err := m.client(id)
	if err != nil {
		return nil, err
	}
	return c.Exec(ctx, req)
}

// StartExec starts a streamed command in a running sandbox.
func (m *Manager) StartExec(ctx context.Context, id string, req wrenn.ExecRequest) (control.ExecStream, error) {
	c, err := m.client(id)
	if err != nil {
		return nil, err
	}
	return c.StartExec(ctx, req)
}

// WriteFile streams r into a file of a running sandbox.
func (m *Manager) WriteFile(ctx context.Context, id, path string, r io.Reader) error {
	c, err := m.client(id)
	if err != nil {
		return err
	}
	return c.WriteFile(ctx, path, r)
}

// ReadFile streams a file out of a running sandbox.
func (m *Manager) ReadFile(ctx context.Context, id, path string) (io.ReadCloser, error) {
	c, err := m.client(id)
	if err != nil {
		return nil, err
	}
	return c.ReadFile(ctx, path)
}
